"""docs/rbac.md is exact: with only the ClusterRoles it shows, the bridge runs a Job and discovery
plans it -- and the bridge still cannot read a Secret."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.contract import ContractSettings
from bridge.discovery import discover
from bridge.errors import ForbiddenError
from bridge.kube import SECRETS, Kube
from bridge.result import Status
from bridge.runner import Runner, RunRequest
from sandbox import Sandbox
from tests.integration.bridge.conftest import FAST, FAST_KUBE, PREFIX

DOC = Path(__file__).resolve().parents[3] / "docs" / "rbac.md"


def documented_cluster_roles() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    roles = [doc for block in blocks for doc in yaml.safe_load_all(block) if doc]
    assert {r["metadata"]["name"] for r in roles} == {
        "tenant-lifecycle-bridge",
        "tenant-lifecycle-bridge-cluster",
    }
    return roles


def _binding(kind: str, role: str, namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"{role}-binding"}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "bridge", "namespace": "argo"}],
    }


def test_documented_rbac_is_enough_and_secrets_stay_unreadable(sandbox_rbac: Sandbox) -> None:
    sb = sandbox_rbac
    ns = "team-rbac"
    sb.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argo"}},
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {f"{PREFIX}/enabled": "true"}},
            },
            *documented_cluster_roles(),
            _binding("RoleBinding", "tenant-lifecycle-bridge", ns),
            _binding("ClusterRoleBinding", "tenant-lifecycle-bridge-cluster"),
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": "schema",
                    "namespace": ns,
                    "labels": {f"{PREFIX}/enabled": "true"},
                    "annotations": {f"{PREFIX}/operations": "lifecycle.upsert"},
                },
                "spec": {
                    "suspend": True,
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {"name": "main", "image": "busybox", "command": ["echo", "ok"]}
                            ],
                        }
                    },
                },
            },
        ]
    )
    token = sb.issue_token(user="system:serviceaccount:argo:bridge")
    with Kube(settings=FAST_KUBE, host=sb.url, token=token) as kube:
        found = discover(kube, operation="lifecycle.upsert", settings=ContractSettings())
        assert [f"{j.namespace}/{j.name}" for j in found.plan.jobs()] == [f"{ns}/schema"]

        out = io.StringIO()
        request = RunRequest(
            namespace=ns,
            job="schema",
            operation="lifecycle.upsert",
            tenant_env_id="t-1",
            batch_operation_id="b-rbac",
            workflow_name="lc-b-rbac",
            workflow_namespace="argo",
        )
        result = Runner(kube, request, settings=FAST, out=out).run()
        assert result.status is Status.SUCCEEDED, result.message
        assert out.getvalue() == "ok\n"

        with pytest.raises(ForbiddenError):
            kube.get(SECRETS, "anything", namespace=ns)
        with pytest.raises(ForbiddenError):
            list(kube.list(SECRETS, namespace=ns))
