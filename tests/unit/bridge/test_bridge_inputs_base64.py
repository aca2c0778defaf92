"""``--inputs-base64``: how the WorkflowTemplate hands the tenant's text over without Argo
reading it as its own template (``{{...}}`` in tenant data must reach the job unchanged)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bridge.cli.options import read_document as _read_document
from bridge.cli.run_command import prepare_run, run_params

TRICKY = {"name": "{{workflow.name}}", "expr": "{{=1+1}}", "open": "a {{ never closed", "ü": "ö"}


def _encoded(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(base64.b64encode(text.encode("utf-8")).decode("ascii"))
    return path


def test_an_encoded_environment_is_decoded_to_the_same_mapping(tmp_path: Path) -> None:
    import json

    path = _encoded(tmp_path, "environment.b64", json.dumps(TRICKY))
    assert _read_document(str(path), "environment", encoded=True) == TRICKY
    # Without the flag the same file is base64 text, not the document.
    with pytest.raises(Exception, match="must hold a mapping"):
        _read_document(str(path), "environment")


def test_text_that_is_not_base64_is_one_usage_error_naming_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "environment.b64"
    path.write_text("applications: [catalog]\n")
    with pytest.raises(Exception, match=r"--environment: .* is not base64") as caught:
        _read_document(str(path), "environment", encoded=True)
    assert "--inputs-base64" in str(caught.value)


def test_bridge_run_decodes_both_documents_with_the_flag(tmp_path: Path) -> None:
    env = _encoded(tmp_path, "environment.b64", "applications: [catalog]\nx: '{{=1+1}}'\n")
    changes = _encoded(tmp_path, "changeset.b64", "note: '{{workflow.name}}'\n")
    params = run_params(
        ["--namespace", "team-a", "--job", "schema", "--operation", "lifecycle.upsert",
         "--tenant-env-id", "t1", "--batch-operation-id", "b1", "--environment", str(env),
         "--changeset", str(changes), "--inputs-base64", "--kubeconfig", "/nonexistent"],
        {},
    )  # fmt: skip
    setup = prepare_run(params)
    assert setup.request.environment == {"applications": ["catalog"], "x": "{{=1+1}}"}
    assert setup.request.changeset == {"note": "{{workflow.name}}"}
