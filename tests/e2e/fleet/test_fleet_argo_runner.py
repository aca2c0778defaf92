"""The Argo runner against the sandbox API server, the test playing Argo's controller.

There is no Argo controller here: the test watches for the Workflow the runner submits and
writes its status the way the controller would (phase, the bridge node's ``result`` output).
What is checked is our side: the Workflow submitted from the template with the fleet's ids,
the outcome and per-job results read back, and a cancel that stops the Workflow.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.kube import WORKFLOWS, Kube, KubeSettings
from orchestrator.fleet import TenantOutcome, TenantRequest, child_batch_id
from orchestrator.fleet.inventory import Tenant
from orchestrator.fleet.runners import ArgoTenantRunner
from orchestrator.naming import workflow_name
from sandbox import Sandbox

NS = "tenant-lifecycle"
FAST = KubeSettings(max_retries=3, backoff_base=0.05, backoff_max=0.2, request_timeout=10)


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """One sandbox for the module: each test uses its own tenant, so its own Workflow."""
    with Sandbox(rbac=False, workdir=tmp_path_factory.mktemp("argo-runner")) as sb:
        sb.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}])
        client = Kube(settings=FAST, host=sb.url, token=sb.admin_token)
        yield client
        client.close()


def _request(tenant: str) -> TenantRequest:
    return TenantRequest(
        batch_operation_id=child_batch_id("fleet-argo", tenant),
        parent_batch_operation_id="fleet-argo",
        tenant=Tenant(tenant, "eu-west-1", ("catalog",)),
        operation="lifecycle.backup",
    )


def _run_in_thread(
    runner: ArgoTenantRunner, request: TenantRequest, cancel: threading.Event
) -> tuple[threading.Thread, list[TenantOutcome]]:
    outcomes: list[TenantOutcome] = []
    thread = threading.Thread(target=lambda: outcomes.append(runner.run(request, cancel=cancel)))
    thread.start()
    return thread, outcomes


def _wait_for_workflow(kube: Kube, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = [w for w in kube.list(WORKFLOWS, namespace=NS) if w["metadata"]["name"] == name]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"workflow {name} was never submitted")


def test_a_tenant_runs_as_a_workflow_and_its_results_come_back(kube: Kube) -> None:
    runner = ArgoTenantRunner(kube, namespace=NS, poll_seconds=0.05)
    request = _request("t-1")
    thread, outcomes = _run_in_thread(runner, request, threading.Event())
    name = workflow_name(request.batch_operation_id)
    workflow = _wait_for_workflow(kube, name)

    params = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "tenant-lifecycle"}
    assert params["tenant-env-id"] == "t-1"
    assert params["batch-operation-id"] == request.batch_operation_id
    assert json.loads(params["environment"]) == {"applications": ["catalog"]}
    assert workflow["metadata"]["annotations"]["tenant-lifecycle.dev/parent-batch"] == "fleet-argo"

    result = {
        "namespace": "team-a",
        "job": "backup",
        "status": "failed",
        "exitCode": 4,
        "reason": "BackoffLimitExceeded",
    }
    kube.patch(
        WORKFLOWS,
        name,
        {
            "status": {
                "phase": "Failed",
                "message": "child 'bridge(0:team-a/backup)' failed",
                "nodes": {
                    "n1": {
                        "id": "n1",
                        "type": "Pod",
                        "startedAt": "2026-11-26T02:00:01Z",
                        "outputs": {
                            "parameters": [{"name": "result", "value": json.dumps(result)}]
                        },
                    },
                    "n0": {"id": "n0", "type": "Steps", "startedAt": "2026-11-26T02:00:00Z"},
                },
            }
        },
        namespace=NS,
    )
    thread.join(timeout=20)
    (outcome,) = outcomes
    assert outcome.status == "failed"
    assert outcome.workflow == name
    assert outcome.jobs == ({**result, "wave": None},)  # no plan node here: wave unknown
    assert "team-a/backup BackoffLimitExceeded (exit 4)" in outcome.message


def test_cancelling_stops_the_workflow(kube: Kube) -> None:
    runner = ArgoTenantRunner(kube, namespace=NS, poll_seconds=0.05)
    request = _request("t-2")
    cancel = threading.Event()
    thread, outcomes = _run_in_thread(runner, request, cancel)
    name = workflow_name(request.batch_operation_id)
    _wait_for_workflow(kube, name)
    cancel.set()
    thread.join(timeout=20)
    (outcome,) = outcomes
    assert outcome.status == "cancelled"
    assert kube.get(WORKFLOWS, name, namespace=NS)["spec"]["shutdown"] == "Stop"


def test_a_resubmitted_tenant_follows_the_existing_workflow(kube: Kube) -> None:
    runner = ArgoTenantRunner(kube, namespace=NS, poll_seconds=0.05)
    request = _request("t-3")
    name = workflow_name(request.batch_operation_id)
    first, _ = _run_in_thread(runner, request, threading.Event())
    _wait_for_workflow(kube, name)
    # A resumed fleet re-requests an unfinished tenant under the same id: no second Workflow.
    second, outcomes = _run_in_thread(runner, request, threading.Event())
    kube.patch(WORKFLOWS, name, {"status": {"phase": "Succeeded"}}, namespace=NS)
    first.join(timeout=20)
    second.join(timeout=20)
    assert [o.status for o in outcomes] == ["succeeded"]
    assert [w["metadata"]["name"] for w in kube.list(WORKFLOWS, namespace=NS)].count(name) == 1
