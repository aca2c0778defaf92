"""Result events: the tracker and the exit handler command publish exactly one result per
Workflow, whatever order, races and crashes they meet.

The normal path -- the real Argo controller running the template, its exit handler publishing
the result, one event per run -- is proven in ``tests/e2e/argo/test_argo_lifecycle.py``
(``test_an_upsert_runs_waves_in_order_over_three_team_namespaces`` for a success,
``test_a_failed_abort_job_stops_later_waves_and_a_continue_job_does_not`` for a failure: each
reads back exactly one result event). These tests stay because they exercise
the result-claim protocol under conditions a real controller cannot be made to produce on
demand: a tracker restarted after it published, the exit handler publishing while the Workflow
is still Running and the tracker seeing it finish later, six publishers racing for one
Workflow, and a publisher that died holding the claim. For that they write a Workflow's status
themselves with :func:`write_workflow_status`: a fake at our own seam (the Workflow object the
tracker reads), not a model of Argo's controller -- only the fields the tracker reads (phase,
times, bridge nodes with their ``result`` output).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from click.testing import CliRunner
from orch_support import (
    WORKFLOW_NAMESPACE,
    drain,
    events,
    prepare_sandbox,
    quiet_for,
    sandbox_kube,
    start_service,
    wait_for,
    workflows,
)

from bridge.kube import WORKFLOWS
from orchestrator.argo.submit import ArgoEngine
from orchestrator.argo.tracker import ResultPublisher
from orchestrator.cli import main
from orchestrator.events import LifecycleRequest
from orchestrator.naming import (
    RESULT_CLAIM_ANNOTATION,
    RESULT_PUBLISHED_ANNOTATION,
    workflow_name,
)
from orchestrator.pubsub import PubSubBus, PubSubSettings

JOBS = [
    # namespace, job, wave, status, exit code, reason
    ("team-a", "schema", -1, "succeeded", 0, "Completed"),
    ("team-b", "index", 0, "succeeded", 0, "Completed"),
]


def bridge_result(batch: str, job_row: tuple) -> dict[str, Any]:
    namespace, job, _, status, code, reason = job_row
    return {
        "namespace": namespace,
        "job": job,
        "operation": "lifecycle.upsert",
        "tenantEnvId": "tenant-799a",
        "batchOperationId": batch,
        "status": status,
        "exitCode": code,
        "reason": reason,
        "message": f"{namespace}/{job} {status}",
        "attempts": [
            {
                "attempt": 1,
                "pod": f"lc-{job}-1",
                "exitCode": code,
                "reason": reason,
                "startedAt": "2026-11-22T10:00:01Z",
                "finishedAt": "2026-11-22T10:00:09Z",
                "counted": True,
            }
        ],
        "startedAt": "2026-11-22T10:00:01Z",
        "finishedAt": "2026-11-22T10:00:09Z",
        "durationSeconds": 8.0,
    }


def write_workflow_status(kube: Any, name: str, batch: str, phase: str, jobs: list[tuple]) -> None:
    """Patch the Workflow's status with the fields the tracker reads: phase, times, one bridge
    node per job with its ``result`` output (the shape the real controller writes)."""
    nodes: dict[str, Any] = {
        name: {"id": name, "displayName": name, "type": "Steps", "phase": phase}
    }
    for index, (namespace, job, wave, status, _code, _reason) in enumerate(jobs):
        node_id = f"{name}-{index}"
        nodes[node_id] = {
            "id": node_id,
            "displayName": f"abort-on-failure({index}:{namespace}/{job})",
            "type": "Pod",
            "templateName": "bridge",
            "phase": "Succeeded" if status == "succeeded" else "Failed",
            "inputs": {
                "parameters": [
                    {"name": "job", "value": f"{namespace}/{job}"},
                    {"name": "wave", "value": str(wave)},
                ]
            },
            "outputs": {
                "parameters": [
                    {
                        "name": "result",
                        "value": json.dumps(bridge_result(batch, jobs[index])),
                    }
                ]
            },
        }
    status: dict[str, Any] = {"phase": phase, "startedAt": "2026-11-22T10:00:00Z", "nodes": nodes}
    if phase in ("Succeeded", "Failed", "Error"):
        status["finishedAt"] = "2026-11-22T10:00:10Z"
    kube.patch(WORKFLOWS, name, {"status": status}, namespace=WORKFLOW_NAMESPACE)


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_succeeded_workflow_yields_one_result_and_a_restart_does_not_repeat_it(
    sandbox, pubsub_topology, tmp_path
) -> None:
    t = pubsub_topology
    prepare_sandbox(sandbox)
    kube = sandbox_kube(sandbox)
    kubeconfig = str(sandbox.kubeconfig_path())
    environment = tmp_path / "env.yaml"
    environment.write_text("applications: [catalog, search]\n")
    service = start_service(sandbox, t)
    try:
        published = cli(
            "publish",
            "lifecycle.upsert",
            "--tenant-env-id",
            "tenant-799a",
            "--environment",
            str(environment),
            "--region",
            "eu-west-1",
            "--project",
            t.project,
            "--topic",
            t.request_topic,
        )
        batch = published.stdout.strip()
        name = workflow_name(batch)
        wait_for(lambda: workflows(kube))
        write_workflow_status(kube, name, batch, "Running", JOBS[:1])
        write_workflow_status(kube, name, batch, "Succeeded", JOBS)
        (message,) = drain(t.project, t.results_subscription, expected=1)
        wait_for(
            lambda: (
                service.metrics.value("tenantctl_results_published_total", status="succeeded") == 1
            )
        )
        assert service.metrics.value("tenantctl_workflows_finished_total", phase="Succeeded") == 1
        assert service.metrics.value("tenantctl_end_to_end_latency_seconds_count") == 1
    finally:
        service.close()
    (event,) = events([message])
    assert event["type"] == "dev.tenant-lifecycle.operation.succeeded"
    assert event["id"] == batch
    assert event["subject"] == "tenant-799a"
    data = event["data"]
    assert (
        data["operation"],
        data["tenantEnvId"],
        data["region"],
        data["status"],
        data["workflow"],
    ) == (
        "lifecycle.upsert",
        "tenant-799a",
        "eu-west-1",
        "succeeded",
        name,
    )
    assert [
        (j["namespace"], j["job"], j["wave"], j["exitCode"], j["reason"]) for j in data["jobs"]
    ] == [
        ("team-a", "schema", -1, 0, "Completed"),
        ("team-b", "index", 0, 0, "Completed"),
    ]
    assert all(j["attempts"] and j["durationSeconds"] == 8.0 for j in data["jobs"])
    assert kube.get(WORKFLOWS, name, namespace=WORKFLOW_NAMESPACE)["metadata"]["annotations"][
        RESULT_PUBLISHED_ANNOTATION
    ]

    # the tracker restarts: it re-lists, sees the marker, publishes nothing
    restarted = start_service(sandbox, t)
    try:
        assert quiet_for(t.project, t.results_subscription, 3.0) == []
        assert restarted.metrics.value("tenantctl_results_published_total", status="succeeded") == 0
    finally:
        restarted.close()
    # the exit handler running late does not publish again either
    late = cli(
        "publish-result",
        "--workflow",
        name,
        "--namespace",
        WORKFLOW_NAMESPACE,
        "--project",
        t.project,
        "--results-topic",
        t.results_topic,
        "--kubeconfig",
        kubeconfig,
    )
    assert "already published" in late.stdout
    assert quiet_for(t.project, t.results_subscription, 1.0) == []
    # and `tenantctl status` shows the same outcome
    status = json.loads(
        cli(
            "status",
            batch,
            "--namespace",
            WORKFLOW_NAMESPACE,
            "--kubeconfig",
            kubeconfig,
            "--output",
            "json",
        ).stdout
    )
    assert (status["phase"], status["status"], status["workflow"]) == (
        "Succeeded",
        "succeeded",
        name,
    )
    assert [j["job"] for j in status["jobs"]] == ["schema", "index"]
    assert status["resultPublished"]
    kube.close()


def test_exit_handler_publishes_a_failure_once_and_the_tracker_agrees(
    sandbox, pubsub_topology
) -> None:
    t = pubsub_topology
    prepare_sandbox(sandbox)
    kube = sandbox_kube(sandbox)
    kubeconfig = str(sandbox.kubeconfig_path())
    request = LifecycleRequest(
        batch_operation_id="fails-1", tenant_env_id="tenant-7", operation="lifecycle.upsert"
    )
    name = ArgoEngine(kube, namespace=WORKFLOW_NAMESPACE).submit(request).name
    jobs = [JOBS[0], ("team-b", "index", 0, "failed", 3, "BackoffLimitExceeded")]
    # Argo runs the exit handler while the Workflow is still Running
    write_workflow_status(kube, name, "fails-1", "Running", jobs)
    out = cli(
        "publish-result",
        "--workflow",
        name,
        "--namespace",
        WORKFLOW_NAMESPACE,
        "--project",
        t.project,
        "--results-topic",
        t.results_topic,
        "--kubeconfig",
        kubeconfig,
    )
    assert "published dev.tenant-lifecycle.operation.failed" in out.stdout
    write_workflow_status(kube, name, "fails-1", "Failed", jobs)
    service = start_service(sandbox, t)
    try:
        messages = drain(t.project, t.results_subscription, expected=1)
        messages += quiet_for(t.project, t.results_subscription, 2.5)
        assert service.metrics.value("tenantctl_results_published_total", status="failed") == 0
    finally:
        service.close()
        kube.close()
    (event,) = events(messages)
    assert event["type"] == "dev.tenant-lifecycle.operation.failed"
    assert event["id"] == "fails-1"
    failed = [j for j in event["data"]["jobs"] if j["status"] == "failed"]
    assert [(j["namespace"], j["job"], j["exitCode"], j["reason"]) for j in failed] == [
        ("team-b", "index", 3, "BackoffLimitExceeded")
    ]


def test_racing_publishers_publish_once(sandbox, pubsub_topology) -> None:
    t = pubsub_topology
    prepare_sandbox(sandbox)
    kube = sandbox_kube(sandbox)
    request = LifecycleRequest(
        batch_operation_id="race-1", tenant_env_id="tenant-9", operation="lifecycle.backup"
    )
    name = ArgoEngine(kube, namespace=WORKFLOW_NAMESPACE).submit(request).name
    write_workflow_status(kube, name, "race-1", "Succeeded", JOBS)
    bus = PubSubBus(PubSubSettings(project=t.project))
    outcomes: list[str] = []
    lock = threading.Lock()

    def contender(index: int) -> None:
        own = sandbox_kube(sandbox)
        try:
            publisher = ResultPublisher(
                own, bus, namespace=WORKFLOW_NAMESPACE, topic=t.results_topic, owner=f"p{index}"
            )
            status = publisher.publish(name).status
        finally:
            own.close()
        with lock:
            outcomes.append(status)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        bus.close()
        kube.close()
    assert outcomes.count("published") == 1
    assert set(outcomes) <= {"published", "claimed", "already-published"}
    assert len(drain(t.project, t.results_subscription, expected=1)) == 1


def test_a_crashed_publishers_claim_is_taken_over_after_its_ttl(sandbox, pubsub_topology) -> None:
    t = pubsub_topology
    prepare_sandbox(sandbox)
    kube = sandbox_kube(sandbox)
    request = LifecycleRequest(
        batch_operation_id="crash-1", tenant_env_id="tenant-3", operation="lifecycle.upsert"
    )
    name = ArgoEngine(kube, namespace=WORKFLOW_NAMESPACE).submit(request).name
    write_workflow_status(kube, name, "crash-1", "Succeeded", JOBS)
    bus = PubSubBus(PubSubSettings(project=t.project))
    publisher = ResultPublisher(
        kube, bus, namespace=WORKFLOW_NAMESPACE, topic=t.results_topic, owner="me", claim_ttl=30
    )

    def claim(stamp: float) -> None:
        kube.patch(
            WORKFLOWS,
            name,
            {"metadata": {"annotations": {RESULT_CLAIM_ANNOTATION: f"crashed-pod {stamp}"}}},
            namespace=WORKFLOW_NAMESPACE,
        )

    try:
        claim(time.time())  # someone is publishing right now: hands off
        assert publisher.publish(name).status == "claimed"
        claim(time.time() - 31)  # ... and died before marking: take over
        assert publisher.publish(name).status == "published"
        assert publisher.publish(name).status == "already-published"
    finally:
        bus.close()
    annotations = kube.get(WORKFLOWS, name, namespace=WORKFLOW_NAMESPACE)["metadata"]["annotations"]
    assert RESULT_CLAIM_ANNOTATION not in annotations
    assert annotations[RESULT_PUBLISHED_ANNOTATION]
    kube.close()
    assert len(drain(t.project, t.results_subscription, expected=1)) == 1
