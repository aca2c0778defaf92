"""A managed team namespace: opted in, the bridge and the sweeper bound, fenced and bounded."""

from __future__ import annotations

from typing import Any

from workflows.settings import WorkflowSettings

from .common import (
    BRIDGE_CLUSTER_ROLE,
    SWEEPER_CLUSTER_ROLE,
    Manifest,
    meta,
    role_binding,
    service_account_subject,
)


def team_namespace(settings: WorkflowSettings, namespace: str) -> list[Manifest]:
    """A managed team namespace: opted in, the bridge bound, fenced and bounded."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {
                    settings.enabled_label: "true",
                    "app.kubernetes.io/part-of": "tenant-lifecycle",
                },
            },
        },
        *_bindings(settings, namespace),
        *_network_policies(namespace),
        *_bounds(namespace),
    ]


def _bindings(settings: WorkflowSettings, namespace: str) -> list[Manifest]:
    """The bridge's and the sweeper's ClusterRoles, bound in this namespace only."""
    ns = settings.workflow_namespace
    return [
        role_binding(
            BRIDGE_CLUSTER_ROLE,
            namespace,
            [service_account_subject(settings.bridge_service_account, ns)],
            kind="ClusterRole",
        ),
        role_binding(
            SWEEPER_CLUSTER_ROLE,
            namespace,
            [service_account_subject(settings.sweeper_service_account, ns)],
            kind="ClusterRole",
        ),
    ]


def _network_policies(namespace: str) -> list[Manifest]:
    """Deny by default; allow DNS and the API server (what the bridged pods' jobs need)."""
    all_pods: dict[str, Any] = {}
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("default-deny", namespace),
            "spec": {"podSelector": all_pods, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("allow-dns", namespace),
            "spec": {
                "podSelector": all_pods,
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                                },
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("allow-api-server", namespace),
            "spec": {
                "podSelector": all_pods,
                "policyTypes": ["Egress"],
                # The API server is not a pod, so it cannot be selected by labels; narrow this
                # to your control plane's address with an ipBlock where it is known.
                "egress": [
                    {"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}
                ],
            },
        },
    ]


def _bounds(namespace: str) -> list[Manifest]:
    """A quota and container defaults: what a runaway fan-out could use is bounded."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": meta("lifecycle", namespace),
            "spec": {
                "hard": {
                    "pods": "50",
                    "requests.cpu": "8",
                    "requests.memory": "16Gi",
                    "limits.cpu": "16",
                    "limits.memory": "32Gi",
                    # one per bridged pod; bounds what a runaway fan-out could leave behind
                    "count/secrets": "200",
                }
            },
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": meta("lifecycle", namespace),
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                        "default": {"cpu": "1", "memory": "1Gi"},
                        "max": {"cpu": "4", "memory": "8Gi"},
                    }
                ]
            },
        },
    ]
