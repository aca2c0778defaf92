"""The lifecycle on the real Argo Workflows controller (pinned v4.1.4), installed from deploy/.

Every assertion reads what really happened: the Workflow's status as the controller wrote it,
the pods, ``argo logs``, and the result event the template's exit handler published to the
Pub/Sub emulator. Each test uses its own operation name (``e2e-<tag>.<op>``) so discovery plans
only its own Jobs on the shared cluster.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.argo_cluster import NAMESPACE, ArgoCluster
from tools.jobs import job

REPO = Path(__file__).resolve().parents[3]
TEAM_MANIFEST = REPO / "deploy" / "team-example" / "team.yaml"
# The first test also pays for the session's Argo install (a minute or two on 2 cores).
pytestmark = pytest.mark.timeout(600)


def _tag() -> str:
    return uuid.uuid4().hex[:6]


def add_team(cluster: ArgoCluster, name: str) -> None:
    """docs/install.md step 3 for another team: team.yaml with the namespace renamed."""
    text = TEAM_MANIFEST.read_text().replace("team-example", name)
    cluster.kubectl("apply", "-f", "-", stdin=text)


def bridge_nodes(workflow: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pod nodes of the bridge template (one per attempt), from the real status."""
    nodes = (workflow.get("status") or {}).get("nodes") or {}
    return [
        n for n in nodes.values() if n.get("type") == "Pod" and n.get("templateName") == "bridge"
    ]


def job_of(node: Mapping[str, Any]) -> str:
    for parameter in (node.get("inputs") or {}).get("parameters") or []:
        if parameter["name"] == "job":
            return str(parameter["value"])
    raise AssertionError(f"node {node.get('displayName')} has no job input")


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def the_result(cluster: ArgoCluster, batch: str) -> dict[str, Any]:
    events = cluster.results(batch)
    assert len(events) == 1, f"expected one result event for {batch}, got {events}"
    return events[0]


@pytest.fixture
def teams(argo_install: ArgoCluster) -> list[str]:
    tag = _tag()
    names = [f"e2e-{tag}-a", f"e2e-{tag}-b", f"e2e-{tag}-c"]
    for name in names:
        add_team(argo_install, name)
    return names


def test_an_upsert_runs_waves_in_order_over_three_team_namespaces(
    argo_install: ArgoCluster, teams: Sequence[str]
) -> None:
    cluster, (a, b, c) = argo_install, teams
    operation = f"e2e-{_tag()}.upsert"
    script = 'echo "ran $LIFECYCLE_TENANT_ENV_ID in $(hostname)"; sleep 1'
    cluster.apply(
        [
            job(a, "schema", operation=operation, wave=-1, script=script),
            job(b, "app", operation=operation, wave=0, script=script),
            job(c, "app", operation=operation, wave=0, script=script),
            job(a, "warm", operation=operation, wave=1, script=script),
        ]
    )
    batch = f"b-{_tag()}"
    name = cluster.submit(operation=operation, tenant="t-waves", batch=batch)
    workflow = cluster.wait(name)

    assert workflow["status"]["phase"] == "Succeeded", cluster.argo("get", name)
    nodes = bridge_nodes(workflow)
    by_job = {job_of(n): n for n in nodes}
    assert sorted(by_job) == sorted([f"{a}/schema", f"{b}/app", f"{c}/app", f"{a}/warm"])
    # One node per job, its display name naming namespace/job (what an operator looks for).
    for key, node in by_job.items():
        assert key in node["displayName"], node["displayName"]
    # Wave order from the pods' own times: every pod of a wave ended before the next began.
    waves = [[f"{a}/schema"], [f"{b}/app", f"{c}/app"], [f"{a}/warm"]]
    for earlier, later in itertools.pairwise(waves):
        ended = max(when(by_job[k]["finishedAt"]) for k in earlier)
        started = min(when(by_job[k]["startedAt"]) for k in later)
        assert ended <= started, f"{later} started before {earlier} finished"

    event = the_result(cluster, batch)
    assert event["type"] == "dev.tenant-lifecycle.operation.succeeded"
    assert event["subject"] == "t-waves"
    jobs = {f"{j['namespace']}/{j['job']}": j for j in event["data"]["jobs"]}
    assert set(jobs) == set(by_job)
    assert all(j["status"] == "succeeded" for j in jobs.values()), jobs
    assert event["data"]["workflow"] == name

    logs = cluster.argo("logs", name)
    for namespace in (a, b, c):
        assert "ran t-waves in lc-" in logs or "ran t-waves" in logs
        assert namespace  # every team's job printed through its bridge node
    assert logs.count("ran t-waves") == 4, logs


