"""The platform's own objects in the workflow namespace and Argo's: the namespace, the service
accounts, the settings ConfigMap, the sweeper's CronJob and the Argo controller's patch."""

from __future__ import annotations

from typing import Any

from bridge.invocation import SweepInvocation
from workflows.settings import WorkflowSettings

from .common import ARGO_NAMESPACE, CONTROLLER_CONFIG_MAP, Manifest, meta


def namespaces(settings: WorkflowSettings) -> list[Manifest]:
    """The workflow namespace (WorkflowTemplate, Workflows, platform pods, Argo Events)."""
    metadata = meta(settings.workflow_namespace)
    metadata["labels"]["pod-security.kubernetes.io/enforce"] = "baseline"
    metadata["labels"]["pod-security.kubernetes.io/warn"] = "restricted"
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}]


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
            "metadata": meta(
                name, settings.workflow_namespace, **{"app.kubernetes.io/component": c}
            ),
        }
        for name, c in accounts
    ]


def sweep_cron_job(settings: WorkflowSettings) -> list[Manifest]:
    """``python -m bridge sweep`` on a schedule (Argo's terminate skips exit handlers)."""
    sweep = SweepInvocation(older_than=settings.sweep_older_than)
    container: dict[str, Any] = {
        "name": "sweep",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": sweep.command(),
        "args": sweep.args(),
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
            "metadata": meta("tenant-lifecycle-sweep", settings.workflow_namespace),
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


def settings_config_maps(settings: WorkflowSettings) -> list[Manifest]:
    """Settings every platform container gets through ``envFrom`` (optional in the template)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(settings.settings_config_map, settings.workflow_namespace),
            "data": {
                "BRIDGE_PREFIX": settings.prefix,
                "TENANTCTL_WORKFLOW_NAMESPACE": settings.workflow_namespace,
                "TENANTCTL_TEMPLATE": settings.template_name,
                "TENANTCTL_PROJECT": settings.pubsub_project,
                "TENANTCTL_RESULTS_TOPIC": settings.pubsub_results_topic,
            },
        }
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
