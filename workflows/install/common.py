"""What every install manifest shares: the names other manifests and the product refer to, and
the metadata, RBAC rule and subject shapes."""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]

# Argo's install namespace and the ConfigMap its workflow controller reads.
ARGO_NAMESPACE = "argo"
CONTROLLER_CONFIG_MAP = "workflow-controller-configmap"
BRIDGE_CLUSTER_ROLE = "tenant-lifecycle-bridge"
BRIDGE_NAMESPACES_CLUSTER_ROLE = "tenant-lifecycle-bridge-namespaces"
DISCOVERY_CLUSTER_ROLE = "tenant-lifecycle-discovery"
SWEEPER_CLUSTER_ROLE = "tenant-lifecycle-sweeper"
SWEEPER_NAMESPACES_CLUSTER_ROLE = "tenant-lifecycle-sweeper-namespaces"
SWEEPER_ROLE = "tenant-lifecycle-sweeper"
EXECUTOR_ROLE = "tenant-lifecycle-executor"
ORCHESTRATOR_ROLE = "tenant-lifecycle-orchestrator"
SUBMITTER_ROLE = "tenant-lifecycle-submitter"
OPERATOR_ROLE = "tenant-lifecycle-operator"
# The Secret an operator creates to keep operation history in PostgreSQL: its key ``url`` is
# read as ``TENANTCTL_STORE`` by ``tenantctl listen`` (optional: without it, the embedded SQLite
# file) and by the scheduled fleet dispatcher (required: a fleet run's history must be shared).
HISTORY_SECRET = "tenant-lifecycle-history"  # noqa: S105 - a Secret's name
HISTORY_SECRET_KEY = "url"  # noqa: S105 - a key's name
# The product image's USER (Dockerfile): numeric, so the kubelet can check runAsNonRoot.
PRODUCT_UID = 10001


def meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/name": "tenant-lifecycle", **labels}
    return meta


def rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def service_account_subject(name: str, namespace: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def cluster_role(name: str, rules: list[dict[str, Any]]) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta(name),
        "rules": rules,
    }


def role(name: str, namespace: str, rules: list[dict[str, Any]]) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(name, namespace),
        "rules": rules,
    }


def cluster_role_binding(name: str, subjects: list[dict[str, str]]) -> Manifest:
    """A ClusterRoleBinding named like the ClusterRole it binds."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta(name),
        "roleRef": _role_ref("ClusterRole", name),
        "subjects": subjects,
    }


def role_binding(
    name: str, namespace: str, subjects: list[dict[str, str]], *, kind: str = "Role"
) -> Manifest:
    """A RoleBinding in ``namespace`` named like the Role (or ClusterRole: ``kind``) it binds."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(name, namespace),
        "roleRef": _role_ref(kind, name),
        "subjects": subjects,
    }


def _role_ref(kind: str, name: str) -> dict[str, str]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}
