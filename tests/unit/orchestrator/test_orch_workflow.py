"""Workflow naming and building, and result building from a Workflow's nodes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.errors import ConflictError, InvalidError
from orchestrator.argo.outcome import build_result, collect_jobs, failed_steps
from orchestrator.argo.submit import ArgoEngine, build_workflow
from orchestrator.events import LifecycleRequest
from orchestrator.naming import workflow_name

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


@pytest.mark.parametrize(
    "batch",
    ["b1", "5b0f6a3e-0c7d-4f7e-9a41-2c1f3f0e9b11", "Batch_1", "a.b.c", "X" * 63, "-x-", "UPPER"],
)
def test_workflow_name_is_a_valid_deterministic_name(batch: str) -> None:
    name = workflow_name(batch)
    assert name == workflow_name(batch)
    assert len(name) <= 63
    assert NAME_RE.match(name)
    assert name.startswith("lc-")


def test_plain_ids_are_kept_readable_and_lookalikes_stay_apart() -> None:
    assert workflow_name("5b0f6a3e-0c7d") == "lc-5b0f6a3e-0c7d"
    assert workflow_name("batch-1") != workflow_name("Batch_1")
    assert workflow_name("a" * 61) != workflow_name("a" * 62)


def test_build_workflow_references_the_template_with_all_parameters() -> None:
    request = LifecycleRequest(
        batch_operation_id="b-1",
        tenant_env_id="t-42",
        operation="lifecycle.migrate-in",
        region="eu-west-1",
        environment={"applications": ["catalog"]},
        changeset={"v": 2},
        source="crm",
        time=datetime(2026, 11, 22, 10, tzinfo=UTC),
        source_batch_operation_id="export-7",
    )
    wf = build_workflow(request, template="tenant-lifecycle", parallelism=3)
    assert wf["metadata"]["name"] == "lc-b-1"
    assert wf["metadata"]["labels"]["tenant-lifecycle.dev/tenant"] == "t-42"
    assert wf["metadata"]["labels"]["tenant-lifecycle.dev/operation"] == "lifecycle.migrate-in"
    assert wf["metadata"]["labels"]["tenant-lifecycle.dev/batch"] == "b-1"
    assert wf["metadata"]["annotations"]["tenant-lifecycle.dev/region"] == "eu-west-1"
    assert (
        wf["metadata"]["annotations"]["tenant-lifecycle.dev/requested-at"] == "2026-11-22T10:00:00Z"
    )
    assert wf["spec"] == {
        "workflowTemplateRef": {"name": "tenant-lifecycle"},
        "arguments": {
            "parameters": [
                {"name": "operation", "value": "lifecycle.migrate-in"},
                {"name": "tenant-env-id", "value": "t-42"},
                {"name": "batch-operation-id", "value": "b-1"},
                {"name": "environment", "value": '{"applications":["catalog"]}'},
                {"name": "changeset", "value": '{"v":2}'},
                {"name": "parallelism", "value": "3"},
                {"name": "source-batch-operation-id", "value": "export-7"},
            ]
        },
    }


def bridge_result(namespace: str, job: str, status: str = "succeeded", **extra: Any) -> str:
    return json.dumps(
        {
            "namespace": namespace,
            "job": job,
            "operation": "lifecycle.upsert",
            "status": status,
            "exitCode": 0 if status == "succeeded" else 3,
            "reason": "Completed" if status == "succeeded" else "BackoffLimitExceeded",
            "attempts": [{"attempt": 1, "exitCode": 0}],
            "finishedAt": "2026-11-22T10:01:00Z",
            **extra,
        }
    )


def node(
    display: str,
    *,
    result: str | None = None,
    job: str | None = None,
    wave: str = "0",
    phase: str = "Succeeded",
    type_: str = "Pod",
    children: list[str] | None = None,
) -> dict[str, Any]:
    n: dict[str, Any] = {"displayName": display, "type": type_, "phase": phase}
    if job is not None:
        n["inputs"] = {
            "parameters": [{"name": "job", "value": job}, {"name": "wave", "value": wave}]
        }
    if result is not None:
        n["outputs"] = {"parameters": [{"name": "result", "value": result}]}
    if children:
        n["children"] = children
    return n


def workflow(nodes: dict[str, Any], phase: str = "Succeeded") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "lc-b1",
            "labels": {
                "tenant-lifecycle.dev/tenant": "t1",
                "tenant-lifecycle.dev/operation": "lifecycle.upsert",
                "tenant-lifecycle.dev/batch": "b1",
            },
            "annotations": {"tenant-lifecycle.dev/region": "eu-west-1"},
        },
        "status": {
            "phase": phase,
            "startedAt": "2026-11-22T10:00:00Z",
            "finishedAt": "2026-11-22T10:02:00Z",
            "nodes": nodes,
        },
    }


def test_jobs_come_from_result_outputs_with_their_wave_sorted_by_wave() -> None:
    wf = workflow(
        {
            "n1": node(
                "abort-on-failure(0:team-b/index)",
                result=bridge_result("team-b", "index"),
                job="team-b/index",
                wave="1",
            ),
            "n2": node(
                "abort-on-failure(0:team-a/schema)",
                result=bridge_result("team-a", "schema"),
                job="team-a/schema",
                wave="-1",
            ),
            "n3": node("discover", type_="Pod"),
        }
    )
    jobs = collect_jobs(wf)
    assert [(j["wave"], j["namespace"], j["job"]) for j in jobs] == [
        (-1, "team-a", "schema"),
        (1, "team-b", "index"),
    ]
    event = build_result(wf)
    assert event["type"] == "dev.tenant-lifecycle.operation.succeeded"
    assert event["id"] == "b1"
    assert event["data"]["region"] == "eu-west-1"
    assert event["data"]["workflow"] == "lc-b1"
    assert event["data"]["jobs"][0]["attempts"] == [{"attempt": 1, "exitCode": 0}]


def test_retried_node_counts_once_with_its_last_attempt() -> None:
    wf = workflow(
        {
            "r": node(
                "abort-on-failure(0:team-a/schema)",
                type_="Retry",
                result=bridge_result("team-a", "schema"),
                job="team-a/schema",
                children=["a1", "a2"],
            ),
            "a1": node(
                "abort-on-failure(0:team-a/schema)(0)",
                phase="Failed",
                job="team-a/schema",
                result=bridge_result(
                    "team-a", "schema", "error", finishedAt="2026-11-22T10:00:30Z"
                ),
            ),
            "a2": node(
                "abort-on-failure(0:team-a/schema)(1)",
                result=bridge_result("team-a", "schema"),
                job="team-a/schema",
            ),
        }
    )
    jobs = collect_jobs(wf)
    assert len(jobs) == 1
    assert jobs[0]["status"] == "succeeded"
    assert failed_steps(wf) == []


def test_a_failed_job_makes_the_operation_failed() -> None:
    wf = workflow(
        {
            "n1": node(
                "a(0:team-a/schema)",
                result=bridge_result("team-a", "schema", "failed"),
                job="team-a/schema",
                phase="Failed",
            ),
        },
        phase="Failed",
    )
    event = build_result(wf)
    assert event["type"] == "dev.tenant-lifecycle.operation.failed"
    assert event["data"]["jobs"][0]["exitCode"] == 3


def test_bridge_node_without_a_result_is_reported_as_error() -> None:
    wf = workflow(
        {"n1": node("a(0:team-a/schema)", job="team-a/schema", phase="Error")}, phase="Failed"
    )
    (job,) = collect_jobs(wf)
    assert (job["namespace"], job["job"], job["status"]) == ("team-a", "schema", "error")


def test_exit_handler_outcome_from_workflow_status_or_failed_nodes() -> None:
    running_ok = workflow(
        {"n1": node("a(0:team-a/s)", result=bridge_result("team-a", "s"), job="team-a/s")},
        phase="Running",
    )
    assert build_result(running_ok)["data"]["status"] == "succeeded"
    assert build_result(running_ok, workflow_status="Failed")["data"]["status"] == "failed"
    discovery_failed = workflow({"d": node("discover", phase="Failed")}, phase="Running")
    assert build_result(discovery_failed)["data"]["status"] == "failed"


def test_plan_output_supplies_the_wave_when_the_node_has_none() -> None:
    plan = {
        "operation": "lifecycle.upsert",
        "waves": [{"wave": 2, "jobs": [{"namespace": "team-a", "name": "s"}]}],
    }
    wf = workflow(
        {
            "d": {
                "displayName": "discover",
                "type": "Pod",
                "phase": "Succeeded",
                "outputs": {"parameters": [{"name": "plan", "value": json.dumps(plan)}]},
            },
            "n": {
                "displayName": "x",
                "type": "Pod",
                "phase": "Succeeded",
                "outputs": {
                    "parameters": [{"name": "result", "value": bridge_result("team-a", "s")}]
                },
            },
        }
    )
    assert collect_jobs(wf)[0]["wave"] == 2


# The bridge's result JSON (INTERFACES.md, "Result JSON"), plus the wave: every job of a result
# event has these keys, whichever engine ran it and whether or not the bridge wrote a result.
BRIDGE_RESULT_KEYS = {
    "namespace",
    "job",
    "operation",
    "tenantEnvId",
    "batchOperationId",
    "status",
    "exitCode",
    "reason",
    "message",
    "attempts",
    "startedAt",
    "finishedAt",
    "durationSeconds",
    "wave",
}


def test_a_bridge_node_without_a_result_has_the_shape_of_a_bridge_result() -> None:
    died = node("a(0:team-a/schema)", job="team-a/schema", wave="-1", phase="Error")
    died.update(startedAt="2026-11-22T10:00:00Z", finishedAt="2026-11-22T10:00:42Z")
    (job,) = collect_jobs(workflow({"n1": died}, phase="Failed"))
    assert set(job) == BRIDGE_RESULT_KEYS
    assert (job["operation"], job["tenantEnvId"], job["batchOperationId"]) == (
        "lifecycle.upsert",
        "t1",
        "b1",
    )
    assert (job["wave"], job["durationSeconds"]) == (-1, 42.0)


class _KubeWithWorkflows:
    """The Kubernetes adapter's create/get for Workflows (409 on a taken name)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    def create(self, resource: Any, body: dict[str, Any], *, namespace: str | None = None) -> Any:
        name = body["metadata"]["name"]
        if name in self.objects:
            raise ConflictError(f"workflows {name!r} already exists", status=409)
        self.objects[name] = body
        return body

    def get(self, resource: Any, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        return self.objects[name]


def test_a_different_batch_whose_name_is_taken_is_not_counted_as_a_duplicate() -> None:
    # "X" sanitizes with a hash suffix; a second id can be exactly that suffixed form.
    hashed = workflow_name("X")
    lookalike = hashed.removeprefix("lc-")
    assert workflow_name(lookalike) == hashed
    engine = ArgoEngine(_KubeWithWorkflows(), namespace="argo")  # type: ignore[arg-type]
    first = LifecycleRequest(
        batch_operation_id="X", tenant_env_id="t1", operation="lifecycle.upsert"
    )
    assert engine.submit(first).status == "submitted"
    assert engine.submit(first).status == "duplicate"
    other = LifecycleRequest(
        batch_operation_id=lookalike, tenant_env_id="t2", operation="lifecycle.upsert"
    )
    with pytest.raises(InvalidError, match=lookalike):
        engine.submit(other)
