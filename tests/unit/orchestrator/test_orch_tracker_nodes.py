"""The tracker reads a Workflow's nodes wherever Argo's controller put them.

Above ``MAX_WORKFLOW_SIZE`` (1 MiB) the controller replaces ``status.nodes`` with
``status.compressedNodes`` (base64 of gzip of the nodes map's JSON, argo-workflows
``workflow/packer``); with node status offloading it leaves only
``status.offloadNodeStatusVersion``. The compressed form must give the same result as the plain
one; the offloaded one must still give a result, carrying the reason.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from typing import Any

import pytest

from orchestrator.argo import nodes as tracker_module
from orchestrator.argo.nodes import NODES_OFFLOADED, NODES_UNREADABLE, workflow_nodes
from orchestrator.argo.outcome import build_result, collect_jobs, failed_steps
from orchestrator.argo.tracker import ResultPublisher, Tracker
from orchestrator.naming import RESULT_PUBLISHED_ANNOTATION
from tests.support.bus import FakeBus

from .test_orch_result_publisher import RESULTS, FakeKube

WF = "lc-b-20261122-0001"
BATCH = "b-20261122-0001"


def _result(namespace: str, job: str, status: str, exit_code: int, wave: int) -> str:
    return json.dumps(
        {
            "namespace": namespace,
            "job": job,
            "operation": "lifecycle.upsert",
            "tenantEnvId": "799a0c4e",
            "batchOperationId": BATCH,
            "status": status,
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "BackoffLimitExceeded",
            "message": "",
            "attempts": [{"attempt": 1, "exitCode": exit_code}],
            "startedAt": "2026-11-22T10:00:20Z",
            "finishedAt": "2026-11-22T10:01:00Z",
            "durationSeconds": 40.0,
            "wave": wave,
        }
    )


def _pod(
    node_id: str,
    display: str,
    *,
    template: str,
    phase: str = "Succeeded",
    inputs: dict[str, str] | None = None,
    outputs: dict[str, str] | None = None,
    exit_code: str = "0",
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": node_id,
        "name": f"{WF}.{display}",
        "displayName": display,
        "type": "Pod",
        "templateName": template,
        "templateScope": "namespaced/tenant-lifecycle",
        "phase": phase,
        "boundaryID": WF,
        "startedAt": "2026-11-22T10:00:10Z",
        "finishedAt": "2026-11-22T10:01:00Z",
        "progress": "1/1",
        "resourcesDuration": {"cpu": 3, "memory": 12},
        "hostNodeName": "worker-1",
    }
    if inputs:
        node["inputs"] = {"parameters": [{"name": k, "value": v} for k, v in inputs.items()]}
    node["outputs"] = {
        "parameters": [{"name": k, "value": v} for k, v in (outputs or {}).items()],
        "exitCode": exit_code,
    }
    return node


def argo_nodes() -> dict[str, Any]:
    """``status.nodes`` as Argo writes it for two waves: a retried job, a failed ``continue``
    job, a job of the plan that never ran (wave 1 after an abort failure), the exit handler."""
    plan = {
        "operation": "lifecycle.upsert",
        "waves": [
            {
                "wave": 0,
                "jobs": [
                    {"namespace": "team-a", "name": "schema", "onFailure": "abort"},
                    {"namespace": "team-b", "name": "cache", "onFailure": "continue"},
                    {"namespace": "team-c", "name": "index", "onFailure": "abort"},
                ],
            },
            {"wave": 1, "jobs": [{"namespace": "team-d", "name": "report", "onFailure": "abort"}]},
        ],
        "rejected": [],
    }
    nodes: dict[str, Any] = {
        WF: {
            "id": WF,
            "name": WF,
            "displayName": WF,
            "type": "Steps",
            "templateName": "lifecycle",
            "phase": "Failed",
            "startedAt": "2026-11-22T10:00:00Z",
            "finishedAt": "2026-11-22T10:02:00Z",
            "children": [f"{WF}-1"],
            "outboundNodes": [f"{WF}-9"],
        },
        f"{WF}-1": _pod(
            f"{WF}-1",
            "discover",
            template="discover",
            outputs={"plan": json.dumps(plan, separators=(",", ":"))},
        ),
        f"{WF}-2": {
            "id": f"{WF}-2",
            "name": f"{WF}.waves-p8(0).wave.abort-on-failure(0:team-a/schema)",
            "displayName": "abort-on-failure(0:team-a/schema)",
            "type": "Retry",
            "templateName": "bridge",
            "phase": "Succeeded",
            "boundaryID": WF,
            "children": [f"{WF}-3", f"{WF}-4"],
            "outputs": {
                "parameters": [
                    {"name": "result", "value": _result("team-a", "schema", "succeeded", 0, 0)}
                ]
            },
        },
        f"{WF}-3": _pod(
            f"{WF}-3",
            "abort-on-failure(0:team-a/schema)(0)",
            template="bridge",
            phase="Failed",
            inputs={"job": "team-a/schema", "wave": "0"},
            exit_code="75",
        ),
        f"{WF}-4": _pod(
            f"{WF}-4",
            "abort-on-failure(0:team-a/schema)(1)",
            template="bridge",
            inputs={"job": "team-a/schema", "wave": "0"},
            outputs={"result": _result("team-a", "schema", "succeeded", 0, 0)},
        ),
        f"{WF}-5": _pod(
            f"{WF}-5",
            "continue-on-failure(0:team-b/cache)",
            template="bridge",
            phase="Failed",
            inputs={"job": "team-b/cache", "wave": "0"},
            outputs={"result": _result("team-b", "cache", "failed", 3, 0)},
            exit_code="3",
        ),
        f"{WF}-6": _pod(
            f"{WF}-6",
            "abort-on-failure(1:team-c/index)",
            template="bridge",
            phase="Failed",
            inputs={"job": "team-c/index", "wave": "0"},
            outputs={"result": _result("team-c", "index", "failed", 1, 0)},
            exit_code="1",
        ),
        f"{WF}-9": _pod(f"{WF}-9", f"{WF}.onExit", template="publish-result"),
    }
    return nodes


def argo_workflow(
    nodes: dict[str, Any] | None, *, phase: str = "Failed", **status: Any
) -> dict[str, Any]:
    wf: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": WF,
            "namespace": "tenant-lifecycle",
            "labels": {
                "tenant-lifecycle.dev/tenant": "799a0c4e",
                "tenant-lifecycle.dev/operation": "lifecycle.upsert",
                "tenant-lifecycle.dev/batch": BATCH,
            },
        },
        "status": {
            "phase": phase,
            "startedAt": "2026-11-22T10:00:00Z",
            "finishedAt": "2026-11-22T10:02:00Z",
            **status,
        },
    }
    if nodes is not None:
        wf["status"]["nodes"] = nodes
    return wf


def compressed(nodes: Any, *, raw: bytes | None = None) -> str:
    """What Argo's packer writes: base64 (standard, padded) of gzip of the nodes' JSON."""
    payload = json.dumps(nodes, separators=(",", ":")).encode() if raw is None else raw
    return base64.b64encode(gzip.compress(payload)).decode("ascii")


def compressed_workflow(**status: Any) -> dict[str, Any]:
    # Argo drops status.nodes when it compresses them (packer.compressWorkflow sets it to nil).
    return argo_workflow(None, compressedNodes=compressed(argo_nodes()), **status)


def test_compressed_nodes_give_the_same_jobs_as_plain_nodes() -> None:
    plain = collect_jobs(argo_workflow(argo_nodes()), include_skipped=True)
    assert [(j["namespace"], j["job"], j["status"]) for j in plain] == [
        ("team-a", "schema", "succeeded"),
        ("team-b", "cache", "failed"),
        ("team-c", "index", "failed"),
        ("team-d", "report", "skipped"),
    ]
    assert collect_jobs(compressed_workflow(), include_skipped=True) == plain


def test_compressed_nodes_give_the_same_result_event() -> None:
    plain = build_result(argo_workflow(argo_nodes()))
    packed = build_result(compressed_workflow())
    assert packed["data"] == plain["data"]
    assert packed["data"]["status"] == "failed"
    assert "reason" not in packed["data"]


def test_compressed_nodes_count_for_the_outcome_while_the_exit_handler_runs() -> None:
    # The exit handler sees the Workflow still Running: the outcome comes from the failed nodes.
    running = compressed_workflow(phase="Running")
    assert failed_steps(running) == failed_steps(argo_workflow(argo_nodes(), phase="Running"))
    assert failed_steps(running) == [
        "abort-on-failure(1:team-c/index)",
        "continue-on-failure(0:team-b/cache)",
    ]


def test_plain_nodes_win_over_a_stale_compressed_copy() -> None:
    # As Argo's DecompressWorkflow: compressedNodes only counts when nodes is empty.
    wf = argo_workflow(argo_nodes(), compressedNodes=compressed({}))
    assert workflow_nodes(wf).nodes == argo_nodes()


def test_offloaded_nodes_still_give_a_result_with_the_reason_and_the_fix() -> None:
    wf = argo_workflow(None, phase="Succeeded", offloadNodeStatusVersion="fnv:1234567890")
    found = workflow_nodes(wf)
    assert (found.readable, found.nodes, found.reason) == (False, {}, NODES_OFFLOADED)
    data = build_result(wf)["data"]
    # A job's failure cannot be ruled out (a failed continue job leaves the Workflow Succeeded).
    assert (data["status"], data["jobs"], data["reason"]) == ("failed", [], NODES_OFFLOADED)
    message = data["message"]
    assert f"tenant-lifecycle/{WF}" in message
    assert "status.offloadNodeStatusVersion" in message
    assert "MAX_WORKFLOW_SIZE" in message
    assert "nodeStatusOffLoad" in message
    assert "phase is Succeeded" in message


def test_the_tracker_publishes_and_marks_an_offloaded_workflow() -> None:
    wf = argo_workflow(None, phase="Succeeded", offloadNodeStatusVersion="fnv:1234567890")
    kube, bus = FakeKube(wf), FakeBus()
    publisher = ResultPublisher(
        kube,  # type: ignore[arg-type]
        bus,
        namespace="tenant-lifecycle",
        topic=RESULTS,
        owner="listener-1",
    )
    tracker = Tracker(kube, publisher, namespace="tenant-lifecycle")  # type: ignore[arg-type]
    outcome = tracker.handle(kube.get(None, WF))
    assert outcome is not None
    assert outcome.status == "published"
    (message,) = bus.published[RESULTS]
    event = json.loads(message.data)
    assert (event["id"], event["data"]["reason"]) == (BATCH, NODES_OFFLOADED)
    assert kube.objects[WF]["metadata"]["annotations"][RESULT_PUBLISHED_ANNOTATION]


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("not base64 at all!", "is not base64"),
        # zstd's magic number, as Argo writes with WORKFLOW_COMPRESSION_ALGORITHM=zstd
        (base64.b64encode(b"\x28\xb5\x2f\xfd" + b"\x00" * 16).decode(), "is zstd"),
        (base64.b64encode(b"\x0b\x02\x80{}\x03").decode(), "brotli"),
        (base64.b64encode(b"\x1f\x8b\x08\x00broken").decode(), "is not valid gzip"),
        (compressed(None, raw=b"[1, 2]"), "is not a JSON node map"),
        (compressed(None, raw=b"{not json"), "is not a JSON node map"),
    ],
)
def test_unreadable_compressed_nodes_are_named_with_the_fix(value: str, detail: str) -> None:
    wf = argo_workflow(None, compressedNodes=value)
    found = workflow_nodes(wf)
    assert (found.readable, found.reason) == (False, NODES_UNREADABLE)
    assert found.message is not None
    assert f"tenant-lifecycle/{WF}: status.compressedNodes" in found.message
    assert detail in found.message
    assert "Fix: " in found.message
    data = build_result(wf)["data"]
    assert (data["status"], data["reason"]) == ("failed", NODES_UNREADABLE)


def test_a_gzip_bomb_is_refused_not_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracker_module, "MAX_NODES_JSON_BYTES", 1024)
    bomb = argo_workflow(None, compressedNodes=compressed(None, raw=b" " * 4096))
    found = workflow_nodes(bomb)
    assert found.reason == NODES_UNREADABLE
    assert "expands to more than" in str(found.message)


def test_a_workflow_without_nodes_is_not_an_error() -> None:
    # Not started yet, or failed before any node: nothing to read, nothing wrong.
    assert workflow_nodes(argo_workflow(None)).readable
    assert workflow_nodes(copy.deepcopy(argo_workflow({}))).readable
