"""Plain Kubernetes install manifests: namespaces, service accounts, RBAC, settings, team example.

Everything is a plain dict, grouped by the file it is rendered to. The least-privilege story
(``docs/install.md``, the RBAC test in ``tests/integration/workflows``):

* discovery reads namespaces and Jobs cluster-wide and writes nothing;
* the bridge's ClusterRole is never bound cluster-wide: each opted-in team namespace binds it
  with a RoleBinding (the "managed namespace" pattern). It creates and deletes pods, reads their
  logs, and creates/deletes the per-run Secret, but cannot get, list, watch or patch Secrets
  (it writes tenant data into them and never needs to read anyone's). It reads Jobs, and
  namespaces cluster-wide (to re-check the opt-in label) through a separate ClusterRole;
* every service account whose pods Argo runs gets the executor's ``workflowtaskresults`` rights
  in the workflow namespace, and nothing else there;
* the sweeper (a CronJob running ``python -m bridge sweep``) is the only account that may list
  Secrets, in managed namespaces only (RoleBinding per namespace), to find per-run Secrets whose
  pod never existed; it deletes bridge pods and Secrets and reads Workflows, nothing else;
* the orchestrator (``tenantctl listen`` and the exit handler) and the Argo Events Sensor may
  create Workflows; that they only *reference* the reviewed template is enforced by the workflow
  controller's ``templateReferencing: Strict`` (``deploy/argo/``), since RBAC cannot look into
  a Workflow's spec.
"""

from __future__ import annotations

from typing import Any

from .settings import WorkflowSettings

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


def _meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/name": "tenant-lifecycle", **labels}
    return meta


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _sa_subject(name: str, namespace: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def namespaces(settings: WorkflowSettings) -> list[Manifest]:
    """The workflow namespace (WorkflowTemplate, Workflows, platform pods, Argo Events)."""
    meta = _meta(settings.workflow_namespace)
    meta["labels"]["pod-security.kubernetes.io/enforce"] = "baseline"
    meta["labels"]["pod-security.kubernetes.io/warn"] = "restricted"
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": meta}]


def service_accounts(settings: WorkflowSettings) -> list[Manifest]:
    """One service account per role: what each pod may do is what its account may do."""
    accounts = (
        (settings.discovery_service_account, "discovery"),
        (settings.bridge_service_account, "bridge"),
        (settings.orchestrator_service_account, "orchestrator"),
        (settings.events_service_account, "events"),
        (settings.sweeper_service_account, "sweeper"),
    )
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(
                name, settings.workflow_namespace, **{"app.kubernetes.io/component": c}
            ),
        }
        for name, c in accounts
    ]


def discovery_rbac(settings: WorkflowSettings) -> list[Manifest]:
    """Discovery: read namespaces and Jobs everywhere (label-selected lists), write nothing."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(DISCOVERY_CLUSTER_ROLE),
            "rules": [
                _rule([""], ["namespaces"], ["get", "list", "watch"]),
                _rule(["batch"], ["jobs"], ["get", "list", "watch"]),
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(DISCOVERY_CLUSTER_ROLE),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": DISCOVERY_CLUSTER_ROLE,
            },
            "subjects": [
                _sa_subject(settings.discovery_service_account, settings.workflow_namespace)
            ],
        },
    ]


def bridge_rbac(settings: WorkflowSettings) -> list[Manifest]:
    """The bridge's ClusterRole (bound per team namespace) and its cluster-wide namespace read."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(BRIDGE_CLUSTER_ROLE),
            "rules": [
                _rule([""], ["pods"], ["create", "get", "list", "watch", "delete"]),
                _rule([""], ["pods/log"], ["get"]),
                # The per-run Secret carries tenant data in; the bridge never reads Secrets.
                # No `patch` either: a PATCH answers with the whole object, a read in disguise
                # (the bridge creates the pod first and its Secret already owned by it).
                _rule([""], ["secrets"], ["create", "delete"]),
                _rule(["batch"], ["jobs"], ["get"]),
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(BRIDGE_NAMESPACES_CLUSTER_ROLE),
            "rules": [_rule([""], ["namespaces"], ["get"])],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(BRIDGE_NAMESPACES_CLUSTER_ROLE),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": BRIDGE_NAMESPACES_CLUSTER_ROLE,
            },
            "subjects": [_sa_subject(settings.bridge_service_account, settings.workflow_namespace)],
        },
    ]


def sweeper_rbac(settings: WorkflowSettings) -> list[Manifest]:
    """The sweeper: bound per managed namespace, lists namespaces, reads Workflows."""
    ns = settings.workflow_namespace
    subject = [_sa_subject(settings.sweeper_service_account, ns)]
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(SWEEPER_CLUSTER_ROLE),
            "rules": [
                _rule([""], ["pods"], ["list", "delete"]),
                # RBAC cannot restrict a list to a label selector: this is why the sweeper has
                # its own account and the bridge has no list on Secrets at all.
                _rule([""], ["secrets"], ["list", "delete"]),
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(SWEEPER_NAMESPACES_CLUSTER_ROLE),
            "rules": [_rule([""], ["namespaces"], ["list"])],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(SWEEPER_NAMESPACES_CLUSTER_ROLE),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": SWEEPER_NAMESPACES_CLUSTER_ROLE,
            },
            "subjects": subject,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(SWEEPER_ROLE, ns),
            "rules": [_rule(["argoproj.io"], ["workflows"], ["get"])],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(SWEEPER_ROLE, ns),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": SWEEPER_ROLE,
            },
            "subjects": subject,
        },
    ]