def test_tenant_text_that_looks_like_argo_templates_reaches_the_job_unchanged(
    argo_install: ArgoCluster, teams: Sequence[str]
) -> None:
    cluster = argo_install
    operation = f"e2e-{_tag()}.upsert"
    cluster.apply(
        [job(teams[0], "echo", operation=operation, wave=0,
             script='cat "$LIFECYCLE_TENANT_ENV_FILE"; echo ---; cat "$LIFECYCLE_CHANGESET_FILE"')]
    )  # fmt: skip
    tricky = {
        "name": "{{workflow.name}}",
        "expr": "{{=1+1}}",
        "open": "a {{ never closed",
        "input": "{{inputs.parameters.job}}",
    }
    changeset = {"note": "{{workflow.parameters.operation}} and {{= sprig.upper('x') }}"}
    batch = f"b-{_tag()}"
    name = cluster.submit(
        operation=operation, batch=batch,
        environment=json.dumps(tricky), changeset=json.dumps(changeset),
    )  # fmt: skip
    workflow = cluster.wait(name)
    assert workflow["status"]["phase"] == "Succeeded", cluster.argo("get", name)
    # What the job printed (its two files, as YAML), read back through the bridge's node log.
    lines = [
        line.split(": ", 1)[1]
        for line in cluster.argo("logs", name, "--no-color").splitlines()
        if "-bridge-" in line and ": " in line
    ]
    printed = lines[lines.index(next(x for x in lines if x.startswith("bridge: created"))) + 1 :]
    printed = printed[: printed.index(next(x for x in printed if x.startswith("bridge: ")))]
    environment_text, changeset_text = "\n".join(printed).split("\n---\n")
    assert yaml.safe_load(environment_text) == tricky
    assert yaml.safe_load(changeset_text) == changeset


def test_a_failed_abort_job_stops_later_waves_and_a_continue_job_does_not(
    argo_install: ArgoCluster, teams: Sequence[str]
) -> None:
    cluster = argo_install
    abort_op, continue_op = f"e2e-{_tag()}.upsert", f"e2e-{_tag()}.upsert"
    fail, ok = "echo failing; exit 3", "echo fine"
    cluster.apply(
        [
            job(teams[0], "breaks", operation=abort_op, wave=0, script=fail),
            job(teams[1], "later", operation=abort_op, wave=1, script=ok),
            job(teams[0], "breaks", operation=continue_op, wave=0, script=fail,
                on_failure="continue"),
            job(teams[1], "later", operation=continue_op, wave=1, script=ok),
        ][:2]
    )  # fmt: skip
    batch = f"b-{_tag()}"
    name = cluster.submit(operation=abort_op, batch=batch)
    workflow = cluster.wait(name)
    assert workflow["status"]["phase"] == "Failed"
    ran = {job_of(n) for n in bridge_nodes(workflow)}
    assert ran == {f"{teams[0]}/breaks"}, f"a later wave started after an abort failure: {ran}"
    event = the_result(cluster, batch)
    assert event["type"] == "dev.tenant-lifecycle.operation.failed"
    failed = [j for j in event["data"]["jobs"] if j["status"] != "succeeded"]
    assert [(j["namespace"], j["job"]) for j in failed][:1] == [(teams[0], "breaks")], event

    # The same shape with onFailure: continue — wave 1 still runs.
    cluster.apply(
        [
            job(teams[2], "breaks", operation=continue_op, wave=0, script=fail,
                on_failure="continue"),
            job(teams[1], "later2", operation=continue_op, wave=1, script=ok),
        ]
    )  # fmt: skip
    name = cluster.submit(operation=continue_op)
    workflow = cluster.wait(name)
    ran = {job_of(n) for n in bridge_nodes(workflow)}
    assert ran == {f"{teams[2]}/breaks", f"{teams[1]}/later2"}, ran


def test_more_waves_than_argo_can_nest_are_refused_by_discovery_with_the_reason(
    argo_install: ArgoCluster, teams: Sequence[str]
) -> None:
    cluster = argo_install
    operation = f"e2e-{_tag()}.upsert"
    cluster.apply(
        [job(teams[0], f"w{i}", operation=operation, wave=i * 10 - 500, script="true")
         for i in range(91)]
    )  # fmt: skip
    name = cluster.submit(operation=operation)
    workflow = cluster.wait(name)
    assert workflow["status"]["phase"] == "Failed"
    assert bridge_nodes(workflow) == [], "no job may run from a plan Argo cannot finish"
    logs = cluster.argo("logs", name)
    assert "91 distinct waves, more than the 90" in logs, logs


