"""``tenantctl listen`` in the cluster: its Deployment, ConfigMap, history volume, Service and
PodDisruptionBudget."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.settings import WorkflowSettings

from .common import HISTORY_SECRET, HISTORY_SECRET_KEY, PRODUCT_UID, Manifest, meta


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
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(d.name, ns, **{"app.kubernetes.io/component": "listen"}),
            # Overridden by the Secrets (see envFrom and env above), never edited in place.
            "data": {"TENANTCTL_STORE": d.history_url},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": meta(d.history_claim, ns, **{"app.kubernetes.io/component": "listen"}),
            "spec": {
                # The cluster's default StorageClass; one writer, so one node at a time.
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": d.history_storage}},
            },
        },
        _deployment(settings, d),
        _service(settings, d),
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(d.name, ns, **{"app.kubernetes.io/component": "listen"}),
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


def _container(settings: WorkflowSettings, d: ListenDeployment) -> dict[str, Any]:
    """The ``tenantctl listen`` container: its settings, probes and locked-down filesystem."""
    port = d.metrics_port
    return {
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


def _pod_spec(settings: WorkflowSettings, d: ListenDeployment) -> dict[str, Any]:
    """Non-root, its history volume owned by the listener's group, a small scratch /tmp."""
    return {
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
        "containers": [_container(settings, d)],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            {"name": "history", "persistentVolumeClaim": {"claimName": d.history_claim}},
        ],
    }


def _deployment(settings: WorkflowSettings, d: ListenDeployment) -> Manifest:
    """One listener, replaced (not rolled) on update: the history volume has one writer."""
    ns = settings.workflow_namespace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(d.name, ns, **{"app.kubernetes.io/component": "listen"}),
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
                "spec": _pod_spec(settings, d),
            },
        },
    }


def _service(settings: WorkflowSettings, d: ListenDeployment) -> Manifest:
    """The Service in front of ``/metrics``, with the scrape annotations."""
    ns = settings.workflow_namespace
    port = d.metrics_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            **meta(d.name, ns, **{"app.kubernetes.io/component": "listen"}),
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
    }
