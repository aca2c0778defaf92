"""``tenantctl status`` of a Workflow whose node status the tracker cannot read.

Offloaded to Argo's database (``status.offloadNodeStatusVersion``) or compressed in a form the
tracker does not read, the nodes are out of reach: the result has no jobs, and its
``data.reason``/``data.message`` say why. ``status`` shows them, so an empty job table is
explained instead of looking like "nothing ran yet".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

import bridge.kube
from orchestrator.argo.nodes import NODES_OFFLOADED, NODES_UNREADABLE
from orchestrator.cli import main
from orchestrator.cli.commands.status import status_document

BATCH = "b-20261122-0001"
WF = "lc-b-20261122-0001"


def _workflow(**status: Any) -> dict[str, Any]:
    return {
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
        "spec": {"arguments": {"parameters": []}},
        "status": {
            "startedAt": "2026-11-22T10:00:00Z",
            "finishedAt": "2026-11-22T10:02:00Z",
            **status,
        },
    }


OFFLOADED = _workflow(phase="Succeeded", offloadNodeStatusVersion="fnv:784403183")
# zstd's magic number: Argo's WORKFLOW_COMPRESSION_ALGORITHM=zstd, which the tracker cannot read.
ZSTD = _workflow(
    phase="Failed",
    message="child 'lc-x-1' failed",
    compressedNodes=base64.b64encode(b"\x28\xb5\x2f\xfd" + b"\0" * 16).decode(),
)
READABLE = _workflow(
    phase="Succeeded",
    nodes={
        "n1": {
            "id": "n1",
            "type": "Pod",
            "phase": "Succeeded",
            "inputs": {"parameters": [{"name": "job", "value": "team-a/schema"}]},
            "outputs": {
                "parameters": [
                    {
                        "name": "result",
                        "value": json.dumps(
                            {"namespace": "team-a", "job": "schema", "status": "succeeded"}
                        ),
                    }
                ]
            },
        }
    },
)


class FakeKube:
    """What ``status`` uses of :class:`bridge.kube.Kube`: ``get`` of one Workflow."""

    workflow: dict[str, Any] = READABLE

    def __init__(self, **_: Any) -> None:
        pass

    def __enter__(self) -> FakeKube:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def get(self, resource: Any, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        assert (resource.plural, name, namespace) == ("workflows", WF, "tenant-lifecycle")
        return self.workflow


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeKube]]:
    monkeypatch.setattr(bridge.kube, "Kube", FakeKube)
    monkeypatch.delenv("TENANTCTL_WORKFLOW_NAMESPACE", raising=False)
    yield FakeKube
    FakeKube.workflow = READABLE


def _status(*args: str) -> Result:
    return CliRunner().invoke(main, ["status", BATCH, *args], terminal_width=200)


def test_an_offloaded_workflow_says_why_no_jobs_are_listed(kube: type[FakeKube]) -> None:
    kube.workflow = OFFLOADED
    done = _status()
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    # Argo says Succeeded, but no job can be shown to have succeeded: the result failed.
    assert "status:    failed  result published: no" in lines
    (reason,) = [line for line in lines if line.startswith("reason:")]
    assert reason.startswith(f"reason:    {NODES_OFFLOADED}: workflow tenant-lifecycle/{WF}: ")
    assert "offloaded to Argo's persistence database" in reason
    assert "persistence.nodeStatusOffLoad" in reason  # the fix
    assert "The Workflow's phase is Succeeded." in reason
    assert f"no job results ({NODES_OFFLOADED})" in done.output
    assert "no job results yet" not in done.output


def test_unreadable_compressed_nodes_are_explained_in_json_too(kube: type[FakeKube]) -> None:
    kube.workflow = ZSTD
    done = _status("--output", "json")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.output)
    assert (doc["status"], doc["jobs"], doc["reason"]) == ("failed", [], NODES_UNREADABLE)
    assert "is zstd; the tracker reads gzip only" in doc["reasonMessage"]
    assert "WORKFLOW_COMPRESSION_ALGORITHM" in doc["reasonMessage"]
    assert doc["message"] == "child 'lc-x-1' failed"  # the Workflow's own message, unchanged


def test_a_readable_workflow_has_no_reason(kube: type[FakeKube]) -> None:
    doc = status_document(READABLE)
    assert (doc["status"], doc["reason"], doc["reasonMessage"]) == ("succeeded", None, None)
    assert [(j["namespace"], j["job"]) for j in doc["jobs"]] == [("team-a", "schema")]
    done = _status()
    assert done.exit_code == 0, done.output
    assert "reason:" not in done.output
    assert "team-a/schema" in done.output


def test_help_examples_use_the_install_namespace() -> None:
    shown = CliRunner().invoke(main, ["status", "--help"], terminal_width=200)
    assert "--namespace argo" not in shown.output
    assert "default: tenant-lifecycle]" in shown.output
