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

``tenantctl listen`` itself runs as a Deployment (:func:`listen`): one replica, non-root on a
read-only root filesystem, its operation history in an embedded SQLite file on a
PersistentVolumeClaim unless the operator provides a PostgreSQL URL in a Secret, ``/metrics`` behind
a Service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
# The Secret an operator creates to keep operation history in PostgreSQL: its key ``url`` is
# read as ``TENANTCTL_STORE`` by ``tenantctl listen`` (optional: without it, the embedded SQLite
# file) and by the scheduled fleet dispatcher (required: a fleet run's history must be shared).
HISTORY_SECRET = "tenant-lifecycle-history"  # noqa: S105 - a Secret's name
HISTORY_SECRET_KEY = "url"  # noqa: S105 - a key's name
# The product image's USER (Dockerfile): numeric, so the kubelet can check runAsNonRoot.
PRODUCT_UID = 10001


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


@dataclass(frozen=True)
class ListenDeployment:
    """How ``tenantctl listen`` runs in the cluster (:func:`listen`). Defaults: what
    ``deploy/base/listen.yaml`` is rendered with."""

    name: str = "tenant-lifecycle-listen"
    # `tenantctl listen`'s own default --metrics-port; passed explicitly, because the probes and
    # the Service name this port.
    metrics_port: int = 9464
    # Optional Secret whose keys become environment variables (last, so they win over the
    # ConfigMaps): PUBSUB_EMULATOR_HOST, GOOGLE_APPLICATION_CREDENTIALS, any TENANTCTL_* flag.
    env_secret: str = "tenant-lifecycle-listen"  # noqa: S105 - a Secret's name
    # The embedded history: an SQLite file on a PersistentVolumeClaim (survives restarts and
    # rollouts). Retention (`tenantctl history purge`) bounds its size.
    history_claim: str = "tenant-lifecycle-listen-history"
    history_storage: str = "5Gi"
    history_dir: str = "/var/lib/tenant-lifecycle"
    # Shutdown: handlers in flight and the tracker get 25 s each (ListenSettings.shutdown_timeout)
    # before `tenantctl listen` exits on its own; the kubelet's SIGKILL comes later than that.
    termination_grace_period_seconds: int = 90
    requests: Mapping[str, str] = field(default_factory=lambda: {"cpu": "100m", "memory": "256Mi"})
    limits: Mapping[str, str] = field(default_factory=lambda: {"cpu": "1", "memory": "512Mi"})

    @property
    def history_url(self) -> str:
        """The embedded store's URL (SQLAlchemy spelling: four slashes for an absolute path)."""
        return f"sqlite:///{self.history_dir}/history.db"


def _listen_labels() -> dict[str, str]:
    # A new dict each call: one object used twice would be rendered as a YAML anchor and alias.
    return {"app.kubernetes.io/name": "tenant-lifecycle", "app.kubernetes.io/component": "listen"}


