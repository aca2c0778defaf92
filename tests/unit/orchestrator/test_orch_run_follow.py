"""``tenantctl run --engine argo``: the default namespace, the template check, ``--wait``'s view
of a large Workflow (its nodes compressed by Argo's controller)."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from click.testing import CliRunner

from bridge.errors import NotFoundError, UnavailableError
from orchestrator.argo.submit import ArgoEngine
from orchestrator.cli import main
from orchestrator.cli.watch import watch_workflow
from orchestrator.naming import DEFAULT_WORKFLOW_NAMESPACE
from workflows.settings import WorkflowSettings

NODES = {
    "n1": {
        "id": "n1",
        "type": "Pod",
        "displayName": "abort-on-failure(0:team-a/schema)",
        "phase": "Failed",
        "message": "Error (exit code 3)",
        "startedAt": "2026-01-01T00:00:00Z",
    }
}


class OneWorkflow:
    """``get`` of one Workflow (and of the WorkflowTemplate when ``template`` is true)."""

    def __init__(self, workflow: dict[str, Any] | None = None, *, template: bool = True) -> None:
        self.workflow = workflow
        self.template = template
        self.gets: list[tuple[str, str, str | None]] = []

    def get(self, resource: Any, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        self.gets.append((resource.plural, name, namespace))
        if resource.plural == "workflowtemplates":
            if self.template:
                return {"metadata": {"name": name}}
            raise NotFoundError(f"workflowtemplates {name} not found", status=404)
        assert self.workflow is not None
        return self.workflow


def test_the_default_namespace_is_where_the_install_puts_the_template() -> None:
    assert DEFAULT_WORKFLOW_NAMESPACE == WorkflowSettings().workflow_namespace == "tenant-lifecycle"
    shown = CliRunner().invoke(main, ["run", "--help"], terminal_width=200)
    assert "default: tenant-lifecycle]" in shown.output


def test_a_missing_template_names_itself_its_namespace_and_the_fix() -> None:
    kube = OneWorkflow(template=False)
    engine = ArgoEngine(kube, namespace="team-ns")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError) as caught:
        engine.require_template()
    text = str(caught.value)
    assert "WorkflowTemplate tenant-lifecycle not found in namespace team-ns" in text
    assert "kubectl apply -k deploy/base" in text
    assert "TENANTCTL_WORKFLOW_NAMESPACE" in text
    assert "\n" not in text
    assert kube.gets == [("workflowtemplates", "tenant-lifecycle", "team-ns")]
    ArgoEngine(OneWorkflow(), namespace="team-ns").require_template()  # type: ignore[arg-type]


def test_wait_shows_the_nodes_of_a_compressed_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    packed = base64.b64encode(gzip.compress(json.dumps(NODES).encode())).decode()
    kube = OneWorkflow({"status": {"phase": "Failed", "compressedNodes": packed}})
    assert watch_workflow(kube, "tenant-lifecycle", "lc-b1", echo=True) == "Failed"
    out = capsys.readouterr().out
    assert "  abort-on-failure(0:team-a/schema): Failed - Error (exit code 3)" in out


def test_wait_says_once_why_offloaded_nodes_are_not_shown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = {"phase": "Succeeded", "offloadNodeStatusVersion": "fnv:1"}
    kube = OneWorkflow({"metadata": {"name": "lc-b1"}, "status": status})
    assert watch_workflow(kube, "tenant-lifecycle", "lc-b1", echo=True) == "Succeeded"
    captured = capsys.readouterr()
    (note,) = captured.err.splitlines()
    assert note.startswith("note: workflow lc-b1: its node status was offloaded")
    assert "workflow lc-b1: Succeeded" in captured.out


class FlakyApi(OneWorkflow):
    """The API server does not answer the first ``outage`` reads of the Workflow."""

    def __init__(self, workflow: dict[str, Any], *, outage: int) -> None:
        super().__init__(workflow)
        self.outage = outage

    def get(self, resource: Any, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        if resource.plural == "workflows" and self.outage:
            self.outage -= 1
            raise UnavailableError("503 Service Unavailable", status=503)
        return super().get(resource, name, namespace=namespace)


def test_wait_says_once_that_the_api_is_down_and_keeps_waiting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kube = FlakyApi({"status": {"phase": "Succeeded"}}, outage=3)
    assert watch_workflow(kube, "tenant-lifecycle", "lc-b1", echo=True, poll_seconds=0.01) == (
        "Succeeded"
    )
    down, back = capsys.readouterr().err.splitlines()
    assert down.startswith("note: the API server did not answer (503 Service Unavailable)")
    assert "still waiting for workflow lc-b1" in down
    assert back == "note: the API server answers again"
    assert kube.outage == 0
