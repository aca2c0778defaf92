"""The rendered Argo manifests against the upstream schemas, strict (unknown fields rejected)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import BuildError
from testbed import argo as pinned_argo
from tests.fixtures.argo_schemas import ArgoSchemas, checked_layout, schemas_dir
from workflows.events import sensor_manifest, sensor_workflow
from workflows.settings import WorkflowSettings
from workflows.template import workflow_template_manifest

REPO = Path(__file__).resolve().parents[3]
RENDERED = REPO / "workflows" / "rendered"


def _rendered_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(RENDERED.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                docs.append((f"{path.relative_to(REPO)}:{doc['kind']}", doc))
    return docs


RENDERED_DOCS = _rendered_documents()


def test_every_argo_kind_is_rendered() -> None:
    kinds = sorted(doc["kind"] for _, doc in RENDERED_DOCS)
    assert kinds == [
        "CronWorkflow",
        "EventBus",
        "EventSource",
        "Sensor",
        "WorkflowTemplate",  # tenant-lifecycle
        "WorkflowTemplate",  # tenant-lifecycle-fleet, which the CronWorkflow references
    ]


@pytest.mark.parametrize(("label", "doc"), RENDERED_DOCS, ids=[label for label, _ in RENDERED_DOCS])
def test_rendered_manifest_passes_upstream_schemas(
    argo_schemas: ArgoSchemas, label: str, doc: dict[str, Any]
) -> None:
    assert argo_schemas.errors(doc["kind"], doc) == []


def test_workflow_inside_the_sensor_passes_the_workflow_crd(argo_schemas: ArgoSchemas) -> None:
    sensor = next(doc for _, doc in RENDERED_DOCS if doc["kind"] == "Sensor")
    workflow = sensor["spec"]["triggers"][0]["template"]["argoWorkflow"]["source"]["resource"]
    assert workflow["kind"] == "Workflow"
    assert argo_schemas.errors("Workflow", workflow) == []
    # The name the trigger completes ("lc-" + event id) still passes once filled in.
    filled = copy.deepcopy(workflow)
    filled["metadata"]["name"] = "lc-b-42"
    assert argo_schemas.errors("Workflow", filled) == []


def _template() -> dict[str, Any]:
    return workflow_template_manifest(WorkflowSettings())


def _step(manifest: dict[str, Any], template: str, step: str) -> dict[str, Any]:
    tmpl = next(t for t in manifest["spec"]["templates"] if t["name"] == template)
    return next(s for group in tmpl["steps"] for s in group if s["name"] == step)


def test_misspelled_entrypoint_is_caught(argo_schemas: ArgoSchemas) -> None:
    manifest = _template()
    manifest["spec"]["entrypont"] = manifest["spec"].pop("entrypoint")
    errors = argo_schemas.errors("WorkflowTemplate", manifest)
    assert any("'entrypont' was unexpected" in e for e in errors), errors
    # Both the CRD and the patched schema.json catch it.
    assert any(e.startswith("WorkflowTemplate CRD") for e in errors)
    assert any(e.startswith("WorkflowTemplate schema.json") for e in errors)


def test_misspelled_with_param_is_caught(argo_schemas: ArgoSchemas) -> None:
    manifest = _template()
    step = _step(manifest, "wave-p8", "abort-on-failure")
    step["withParm"] = step.pop("withParam")
    errors = argo_schemas.errors("WorkflowTemplate", manifest)
    assert any("'withParm' was unexpected" in e for e in errors), errors


def test_misspelled_retry_field_and_wrong_type_are_caught(argo_schemas: ArgoSchemas) -> None:
    manifest = _template()
    bridge = next(t for t in manifest["spec"]["templates"] if t["name"] == "bridge")
    bridge["retryStrategy"]["expresion"] = bridge["retryStrategy"].pop("expression")
    bridge["container"]["args"] = "not-a-list"
    errors = argo_schemas.errors("WorkflowTemplate", manifest)
    assert any("'expresion' was unexpected" in e for e in errors), errors
    assert any("is not of type 'array'" in e for e in errors), errors


def test_invalid_step_name_is_caught(argo_schemas: ArgoSchemas) -> None:
    manifest = _template()
    _step(manifest, "lifecycle", "discover")["name"] = "Discover_Jobs!"
    errors = argo_schemas.errors("WorkflowTemplate", manifest)
    assert any("does not match" in e for e in errors), errors


def test_misspelled_sensor_field_is_caught(argo_schemas: ArgoSchemas) -> None:
    sensor = sensor_manifest(WorkflowSettings())
    trigger = sensor["spec"]["triggers"][0]
    trigger["atLeastOnc"] = trigger.pop("atLeastOnce")
    errors = argo_schemas.errors("Sensor", sensor)
    assert any("'atLeastOnc' was unexpected" in e for e in errors), errors


def test_misspelled_field_in_the_sensor_workflow_is_caught(argo_schemas: ArgoSchemas) -> None:
    workflow = sensor_workflow(WorkflowSettings())
    workflow["spec"]["workflowTemplateRef"]["nmae"] = "tenant-lifecycle"
    errors = argo_schemas.errors("Workflow", workflow)
    assert any("'nmae' was unexpected" in e for e in errors), errors


def test_missing_schema_directory_fails_with_a_clear_message(tmp_path: Path) -> None:
    # pytest.fail raises Failed (an OutcomeException, not Exception): catch it explicitly.
    with pytest.raises(pytest.fail.Exception, match=r"Argo schemas not found at .*nowhere"):
        checked_layout(tmp_path / "nowhere")


def test_pinned_modules_that_cannot_be_had_fail_with_the_reason() -> None:
    def unavailable(directory: Path) -> Path:
        raise BuildError("downloading github.com/argoproj/argo-workflows/v4@v4.1.4 failed: 403")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pinned_argo, "schema_root", unavailable)
        schemas_dir.cache_clear()
        try:
            with pytest.raises(pytest.fail.Exception, match=r"not available: downloading .*403"):
                schemas_dir()
        finally:
            schemas_dir.cache_clear()