def listen(
    settings: WorkflowSettings, deployment: ListenDeployment | None = None
) -> list[Manifest]:
    """``tenantctl listen`` as a Deployment, with its ConfigMap, history volume, Service and PDB.

    Pub/Sub credentials are not part of the base: Workload Identity on the
    ``tenant-lifecycle-orchestrator`` service account, or ``GOOGLE_APPLICATION_CREDENTIALS`` (and
    a mounted key) or ``PUBSUB_EMULATOR_HOST`` through the optional Secret (docs/install.md).
    """
    d = deployment or ListenDeployment()
    ns = settings.workflow_namespace
    port = d.metrics_port
    container: dict[str, Any] = {
        "name": "listen",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["tenantctl"],
        # Listening on the pod's address: the probes and the Service need /metrics and /healthz
        # from outside the container (the flag's default is 127.0.0.1).
        "args": ["listen", "--metrics-host", "0.0.0.0", "--metrics-port", str(port)],  # noqa: S104
        # Later sources win: the settings every platform container reads, then listen's own
        # defaults, then the operator's optional Secret.
        "envFrom": [
            {"configMapRef": {"name": settings.settings_config_map}},
            {"configMapRef": {"name": d.name}},
            {"secretRef": {"name": d.env_secret, "optional": True}},
        ],
        # `env` wins over `envFrom`, and an optional key whose Secret is absent is not set at
        # all: the PostgreSQL URL when the operator created the history Secret, else the
        # ConfigMap's embedded SQLite file. The same Secret the fleet dispatcher reads, so a
        # fleet run and the bus requests end up in one history.
        "env": [
            {
                "name": "TENANTCTL_STORE",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": HISTORY_SECRET,
                        "key": HISTORY_SECRET_KEY,
                        "optional": True,
                    }
                },
            }
        ],
        "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
        # The three paths answer alike (orchestrator/metrics.py): 503 while stopping or while
        # the result tracker cannot watch Workflows. Readiness only takes the pod out of the
        # Service (metrics scraping); liveness restarts it only after ~2.5 minutes of that, so
        # an API server blip does not restart a listener that would recover by itself.
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "metrics"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/livez", "port": "metrics"},
            "initialDelaySeconds": 30,
            "periodSeconds": 30,
            "timeoutSeconds": 5,
            "failureThreshold": 5,
        },
        "resources": {"requests": dict(d.requests), "limits": dict(d.limits)},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": PRODUCT_UID,
            "runAsGroup": PRODUCT_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir, the only scratch
            {"name": "history", "mountPath": d.history_dir},
        ],
    }
    pod_spec: dict[str, Any] = {
        # Creates Workflows from the template and watches them (Role tenant-lifecycle-orchestrator).
        "serviceAccountName": settings.orchestrator_service_account,
        "terminationGracePeriodSeconds": d.termination_grace_period_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": PRODUCT_UID,
            "runAsGroup": PRODUCT_UID,
            # A freshly provisioned volume belongs to root: make it the listener's group.
            "fsGroup": PRODUCT_UID,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            {"name": "history", "persistentVolumeClaim": {"claimName": d.history_claim}},
        ],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(d.name, ns, **{"app.kubernetes.io/component": "listen"}),
            # Overridden by the Secrets (see envFrom and env above), never edited in place.
            "data": {"TENANTCTL_STORE": d.history_url},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _meta(d.history_claim, ns, **{"app.kubernetes.io/component": "listen"}),
            "spec": {
                # The cluster's default StorageClass; one writer, so one node at a time.
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": d.history_storage}},
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(d.name, ns, **{"app.kubernetes.io/component": "listen"}),
            "spec": {
                # One listener. A second one would be safe (Workflow names make submissions
                # idempotent, result claims make publishing happen once) but is not needed to
                # lose nothing: during a restart, requests wait on the subscription.
                "replicas": 1,
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": _listen_labels()},
                # Recreate, not RollingUpdate: the embedded SQLite history has one writer and its
                # ReadWriteOnce volume attaches to one node, so a surge pod could wait forever
                # for the volume (Multi-Attach) while the old one holds it. The gap is seconds:
                # requests wait on the subscription, nothing is lost. With history in PostgreSQL
                # an overlay may switch to RollingUpdate (maxSurge 1, maxUnavailable 0): two
                # listeners at once are safe.
                "strategy": {"type": "Recreate"},
                "template": {
                    "metadata": {
                        "labels": _listen_labels(),
                        "annotations": {
                            # Stateless between messages (unacked ones are redelivered) and its
                            # /tmp is scratch: never a reason to keep a node from scaling down.
                            "cluster-autoscaler.kubernetes.io/safe-to-evict": "true",
                        },
                    },
                    "spec": pod_spec,
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                **_meta(d.name, ns, **{"app.kubernetes.io/component": "listen"}),
                # For Prometheus configurations that discover Services by annotation; with the
                # Prometheus Operator, select this Service's labels from a ServiceMonitor.
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(port),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "selector": _listen_labels(),
                "ports": [
                    {"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}
                ],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(d.name, ns, **{"app.kubernetes.io/component": "listen"}),
            "spec": {
                # Says, for tools that look for a PDB, that draining the listener is fine: it
                # holds nothing a restart loses, and it never blocks a drain, even when unhealthy.
                # What must not be evicted mid-operation are a running Workflow's pods (see
                # docs/install.md, "The tenantctl listen Deployment").
                "maxUnavailable": 1,
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
                "selector": {"matchLabels": _listen_labels()},
            },
        },
    ]
