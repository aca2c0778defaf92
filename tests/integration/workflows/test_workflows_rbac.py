"""Least privilege, proven: the rendered roles loaded into the sandbox with RBAC on.

The service accounts act through tokens the sandbox issues for them (as the API server does for a
pod's projected token). The bridge runs through its own CLI with a kubeconfig for its token; the
negative checks go through the project's Kubernetes adapter, which turns 403 into ForbiddenError.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.errors import ForbiddenError
from bridge.kube import (
    CONFIGMAPS,
    JOBS,
    NAMESPACES,
    PODS,
    SECRETS,
    WORKFLOWS,
    WORKFLOWTEMPLATES,
    Kube,
    Resource,
)
from sandbox import Sandbox

REPO = Path(__file__).resolve().parents[3]
PREFIX = "tenant-lifecycle.dev"
WF_NS = "tenant-lifecycle"
TASK_RESULTS = Resource("argoproj.io", "v1alpha1", "workflowtaskresults", kind="WorkflowTaskResult")


def _rendered(*relative: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for rel in relative:
        for path in sorted((REPO / "deploy" / rel).glob("*.yaml")):
            docs += [
                d
                for d in yaml.safe_load_all(path.read_text())
                if d and d["kind"] != "Kustomization"
            ]
    return docs


def _job(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "hello",
            "namespace": namespace,
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
                        {
                            "name": "main",
                            "image": "example/hello:1",
                            "command": ["sh", "-c", 'echo "hello $LIFECYCLE_TENANT_ENV_ID"'],
                        }
                    ],
                }
            },
        },
    }


@pytest.fixture
def rbac_cluster(sandbox_rbac: Sandbox) -> Sandbox:
    """The rendered platform + example team, and an opted-in namespace with no RoleBinding."""
    objects = _rendered("base", "team-example")
    served = [o for o in objects if sandbox_rbac.registry.by_kind(o["apiVersion"], o["kind"])]
    # Network policies, quotas and limit ranges are not enforced by the sandbox (docs/sandbox.md);
    # everything RBAC is, and must all be served.
    assert {o["kind"] for o in objects} - {o["kind"] for o in served} <= {
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "CronJob",
        "Deployment",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
    }
    # Namespaces first, as kubectl apply of the kustomize output orders them.
    sandbox_rbac.apply(sorted(served, key=lambda o: o["kind"] != "Namespace"))
    unbound = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-unbound", "labels": {f"{PREFIX}/enabled": "true"}},
    }
    sandbox_rbac.apply([unbound, _job("team-example"), _job("team-unbound")])
    sandbox_rbac.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "team-credentials", "namespace": ns},
                "data": {"password": "c2VjcmV0"},
            }
            for ns in ("team-example", "team-unbound", WF_NS)
        ]
    )
    return sandbox_rbac


def _token(sb: Sandbox, account: str) -> str:
    return sb.issue_token(f"system:serviceaccount:{WF_NS}:{account}")


@pytest.fixture
def kube_as(rbac_cluster: Sandbox) -> Iterator[Callable[[str], Kube]]:
    clients: list[Kube] = []

    def make(account: str) -> Kube:
        kube = Kube(host=rbac_cluster.url, token=_token(rbac_cluster, account))
        clients.append(kube)
        return kube

    yield make
    for kube in clients:
        kube.close()


def _bridge(
    sb: Sandbox, tmp_path: Path, *args: str, account: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BRIDGE_KUBECONFIG": str(sb.kubeconfig_path(token=_token(sb, account))),
        "BRIDGE_MAX_RETRIES": "1",
        "BRIDGE_STUCK_GRACE": "20",
        "POD_NAMESPACE": WF_NS,
    }
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


def _run_args(namespace: str, result: Path) -> list[str]:
    return [
        "run",
        "--namespace", namespace, "--job", "hello",
        "--operation", "lifecycle.upsert", "--tenant-env-id", "t-rbac",
        "--batch-operation-id", "b-rbac", "--result", str(result),
    ]  # fmt: skip


def test_bridge_account_does_its_whole_job_in_a_managed_namespace(
    rbac_cluster: Sandbox, tmp_path: Path
) -> None:
    result = tmp_path / "result.json"
    proc = _bridge(
        rbac_cluster,
        tmp_path,
        *_run_args("team-example", result),
        account="tenant-lifecycle-bridge",
    )
    assert proc.returncode == 0, proc.stderr
    assert "hello t-rbac" in proc.stdout
    outcome = json.loads(result.read_text())
    assert (outcome["status"], outcome["exitCode"]) == ("succeeded", 0)
    # It created its pod and per-run Secret, and (delete policy "succeeded") deleted both:
    # every verb of its role was exercised and none was refused.
    created = {
        (c.rkey, c.obj["metadata"]["name"])
        for c in rbac_cluster.store.changes_since(0)
        if c.type == "ADDED" and c.namespace == "team-example" and c.rkey in ("pods", "secrets")
    }
    pod_names = {name for kind, name in created if kind == "pods"}
    assert len(pod_names) == 1
    assert ("secrets", next(iter(pod_names))) in created
    admin = Kube(host=rbac_cluster.url, token=rbac_cluster.admin_token)
    try:
        assert list(admin.list(PODS, namespace="team-example")) == []
        remaining = [s["metadata"]["name"] for s in admin.list(SECRETS, namespace="team-example")]
        assert remaining == ["team-credentials"]
    finally:
        admin.close()


def test_bridge_account_is_denied_without_a_role_binding(
    rbac_cluster: Sandbox, tmp_path: Path, kube_as: Callable[[str], Kube]
) -> None:
    result = tmp_path / "result.json"
    proc = _bridge(
        rbac_cluster,
        tmp_path,
        *_run_args("team-unbound", result),
        account="tenant-lifecycle-bridge",
    )
    assert proc.returncode not in (0, 75), proc.stderr  # refused or failed, never "retry me"
    assert "forbidden" in proc.stderr.lower() or "403" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    bridge = kube_as("tenant-lifecycle-bridge")
    for call in (
        lambda: bridge.get(JOBS, "hello", namespace="team-unbound"),
        lambda: list(bridge.list(PODS, namespace="team-unbound")),
        lambda: bridge.create(
            PODS, {"metadata": {"name": "x"}, "spec": {"containers": []}}, namespace="team-unbound"
        ),
    ):
        with pytest.raises(ForbiddenError) as denied:
            call()
        assert denied.value.status == 403
    admin = Kube(host=rbac_cluster.url, token=rbac_cluster.admin_token)
    try:
        assert list(admin.list(PODS, namespace="team-unbound")) == []
    finally:
        admin.close()


def test_bridge_account_cannot_read_secrets_anywhere(kube_as: Callable[[str], Kube]) -> None:
    bridge = kube_as("tenant-lifecycle-bridge")
    for namespace in ("team-example", "team-unbound", WF_NS):
        with pytest.raises(ForbiddenError):
            bridge.get(SECRETS, "team-credentials", namespace=namespace)
        with pytest.raises(ForbiddenError):
            list(bridge.list(SECRETS, namespace=namespace))
    with pytest.raises(ForbiddenError):
        list(bridge.list(SECRETS))  # cluster-wide
    with pytest.raises(ForbiddenError):
        next(iter(bridge.watch(SECRETS, namespace="team-example", timeout_seconds=1)))


def test_discovery_account_reads_but_cannot_write(
    rbac_cluster: Sandbox, tmp_path: Path, kube_as: Callable[[str], Kube]
) -> None:
    plan_path = tmp_path / "plan.json"
    proc = _bridge(
        rbac_cluster,
        tmp_path,
        "discover", "--operation", "lifecycle.upsert", "--output", str(plan_path),
        account="tenant-lifecycle-discovery",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(plan_path.read_text())
    assert [f"{j['namespace']}/{j['name']}" for w in plan["waves"] for j in w["jobs"]] == [
        "team-example/hello",
        "team-unbound/hello",
    ]
    discovery = kube_as("tenant-lifecycle-discovery")
    job = _job("team-example")
    writes: list[Callable[[], Any]] = [
        lambda: discovery.create(NAMESPACES, {"metadata": {"name": "evil"}}),
        lambda: discovery.create(CONFIGMAPS, {"metadata": {"name": "x"}}, namespace="team-example"),
        lambda: discovery.create(
            JOBS, {**job, "metadata": {**job["metadata"], "name": "evil"}}, namespace="team-example"
        ),
        lambda: discovery.patch(
            JOBS, "hello", {"spec": {"suspend": False}}, namespace="team-example"
        ),
        lambda: discovery.delete(JOBS, "hello", namespace="team-example"),
        lambda: discovery.patch(NAMESPACES, "team-example", {"metadata": {"labels": {"x": "y"}}}),
        lambda: discovery.create(
            PODS, {"metadata": {"name": "x"}, "spec": {"containers": []}}, namespace="team-example"
        ),
        lambda: discovery.get(SECRETS, "team-credentials", namespace="team-example"),
        lambda: discovery.create(
            WORKFLOWS, {"metadata": {"name": "x"}, "spec": {}}, namespace=WF_NS
        ),
    ]
    for write in writes:
        with pytest.raises(ForbiddenError):
            write()


def test_workflow_namespace_roles(kube_as: Callable[[str], Kube]) -> None:
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "lc-b-1"},
        "spec": {"workflowTemplateRef": {"name": "tenant-lifecycle"}},
    }
    orchestrator = kube_as("tenant-lifecycle-orchestrator")
    orchestrator.create(WORKFLOWS, workflow, namespace=WF_NS)
    orchestrator.patch(
        WORKFLOWS,
        "lc-b-1",
        {"metadata": {"annotations": {f"{PREFIX}/result-published": "now"}}},
        namespace=WF_NS,
    )
    assert [w["metadata"]["name"] for w in orchestrator.list(WORKFLOWS, namespace=WF_NS)] == [
        "lc-b-1"
    ]
    events = kube_as("tenant-lifecycle-events")
    events.create(WORKFLOWS, {**workflow, "metadata": {"name": "lc-b-2"}}, namespace=WF_NS)
    with pytest.raises(ForbiddenError):
        events.delete(WORKFLOWS, "lc-b-1", namespace=WF_NS)
    with pytest.raises(ForbiddenError):
        events.create(
            WORKFLOWTEMPLATES, {"metadata": {"name": "evil"}, "spec": {}}, namespace=WF_NS
        )
    # Pods Argo runs report outputs as WorkflowTaskResults, and may do nothing else there.
    bridge = kube_as("tenant-lifecycle-bridge")
    bridge.create(TASK_RESULTS, {"metadata": {"name": "lc-b-1-123"}}, namespace=WF_NS)
    with pytest.raises(ForbiddenError):
        bridge.create(WORKFLOWS, {**workflow, "metadata": {"name": "lc-b-3"}}, namespace=WF_NS)
    with pytest.raises(ForbiddenError):
        list(bridge.list(PODS, namespace=WF_NS))


def _orphan_pod(namespace: str) -> dict[str, Any]:
    """A bridge pod whose Workflow is gone (as a terminated Workflow leaves it)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "lc-hello-orphan-1",
            "namespace": namespace,
            "labels": {f"{PREFIX}/managed-by": "bridge"},
            "annotations": {
                f"{PREFIX}/workflow-name": "lc-gone",
                f"{PREFIX}/workflow-namespace": WF_NS,
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "image": "example/hello:1", "command": ["sleep", "60"]}
            ],
        },
    }


