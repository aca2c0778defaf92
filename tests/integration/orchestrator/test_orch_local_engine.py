"""``tenantctl listen --engine local``: the request runs in-process against the sandbox (real
discovery, bridges and pods) and its result event carries every job's outcome."""

from __future__ import annotations

import json
from typing import Any

from orch_support import drain, events, publish_requests, python_job, start_service, wait_for

from bridge.kube import KubeSettings
from tests.unit.orchestrator.bad_events import valid_event

PREFIX = "tenant-lifecycle.dev"
OPERATION = "orch.local"


def job(namespace: str, name: str, *, wave: int, exit_code: int = 0) -> dict[str, Any]:
    program = (
        "import os; print('tenant', os.environ['LIFECYCLE_TENANT_ENV_ID']); "
        f"raise SystemExit({exit_code})"
    )
    return python_job(namespace, name, operation=OPERATION, wave=wave, program=program)


BROKEN_OPERATION = "orch.broken"


def broken_job() -> dict[str, Any]:
    """A participant whose wave annotation is not a number: discovery refuses the plan."""
    broken = job("orch-a", "broken", wave=0)
    broken["metadata"]["annotations"] = {
        f"{PREFIX}/operations": BROKEN_OPERATION,
        f"{PREFIX}/wave": "first",
    }
    return broken


def test_local_engine_runs_the_lifecycle_and_publishes_a_succeeded_result(
    sandbox, pubsub_topology
) -> None:
    t = pubsub_topology
    sandbox.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {f"{PREFIX}/enabled": "true"}},
            }
            for ns in ("orch-a", "orch-b")
        ]
        + [job("orch-a", "prepare", wave=0), job("orch-b", "finish", wave=1), broken_job()]
    )
    settings = KubeSettings(kubeconfig=str(sandbox.kubeconfig_path()))
    service = start_service(sandbox, t, engine="local", kube=settings)
    try:
        request = valid_event(id="local-1", subject="tenant-local")
        request["data"]["operation"] = OPERATION
        payload = json.dumps(request).encode()
        broken = valid_event(id="local-broken", subject="tenant-other")
        broken["data"]["operation"] = BROKEN_OPERATION
        publish_requests(t, [payload, payload, json.dumps(broken).encode()])
        results = drain(t.project, t.results_subscription, expected=2, timeout=60)
        wait_for(lambda: service.metrics.value("tenantctl_duplicates_total") == 1)
        assert service.metrics.value("tenantctl_submissions_total", engine="local") == 2
        assert service.metrics.value("tenantctl_results_published_total", status="succeeded") == 1
        assert service.metrics.value("tenantctl_results_published_total", status="failed") == 1
    finally:
        service.close()
    by_id = {e["id"]: e for e in events(results)}
    assert len(results) == 2
    # discovery refused the broken Job: the request still gets its (failed) answer, with why
    failed = by_id["local-broken"]
    assert failed["type"] == "dev.tenant-lifecycle.operation.failed"
    assert failed["data"]["jobs"] == []
    assert "wave" in failed["data"]["message"]
    event = by_id["local-1"]
    assert event["type"] == "dev.tenant-lifecycle.operation.succeeded"
    assert event["id"] == "local-1"
    assert event["subject"] == "tenant-local"
    jobs = event["data"]["jobs"]
    assert [(j["wave"], j["namespace"], j["job"], j["status"], j["exitCode"]) for j in jobs] == [
        (0, "orch-a", "prepare", "succeeded", 0),
        (1, "orch-b", "finish", "succeeded", 0),
    ]
    assert all(j["attempts"] for j in jobs)