def test_a_workflow_that_does_not_reference_the_template_is_refused(
    argo_install: ArgoCluster,
) -> None:
    cluster = argo_install
    name = f"inline-{_tag()}"
    cluster.apply(
        [
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Workflow",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {
                    "entrypoint": "main",
                    "templates": [
                        {"name": "main", "container": {"image": "busybox:1.36",
                                                       "command": ["true"]}}
                    ],
                },
            }
        ]
    )  # fmt: skip
    workflow = cluster.wait(name, timeout=60)
    assert workflow["status"]["phase"] in ("Failed", "Error")
    assert "workflowTemplateRef" in workflow["status"].get("message", ""), workflow["status"]


def test_strict_refuses_a_reference_that_overrides_the_templates_service_account(
    argo_install: ArgoCluster,
) -> None:
    # Why docs/install.md names v4.1.4 (at least v3.7.15 / v4.0.6) as the minimum: from those
    # releases Strict also refuses the fields of a referencing Workflow that would override the
    # reviewed template's pod spec, such as its service account.
    cluster = argo_install
    name = f"override-{_tag()}"
    parameters = [
        {"name": "operation", "value": "lifecycle.upsert"},
        {"name": "tenant-env-id", "value": "t-override"},
        {"name": "batch-operation-id", "value": name},
    ]
    cluster.apply(
        [
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Workflow",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {
                    "workflowTemplateRef": {"name": "tenant-lifecycle"},
                    "serviceAccountName": "tenant-lifecycle-orchestrator",
                    "arguments": {"parameters": parameters},
                },
            }
        ]
    )
    workflow = cluster.wait(name, timeout=60)
    assert workflow["status"]["phase"] in ("Failed", "Error"), workflow["status"]
    nodes = (workflow["status"].get("nodes") or {}).values()
    assert not [n for n in nodes if n.get("type") == "Pod"], "a pod ran under the override"
    # ...and the install guide names a minimum that has this check.
    prerequisites = (REPO / "docs" / "install.md").read_text().split("## Prerequisites", 1)[1]
    argo_line = next(b for b in prerequisites.split("\n* ") if b.startswith("Argo Workflows"))
    named = {
        tuple(int(x) for x in m)
        for m in re.findall(r"v(\d+)\.(\d+)\.(\d+)", argo_line.split("Why", 1)[0])
    }
    assert named, f"install.md names no exact minimum Argo version: {argo_line[:200]}"
    for version in named:
        floor = (3, 7, 15) if version[0] == 3 else (4, 0, 6)
        assert version >= floor, f"install.md names v{'.'.join(map(str, version))} as enough"


def test_the_nightly_fleet_cron_runs_under_strict_template_referencing(
    argo_install: ArgoCluster,
) -> None:
    cluster = argo_install
    cluster.kubectl("apply", "-k", str(REPO / "workflows" / "rendered" / "fleet"))
    name = cluster.argo("submit", "--from", "cronwf/fleet-nightly-backup", "-o", "name").strip()

    def dispatcher_started() -> dict[str, Any] | None:
        status = cluster.workflow(name).get("status") or {}
        message = status.get("message", "")
        assert "workflowTemplateRef" not in message, message
        assert status.get("phase") not in ("Error",), status
        pods = [n for n in (status.get("nodes") or {}).values() if n.get("type") == "Pod"]
        return pods[0] if pods else None

    # The controller accepted it under Strict and started the dispatcher's pod (which then
    # fails to reach the example inventory URL: what it does is the fleet suite's subject).
    pod = _wait_for(dispatcher_started, "the fleet dispatcher's pod", timeout=120)
    assert pod["templateName"] == "fleet", pod
    cluster.argo("terminate", name)


