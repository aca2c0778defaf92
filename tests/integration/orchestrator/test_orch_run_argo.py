"""``tenantctl run --engine argo`` against the sandbox: the real CLI as a process.

The WorkflowTemplate is installed by ``deploy/base`` in ``tenant-lifecycle``; ``run`` submits
there by default, and refuses with one line naming the template, the namespace and the fix when
the template is missing (the API server would accept the Workflow; Argo would fail it later).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox import Sandbox

TENANTCTL = str(Path(sys.executable).parent / "tenantctl")
WORKFLOW = ("argoproj.io/v1alpha1", "Workflow")
INSTALL_NAMESPACE = "tenant-lifecycle"


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def template(in_namespace: str) -> dict[str, Any]:
    # What the controller needs to resolve workflowTemplateRef; the submission only checks it.
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "tenant-lifecycle", "namespace": in_namespace},
        "spec": {"entrypoint": "lifecycle", "templates": [{"name": "lifecycle"}]},
    }


def run_argo(
    sandbox: Sandbox, batch: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("TENANTCTL_")
    }  # no ambient configuration
    environment.update({"TERM": "dumb", **(env or {})})
    return subprocess.run(
        [
            TENANTCTL, "run", "lifecycle.upsert", "--tenant-env-id", "t-1", "--engine", "argo",
            "--batch-operation-id", batch, "--kubeconfig", str(sandbox.kubeconfig_path()), *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
    )  # fmt: skip


def test_by_default_it_submits_where_the_install_put_the_template(sandbox: Sandbox) -> None:
    sandbox.apply([namespace(INSTALL_NAMESPACE), template(INSTALL_NAMESPACE)])
    done = run_argo(sandbox, "run-argo-1")
    assert done.returncode == 0, done.stderr
    assert "workflow lc-run-argo-1 submitted in namespace tenant-lifecycle" in done.stdout
    workflow = sandbox.get(WORKFLOW, "lc-run-argo-1", INSTALL_NAMESPACE)
    assert workflow is not None
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "tenant-lifecycle"}


def test_a_missing_template_is_one_line_naming_the_fix_and_nothing_is_submitted(
    sandbox: Sandbox,
) -> None:
    sandbox.apply([namespace(INSTALL_NAMESPACE)])
    done = run_argo(sandbox, "run-argo-2")
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: WorkflowTemplate tenant-lifecycle not found in namespace ")
    assert "namespace tenant-lifecycle" in line
    assert "kubectl apply -k deploy/base" in line
    assert "--namespace" in line
    assert "TENANTCTL_WORKFLOW_NAMESPACE" in line
    assert sandbox.get(WORKFLOW, "lc-run-argo-2", INSTALL_NAMESPACE) is None


@pytest.mark.parametrize("how", ["flag", "env"])
def test_another_namespace_is_checked_and_used(sandbox: Sandbox, how: str) -> None:
    sandbox.apply([namespace(INSTALL_NAMESPACE), namespace("lifecycle-b")])
    flag = ("--namespace", "lifecycle-b") if how == "flag" else ()
    env = {"TENANTCTL_WORKFLOW_NAMESPACE": "lifecycle-b"} if how == "env" else {}
    missing = run_argo(sandbox, f"run-argo-{how}", *flag, env=env)
    assert missing.returncode == 1
    assert "not found in namespace lifecycle-b" in missing.stderr
    assert "Traceback" not in missing.stderr
    sandbox.apply([template("lifecycle-b")])
    done = run_argo(sandbox, f"run-argo-{how}", *flag, env=env)
    assert done.returncode == 0, done.stderr
    assert sandbox.get(WORKFLOW, f"lc-run-argo-{how}", "lifecycle-b") is not None
