"""The fleet's Argo runner when a finished Workflow's node status cannot be read.

Offloaded to Argo's database or compressed in a form the tracker does not read, the nodes (and
so the jobs' results) are out of reach. The tenant is then ``failed`` with the tracker's reason
and fix -- what its result event says -- not ``succeeded`` with no jobs.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from typing import Any

from orchestrator.argo.follow import workflow_outcome
from orchestrator.fleet import FAILED, SUCCEEDED, TenantRequest, child_batch_id
from orchestrator.fleet.inventory import Tenant
from orchestrator.fleet.runners import ArgoTenantRunner

NS = "tenant-lifecycle"
RESULT = {"namespace": "team-a", "job": "schema", "status": "succeeded", "exitCode": 0}
NODES = {
    "n1": {
        "id": "n1",
        "type": "Pod",
        "phase": "Succeeded",
        "inputs": {"parameters": [{"name": "job", "value": "team-a/schema"}]},
        "outputs": {"parameters": [{"name": "result", "value": json.dumps(RESULT)}]},
    }
}


def _finished(name: str, phase: str = "Succeeded", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS},
        "status": {"phase": phase, **status},
    }


class FinishedAtOnce:
    """A Kubernetes client whose Workflows are finished as soon as they are created."""

    def __init__(self, **status: Any) -> None:
        self.status = status
        self.created: list[str] = []

    def create(self, resource: Any, body: dict[str, Any], *, namespace: str) -> dict[str, Any]:
        assert (resource.plural, namespace) == ("workflows", NS)
        self.created.append(body["metadata"]["name"])
        return body

    def get(self, resource: Any, name: str, *, namespace: str) -> dict[str, Any]:
        assert name in self.created
        return _finished(name, **self.status)


def _run(kube: FinishedAtOnce) -> Any:
    request = TenantRequest(
        batch_operation_id=child_batch_id("fleet-1", "t-1"),
        parent_batch_operation_id="fleet-1",
        tenant=Tenant("t-1", "eu-west-1", ("catalog",)),
        operation="lifecycle.backup",
    )
    runner = ArgoTenantRunner(kube, namespace=NS, poll_seconds=0.01)  # type: ignore[arg-type]
    return runner.run(request, cancel=threading.Event())


def test_offloaded_node_status_fails_the_tenant_with_the_reason_and_fix() -> None:
    outcome = _run(FinishedAtOnce(offloadNodeStatusVersion="fnv:784403183"))
    assert outcome.status == FAILED
    assert outcome.jobs == ()
    assert outcome.workflow is not None
    assert outcome.message.startswith(f"workflow {NS}/{outcome.workflow}: its node status was")
    assert "offloaded to Argo's persistence database" in outcome.message
    assert "persistence.nodeStatusOffLoad" in outcome.message  # the fix
    assert outcome.message.endswith("The Workflow's phase is Succeeded.")


def test_unreadable_compressed_nodes_keep_the_workflows_own_message() -> None:
    zstd = base64.b64encode(b"\x28\xb5\x2f\xfd" + b"\0" * 16).decode()
    outcome = workflow_outcome(
        _finished("lc-b1", "Failed", message="child 'lc-b1-1' failed", compressedNodes=zstd)
    )
    assert outcome is not None
    assert outcome.status == FAILED
    assert outcome.message.startswith("child 'lc-b1-1' failed; workflow tenant-lifecycle/lc-b1: ")
    assert "is zstd; the tracker reads gzip only" in outcome.message
    assert "WORKFLOW_COMPRESSION_ALGORITHM" in outcome.message


def test_readable_nodes_plain_or_compressed_give_the_jobs() -> None:
    packed = base64.b64encode(gzip.compress(json.dumps(NODES).encode())).decode()
    for status in ({"nodes": NODES}, {"compressedNodes": packed}):
        outcome = workflow_outcome(_finished("lc-b1", **status))
        assert outcome is not None
        assert (outcome.status, outcome.message) == (SUCCEEDED, "1 job(s) succeeded")
        assert [(j["namespace"], j["job"]) for j in outcome.jobs] == [("team-a", "schema")]
    assert workflow_outcome({"status": {"phase": "Running"}}) is None