def sweep_cron_job(settings: WorkflowSettings) -> list[Manifest]:
    """``python -m bridge sweep`` on a schedule (Argo's terminate skips exit handlers)."""
    container: dict[str, Any] = {
        "name": "sweep",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python", "-m", "bridge", "sweep"],
        "args": ["--older-than", settings.sweep_older_than],
        "envFrom": [{"configMapRef": {"name": settings.settings_config_map, "optional": True}}],
        "resources": {
            "requests": dict(settings.container_requests),
            "limits": dict(settings.container_limits),
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": _meta("tenant-lifecycle-sweep", settings.workflow_namespace),
            "spec": {
                "schedule": settings.sweep_schedule,
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 1,
                        "activeDeadlineSeconds": 600,
                        "template": {
                            "spec": {
                                "serviceAccountName": settings.sweeper_service_account,
                                "restartPolicy": "Never",
                                "securityContext": {
                                    "runAsNonRoot": True,
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                },
                                "containers": [container],
                            }
                        },
                    }
                },
            },
        }
    ]


def workflow_rbac(settings: WorkflowSettings) -> list[Manifest]:
    """Roles in the workflow namespace: the Argo executor's, the orchestrator's, the Sensor's."""
    ns = settings.workflow_namespace
    pod_accounts = (
        settings.discovery_service_account,
        settings.bridge_service_account,
        settings.orchestrator_service_account,
    )

    def role(name: str, rules: list[dict[str, Any]]) -> Manifest:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(name, ns),
            "rules": rules,
        }

    def binding(name: str, subjects: list[dict[str, str]]) -> Manifest:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(name, ns),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": subjects,
        }

    return [
        # Argo's emissary executor reports outputs through WorkflowTaskResults.
        role(EXECUTOR_ROLE, [_rule(["argoproj.io"], ["workflowtaskresults"], ["create", "patch"])]),
        binding(EXECUTOR_ROLE, [_sa_subject(name, ns) for name in pod_accounts]),
        role(
            ORCHESTRATOR_ROLE,
            [
                _rule(["argoproj.io"], ["workflows"], ["create", "get", "list", "watch", "patch"]),
                _rule(["argoproj.io"], ["workflowtemplates"], ["get", "list", "watch"]),
            ],
        ),
        binding(ORCHESTRATOR_ROLE, [_sa_subject(settings.orchestrator_service_account, ns)]),
        role(
            SUBMITTER_ROLE,
            [
                _rule(["argoproj.io"], ["workflows"], ["create", "get", "list"]),
                _rule(["argoproj.io"], ["workflowtemplates"], ["get"]),
            ],
        ),
        binding(SUBMITTER_ROLE, [_sa_subject(settings.events_service_account, ns)]),
    ]


def settings_config_maps(settings: WorkflowSettings) -> list[Manifest]:
    """Settings every platform container gets through ``envFrom`` (optional in the template)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(settings.settings_config_map, settings.workflow_namespace),
            "data": {
                "BRIDGE_PREFIX": settings.prefix,
                "TENANTCTL_WORKFLOW_NAMESPACE": settings.workflow_namespace,
                "TENANTCTL_TEMPLATE": settings.template_name,
                "TENANTCTL_PROJECT": settings.pubsub_project,
                "TENANTCTL_RESULTS_TOPIC": settings.pubsub_results_topic,
            },
        }
    ]


def team_namespace(settings: WorkflowSettings, namespace: str) -> list[Manifest]:
    """A managed team namespace: opted in, the bridge bound, fenced and bounded."""
    enabled = settings.enabled_label
    all_pods: dict[str, Any] = {}
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {enabled: "true", "app.kubernetes.io/part-of": "tenant-lifecycle"},
            },
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(BRIDGE_CLUSTER_ROLE, namespace),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": BRIDGE_CLUSTER_ROLE,
            },
            "subjects": [_sa_subject(settings.bridge_service_account, settings.workflow_namespace)],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(SWEEPER_CLUSTER_ROLE, namespace),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": SWEEPER_CLUSTER_ROLE,
            },
            "subjects": [
                _sa_subject(settings.sweeper_service_account, settings.workflow_namespace)
            ],
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("default-deny", namespace),
            "spec": {"podSelector": all_pods, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("allow-dns", namespace),
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
            "metadata": _meta("allow-api-server", namespace),
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
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": _meta("lifecycle", namespace),
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
            "metadata": _meta("lifecycle", namespace),
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


def controller_config_map() -> Manifest:
    """A stand-in for the ConfigMap Argo's install ships, so the patch example builds offline."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONTROLLER_CONFIG_MAP, "namespace": ARGO_NAMESPACE},
    }


def template_referencing_patch() -> Manifest:
    """Strategic-merge patch: the controller runs only Workflows that reference a template."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONTROLLER_CONFIG_MAP, "namespace": ARGO_NAMESPACE},
        "data": {"workflowRestrictions": "templateReferencing: Strict\n"},
    }
