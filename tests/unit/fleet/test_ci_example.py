"""The GitHub Actions example: short-lived credentials only, no script injection, and a
publish step whose command line ``tenantctl publish`` accepts (the script really runs, with a
recording stand-in for ``tenantctl`` on PATH)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli import main

EXAMPLE = Path(__file__).resolve().parents[3] / "examples/github-actions/request-operation.yml"


def _workflow() -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(EXAMPLE.read_text())
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def _publish_step(workflow: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in workflow["jobs"]["request"]["steps"] if s.get("id") == "publish"]
    return step


def test_only_short_lived_credentials_and_least_privilege() -> None:
    workflow = _workflow()
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    steps = workflow["jobs"]["request"]["steps"]
    (auth,) = [s for s in steps if s.get("id") == "auth"]
    assert auth["uses"].startswith("google-github-actions/auth@")
    assert set(auth["with"]) >= {"workload_identity_provider", "service_account"}
    text = EXAMPLE.read_text()
    assert "credentials_json" not in text
    assert "secrets." not in text  # nothing long-lived is stored in the repository


def test_no_input_is_pasted_into_a_script() -> None:
    for step in _workflow()["jobs"]["request"]["steps"]:
        assert "${{" not in step.get("run", ""), step.get("name")


def test_the_publish_step_runs_and_tenantctl_accepts_its_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    recorded = tmp_path / "args.json"
    fake = bin_dir / "tenantctl"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(recorded)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    (bin_dir / "python").symlink_to(sys.executable)
    step = _publish_step(_workflow())
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "OPERATION": "lifecycle.upsert",
        "TENANT_ENV_ID": 'x"; echo pwned; "',
        "REGION": "eu-west-1",
        "APPLICATIONS": "catalog, search",
        "BATCH_ID": "gha-acme-123",
        "GITHUB_REPOSITORY": "acme/tenants",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    done = subprocess.run(
        ["bash", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    args = json.loads(recorded.read_text())
    assert args[:2] == ["publish", "lifecycle.upsert"]
    assert args[args.index("--tenant-env-id") + 1] == 'x"; echo pwned; "'  # stayed a string
    assert "pwned" not in done.stdout
    assert json.loads((tmp_path / "environment.json").read_text()) == {
        "applications": ["catalog", "search"]
    }
    assert (tmp_path / "output").read_text() == "batch-operation-id=gha-acme-123\n"
    # As in the step's env: the project comes from TENANTCTL_PROJECT, files from the workspace.
    monkeypatch.setenv("TENANTCTL_PROJECT", "my-project")
    monkeypatch.chdir(tmp_path)
    publish = main.commands["publish"]
    ctx = publish.make_context("publish", args[1:], parent=None)  # raises on a bad flag
    assert ctx.params["region"] == "eu-west-1"
    assert ctx.params["batch_operation_id"] == "gha-acme-123"
