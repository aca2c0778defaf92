"""Argo Events: lifecycle requests from Google Cloud Pub/Sub submitted from the template.

The EventSource reads the request topic's subscription; each message's data is the request
CloudEvent (structured JSON, DESIGN.md "Events on the bus"). With ``jsonBody: true`` the
EventSource puts it, parsed, under ``body`` of the Argo Events event data, so the Sensor reads
``body.id``, ``body.subject`` and ``body.data.*``.

The Sensor's ``argoWorkflow`` trigger submits a Workflow that only references the
``tenant-lifecycle`` WorkflowTemplate (template-only execution) and carries the parameters. Its
name is ``lc-`` + the CloudEvent id, so a redelivered message produces a name that already
exists and the API server refuses the duplicate with 409. Caveat: a Workflow name must be a valid
DNS label of at most 63 characters (Argo puts it in pod labels), and the Sensor cannot hash or
truncate, so this path needs batch operation ids of at most 60 lowercase alphanumerics and ``-``.
Longer or other ids must go through ``tenantctl listen``, whose name derivation truncates and
hashes (for such short ids both paths give the same name, so they deduplicate each other).

hera 7.1's Argo Events models predate fields this needs (``atLeastOnce``) and type some as
opaque models, so these manifests are plain dicts; the schema tests hold them to the upstream
Argo Events schema in strict mode, which catches a misspelled field just as a model would.
"""

from __future__ import annotations

from typing import Any

from .settings import WorkflowSettings

API_VERSION = "argoproj.io/v1alpha1"
DEPENDENCY = "request"
WORKFLOW_NAME_PREFIX = "lc-"

# Workflow parameter -> (path in the Argo Events event data, default when absent or None).
# Paths are gjson paths into the EventSource's event data (the CloudEvent is under ``body``).
PARAMETER_SOURCES: tuple[tuple[str, str, str | None], ...] = (
    ("operation", "body.data.operation", None),
    ("tenant-env-id", "body.subject", None),
    ("batch-operation-id", "body.id", None),
    ("environment", "body.data.tenantEnvironment", "{}"),
    ("changeset", "body.data.changeset", "{}"),
    ("source-batch-operation-id", "body.data.sourceBatchOperationId", ""),
)


def _exactly(text: str) -> str:
    """An anchored regular expression matching ``text`` only (dots escaped)."""
    return "^" + text.replace(".", "\\.") + "$"


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "tenant-lifecycle", "app.kubernetes.io/component": component}


def event_bus_manifest(settings: WorkflowSettings) -> dict[str, Any]:
    """The ``default`` EventBus in the workflow namespace (JetStream), which both objects use."""
    return {
        "apiVersion": API_VERSION,
        "kind": "EventBus",
        "metadata": {
            "name": "default",
            "namespace": settings.workflow_namespace,
            "labels": _labels("event-bus"),
        },
        "spec": {"jetstream": {"version": "latest", "replicas": 3}},
    }


def event_source_manifest(settings: WorkflowSettings) -> dict[str, Any]:
    """EventSource reading lifecycle requests from the Pub/Sub subscription."""
    return {
        "apiVersion": API_VERSION,
        "kind": "EventSource",
        "metadata": {
            "name": settings.event_source_name,
            "namespace": settings.workflow_namespace,
            "labels": _labels("event-source"),
        },
        "spec": {
            "template": {"serviceAccountName": settings.events_service_account},
            "pubSub": {
                settings.event_name: {
                    "projectID": settings.pubsub_project,
                    "topic": settings.pubsub_request_topic,
                    "subscriptionID": settings.pubsub_subscription,
                    # The request CloudEvent is JSON: parse it so the Sensor can address fields.
                    "jsonBody": True,
                    # Workload Identity is preferred; this key file Secret is the fallback.
                    "credentialSecret": {
                        "name": settings.pubsub_credentials_secret,
                        "key": "credentials.json",
                        "optional": True,
                    },
                }
            },
        },
    }


def sensor_workflow(settings: WorkflowSettings) -> dict[str, Any]:
    """The Workflow the Sensor submits, before the trigger parameters are applied."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {
            # The trigger appends the CloudEvent id to this prefix.
            "name": WORKFLOW_NAME_PREFIX,
            "namespace": settings.workflow_namespace,
            "labels": {
                "app.kubernetes.io/name": "tenant-lifecycle",
                "app.kubernetes.io/managed-by": "argo-events",
            },
        },
        "spec": {
            "workflowTemplateRef": {"name": settings.template_name},
            "arguments": {
                "parameters": [
                    {"name": name, "value": default if default is not None else ""}
                    for name, _, default in PARAMETER_SOURCES
                ]
            },
        },
    }


def _trigger_parameters() -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {
            "src": {"dependencyName": DEPENDENCY, "dataKey": "body.id"},
            "dest": "metadata.name",
            "operation": "append",
        }
    ]
    for index, (_, data_key, default) in enumerate(PARAMETER_SOURCES):
        src: dict[str, Any] = {"dependencyName": DEPENDENCY, "dataKey": data_key}
        if default is not None:
            src["value"] = default
        parameters.append({"src": src, "dest": f"spec.arguments.parameters.{index}.value"})
    return parameters


def sensor_manifest(settings: WorkflowSettings) -> dict[str, Any]:
    """Sensor submitting one Workflow per valid request event."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Sensor",
        "metadata": {
            "name": settings.sensor_name,
            "namespace": settings.workflow_namespace,
            "labels": _labels("sensor"),
        },
        "spec": {
            "template": {"serviceAccountName": settings.events_service_account},
            "dependencies": [
                {
                    "name": DEPENDENCY,
                    "eventSourceName": settings.event_source_name,
                    "eventName": settings.event_name,
                    # Only lifecycle requests with the fields the parameters need; anything
                    # else is dropped by the Sensor (`tenantctl listen` dead-letters instead).
                    "filters": {
                        # String data filters are regular expressions: anchor them.
                        "data": [
                            {
                                "path": "body.type",
                                "type": "string",
                                "value": [_exactly(settings.request_event_type)],
                            },
                            {
                                "path": "body.specversion",
                                "type": "string",
                                "value": [_exactly("1.0")],
                            },
                        ],
                        "exprs": [
                            {
                                "expr": "id != '' && subject != '' && operation != ''",
                                "fields": [
                                    {"name": "id", "path": "body.id"},
                                    {"name": "subject", "path": "body.subject"},
                                    {"name": "operation", "path": "body.data.operation"},
                                ],
                            }
                        ],
                    },
                }
            ],
            "triggers": [
                {
                    "template": {
                        "name": "submit-lifecycle",
                        "argoWorkflow": {
                            "operation": "submit",
                            "source": {"resource": sensor_workflow(settings)},
                            "parameters": _trigger_parameters(),
                        },
                    },
                    # Ack the event on the bus only after the submission succeeded.
                    "atLeastOnce": True,
                    "retryStrategy": {"steps": 5, "duration": "2s", "factor": 2.0, "jitter": 0.2},
                }
            ],
        },
    }