def test_argo_lint_passes_every_rendered_manifest_and_fails_a_broken_one(
    argo_install: ArgoCluster, tmp_path: Path
) -> None:
    cluster = argo_install
    rendered = sorted((REPO / "workflows" / "rendered").rglob("*.yaml"))
    argo_kinds = [
        p for p in rendered
        if any(d and d.get("kind") in ("WorkflowTemplate", "CronWorkflow")
               for d in yaml.safe_load_all(p.read_text()))
    ]  # fmt: skip
    assert len(argo_kinds) >= 3, argo_kinds
    cluster.argo("lint", "--offline", *map(str, argo_kinds))
    broken = tmp_path / "broken.yaml"
    document = yaml.safe_load(
        (REPO / "workflows" / "rendered" / "workflowtemplate.yaml").read_text()
    )
    document["spec"]["entrypoint"] = "no-such-template"
    broken.write_text(yaml.safe_dump(document))
    out = cluster.argo("lint", "--offline", str(broken), check=False)
    assert "no-such-template" in out, out


def _wait_for(predicate: Any, what: str, timeout: float = 120) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


def _team_pods(cluster: ArgoCluster, namespace: str) -> list[dict[str, Any]]:
    return cluster.pods(namespace, "app.kubernetes.io/managed-by=tenant-lifecycle-bridge")


@pytest.mark.parametrize("how", ["stop", "terminate"])
def test_argo_stop_and_terminate_during_a_wave_leave_no_team_pod(
    argo_install: ArgoCluster, teams: Sequence[str], how: str
) -> None:
    cluster, namespace = argo_install, teams[0]
    operation = f"e2e-{_tag()}.upsert"
    cluster.apply([job(namespace, "long", operation=operation, wave=0,
                       script="echo started; sleep 300")])  # fmt: skip
    batch = f"b-{_tag()}"
    name = cluster.submit(operation=operation, batch=batch)
    _wait_for(
        lambda: [p for p in cluster.pods(namespace)
                 if p["status"].get("phase") == "Running"
                 and p["metadata"]["name"].startswith("lc-long-")],
        "the team pod to run",
    )  # fmt: skip
    cluster.argo(how, name)
    workflow = cluster.wait(name, timeout=180)
    assert workflow["status"]["phase"] in ("Failed", "Error"), workflow["status"]
    # Argo stops a running step by exec'ing `argoexec kill` into its pod; the bridge got the
    # signal and deleted the team's pod before it exited.
    _wait_for(
        lambda: not [p for p in cluster.pods(namespace)
                     if p["metadata"]["name"].startswith("lc-long-")],
        "the team pod to be deleted", timeout=90,
    )  # fmt: skip
    bridge = bridge_nodes(workflow)
    assert bridge, workflow["status"]
    assert {n.get("phase") for n in bridge} <= {"Failed", "Error"}, bridge
    if how == "stop":
        # `stop` runs the exit handler: the result says the run was stopped.
        event = the_result(cluster, batch)
        assert event["type"] == "dev.tenant-lifecycle.operation.failed", event


def test_two_requests_for_one_tenant_are_serialized_and_another_tenant_runs_beside(
    argo_install: ArgoCluster, teams: Sequence[str]
) -> None:
    cluster = argo_install
    operation = f"e2e-{_tag()}.upsert"
    cluster.apply([job(teams[1], "slow", operation=operation, wave=0, script="sleep 4")])
    tenant = f"t-{_tag()}"
    first = cluster.submit(operation=operation, tenant=tenant)
    second = cluster.submit(operation=operation, tenant=tenant)
    other = cluster.submit(operation=operation, tenant=f"t-{_tag()}")
    done = {name: cluster.wait(name) for name in (first, second, other)}
    assert all(w["status"]["phase"] == "Succeeded" for w in done.values())

    def span(name: str) -> tuple[datetime, datetime]:
        status = done[name]["status"]
        return when(status["startedAt"]), when(status["finishedAt"])

    def bridge_span(name: str) -> tuple[datetime, datetime]:
        (node,) = bridge_nodes(done[name])
        return when(node["startedAt"]), when(node["finishedAt"])

    a, b = sorted([bridge_span(first), bridge_span(second)])
    assert a[1] <= b[0], f"the same tenant's runs overlapped: {a} and {b}"
    o = bridge_span(other)
    # The other tenant's run overlapped the first tenant's two: it did not wait for the lock.
    assert o[0] < max(a[1], b[1]), "the other tenant waited"
    assert o[1] > min(a[0], b[0]), "the other tenant ran before either"
    assert span(first) < span(second) or span(second) < span(first)


