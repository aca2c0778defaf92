"""Sweep against the sandbox: pods and Secrets of finished or gone workflows go, the rest stays."""

from __future__ import annotations

import base64
from typing import Any

from bridge.contract import ContractSettings
from bridge.errors import NotFoundError
from bridge.kube import PODS, SECRETS, WORKFLOWS
from bridge.sweep import Sweeper
from tests.integration.bridge.conftest import PREFIX, BridgeEnv


def _workflow(name: str, phase: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": "argo"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main"}]},
        "status": {"phase": phase},
    }


def _annotations(workflow: str | None) -> dict[str, str]:
    if workflow is None:
        return {}
    return {f"{PREFIX}/workflow-name": workflow, f"{PREFIX}/workflow-namespace": "argo"}


def _labels() -> dict[str, str]:
    return {f"{PREFIX}/managed-by": "bridge", f"{PREFIX}/batch": "b", f"{PREFIX}/job": "j"}


def _pod(env: BridgeEnv, name: str, workflow: str | None, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": env.namespace,
            "labels": _labels(),
            "annotations": _annotations(workflow),
        },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}],
        },
    }


def _secret(env: BridgeEnv, name: str, workflow: str | None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": env.namespace,
            "labels": _labels(),
            "annotations": _annotations(workflow),
        },
        "data": {"environment.yaml": base64.b64encode(b"{}").decode()},
    }


def _exists(env: BridgeEnv, resource: Any, name: str) -> bool:
    try:
        env.kube.get(resource, name, namespace=env.namespace)
    except NotFoundError:
        return False
    return True


def test_sweep_deletes_leftovers_of_finished_or_gone_workflows(bridge_env: BridgeEnv) -> None:
    env = bridge_env
    env.add_namespace("argo", opted_in=False)
    # Argo's Workflow CRD has no status subresource: the status is part of the object.
    env.backend.apply([_workflow("wf-done", "Succeeded"), _workflow("wf-running", "Running")])
    assert env.kube.get(WORKFLOWS, "wf-done", namespace="argo")["status"]["phase"] == "Succeeded"
    env.backend.apply(
        [
            _pod(env, "p-done", "wf-done", "sleep 30"),
            _pod(env, "p-running", "wf-running", "sleep 30"),
            _pod(env, "p-gone", "wf-missing", "true"),
            _pod(env, "p-orphan", None, "true"),
            _secret(env, "p-done", "wf-done"),
            _secret(env, "p-running", "wf-running"),
            _secret(env, "s-orphan", "wf-done"),
            _secret(env, "s-young", None),
        ]
    )
    env.backend.wait_for_pod(env.namespace, "p-orphan")

    # Dry run through the CLI: says what would go, deletes nothing.
    dry = env.cli_in_process("sweep", "--dry-run", "--older-than", "1h")
    assert dry.returncode == 0, dry.stderr
    assert f"would delete pod {env.namespace}/p-done" in dry.stdout
    assert f"would delete secret {env.namespace}/s-orphan" in dry.stdout
    assert "p-running" not in dry.stdout
    assert _exists(env, PODS, "p-done")

    report = Sweeper(
        env.kube, contract=ContractSettings(), older_than=3600, delete_grace_seconds=1
    ).run()
    mine = {(a.kind, a.name) for a in report.deleted if a.namespace == env.namespace}
    assert mine == {("pod", "p-done"), ("pod", "p-gone"), ("secret", "s-orphan")}
    assert not _exists(env, SECRETS, "p-done")  # went with its pod
    assert _exists(env, PODS, "p-running")
    assert _exists(env, SECRETS, "p-running")
    assert _exists(env, PODS, "p-orphan")  # no workflow, younger than the threshold
    assert _exists(env, SECRETS, "s-young")

    report = Sweeper(env.kube, contract=ContractSettings(), older_than=0).run()
    mine = {(a.kind, a.name) for a in report.deleted if a.namespace == env.namespace}
    assert mine == {("pod", "p-orphan"), ("secret", "s-young")}
    assert _exists(env, PODS, "p-running")  # a running workflow's pod is never touched
    env.kube.delete(PODS, "p-running", namespace=env.namespace, grace_period_seconds=0)