def test_sweeper_account_sweeps_managed_namespaces_only(
    rbac_cluster: Sandbox, tmp_path: Path, kube_as: Callable[[str], Kube]
) -> None:
    # Opt team-unbound out: the sweeper (like the bridge) is bound in managed namespaces only.
    rbac_cluster.apply(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-unbound"}}]
    )
    rbac_cluster.apply([_orphan_pod("team-example"), _orphan_pod("team-unbound")])
    proc = _bridge(rbac_cluster, tmp_path, "sweep", "--json", account="tenant-lifecycle-sweeper")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    deleted = {(d["kind"], d["namespace"], d["name"]) for d in report["deleted"]}
    assert deleted == {("pod", "team-example", "lc-hello-orphan-1")}
    sweeper = kube_as("tenant-lifecycle-sweeper")
    with pytest.raises(ForbiddenError):
        list(sweeper.list(PODS, namespace="team-unbound"))
    with pytest.raises(ForbiddenError):
        sweeper.create(PODS, _orphan_pod("team-example"), namespace="team-example")
    with pytest.raises(ForbiddenError):
        sweeper.get(SECRETS, "team-credentials", namespace="team-example")
    with pytest.raises(ForbiddenError):
        list(sweeper.list(SECRETS, namespace=WF_NS))