def test_the_same_request_three_times_makes_one_workflow(
    argo_install: ArgoCluster, teams: Sequence[str]
) -> None:
    import subprocess
    import sys

    cluster = argo_install
    operation = f"e2e-{_tag()}.upsert"
    cluster.apply([job(teams[2], "once", operation=operation, wave=0, script="echo once")])
    batch = f"Batch_{_tag()}.Redelivered"  # not DNS-safe: the name is derived, not copied
    tenantctl = str(Path(sys.executable).with_name("tenantctl"))
    env = {**os.environ, "KUBECONFIG": str(cluster.plane.kubeconfig)}
    outputs = []
    for _ in range(3):
        done = subprocess.run(
            [tenantctl, "run", operation, "--engine", "argo", "--tenant-env-id", "t-dup",
             "--batch-operation-id", batch],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        outputs.append(done.stdout)
    listed = json.loads(cluster.kubectl("-n", NAMESPACE, "get", "workflows", "-o", "json"))
    workflows = [
        w for w in listed["items"]
        if {"name": "batch-operation-id", "value": batch}
        in w["spec"].get("arguments", {}).get("parameters", [])
    ]  # fmt: skip
    assert len(workflows) == 1, [w["metadata"]["name"] for w in workflows]
    from orchestrator.naming import workflow_name

    assert workflows[0]["metadata"]["name"] == workflow_name(batch)
    assert cluster.wait(workflow_name(batch))["status"]["phase"] == "Succeeded"


def test_an_empty_plan_succeeds_with_a_result_listing_no_job(argo_install: ArgoCluster) -> None:
    cluster = argo_install
    batch = f"b-{_tag()}"
    name = cluster.submit(operation=f"e2e-{_tag()}.nothing", batch=batch)
    workflow = cluster.wait(name)
    assert workflow["status"]["phase"] == "Succeeded"
    assert bridge_nodes(workflow) == []
    event = the_result(cluster, batch)
    assert event["type"] == "dev.tenant-lifecycle.operation.succeeded"
    assert event["data"]["jobs"] == []


@pytest.mark.timeout(900)
def test_a_large_workflow_whose_nodes_argo_compresses_still_reports_every_job(
    argo_install: ArgoCluster, teams: Sequence[str]
) -> None:
    cluster = argo_install
    operation = f"e2e-{_tag()}.upsert"
    count = 120
    cluster.apply([job(teams[i % 3], f"j{i:03d}", operation=operation, wave=0, script="true")
                   for i in range(count)])  # fmt: skip
    # Every bridge node carries a copy of its inputs (the tenant's environment and changeset):
    # what counts is the bytes of node status, not the number of jobs. 120 nodes with a 6 kB
    # environment (or 300 with 2 kB) pass Argo's 1 MiB limit, and the controller moves the
    # nodes into status.compressedNodes. 120 at parallelism 16 keeps the test to ~2 minutes
    # on 2 cores; 300 at 32 took 6 and saturated the machine.
    environment = json.dumps(
        {"applications": [], "settings": {f"k{i}": "v" * 30 for i in range(150)}}
    )
    batch = f"b-{_tag()}"
    name = cluster.submit(operation=operation, batch=batch, environment=environment,
                          changeset=environment, parallelism=16)  # fmt: skip
    workflow = cluster.wait(name, timeout=1200)
    assert workflow["status"]["phase"] == "Succeeded", workflow["status"].get("message")
    assert workflow["status"].get("compressedNodes"), "the controller did not compress the nodes"
    assert not workflow["status"].get("nodes")
    event = the_result(cluster, batch)
    jobs = {(j["namespace"], j["job"]) for j in event["data"]["jobs"]}
    assert len(jobs) == count, f"{len(jobs)} of {count} jobs in the result"


def test_a_jobs_own_exit_75_is_final_not_an_infrastructure_retry(
    argo_install: ArgoCluster, teams: Sequence[str]
) -> None:
    cluster = argo_install
    operation = f"e2e-{_tag()}.upsert"
    cluster.apply([job(teams[0], "tempfail", operation=operation, wave=0, script="exit 75")])
    batch = f"b-{_tag()}"
    name = cluster.submit(operation=operation, batch=batch)
    workflow = cluster.wait(name)
    assert workflow["status"]["phase"] == "Failed"
    # The template retries only the bridge's own exit 75 (API unreachable); the bridge maps a
    # job's 75 to 1 (the true code is in its result), so Argo ran the bridge once.
    attempts = bridge_nodes(workflow)
    assert len(attempts) == 1, [n["displayName"] for n in attempts]
    (failed,) = [j for j in the_result(cluster, batch)["data"]["jobs"] if j["job"] == "tempfail"]
    assert failed["exitCode"] == 75, failed
