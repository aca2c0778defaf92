"""Argo Events: lifecycle requests from Google Cloud Pub/Sub submitted from the template.

The EventSource reads the request topic's subscription; each message's data is the request
CloudEvent (structured JSON, DESIGN.md "Events on the bus"). With ``jsonBody: true`` the
EventSource puts it, parsed, under ``body`` of the Argo Events event data, so the Sensor reads
``body.id``, ``body.subject`` and ``body.data.*``.

The Sensor's ``argoWorkflow`` trigger submits a Workflow that only references the
``tenant-lifecycle`` WorkflowTemplate (template-only execution) and carries the parameters. Its
name is computed in the Sensor by a ``dataTemplate`` (Go text/template with Sprig functions) that
yields exactly ``orchestrator.naming.workflow_name`` of the CloudEvent id: ``lc-`` + the id,
sanitized to a DNS label and hashed/truncated when needed. So any id gives a valid name, a
redelivered message gives a name that already exists (409 from the API server: no duplicate run),
and this path and ``tenantctl listen`` give one request the same name, so they deduplicate each
other. ``workflows/`` may not import ``orchestrator/``, so the rule is restated here;
``tests/integration/test_sensor_naming.py`` evaluates the rendered Sensor with argo-events' own
code (``testbed/sensorcheck``) and compares it with ``workflow_name``.

hera 7.1's Argo Events models predate fields this needs (``atLeastOnce``) and type some as
opaque models, so these manifests are plain dicts; the schema tests hold them to the upstream
Argo Events schema in strict mode, which catches a misspelled field just as a model would.
"""

from __future__ import annotations

from typing import Any

from .settings import WorkflowSettings

API_VERSION = "argoproj.io/v1alpha1"
DEPENDENCY = "request"
# orchestrator/naming.py's workflow_name rule, restated (workflows/ may not import orchestrator/);
# tests hold the two to each other.
WORKFLOW_NAME_PREFIX = "lc-"
WORKFLOW_NAME_MAX = 63
WORKFLOW_NAME_HASH_LENGTH = 10
# Where the CloudEvent id is in the EventSource's event data, as a template field path.
_ID_FIELD = ".Input.body.id"

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


# Go template with <PLACEHOLDERS> filled by workflow_name_template (Go's braces rule out format()).
_NAME_TEMPLATE = r"""
{{- if not <ID> }}{{ fail "the request event has no id" }}{{ end -}}
{{- $id := toString <ID> -}}
{{- $name := lower (replace "\u0130" "i\u0307" $id) -}}
{{- $name = regexReplaceAll "[^a-z0-9-]+" $name "-" -}}
{{- $name = regexReplaceAll "-{2,}" (trimAll "-" $name) "-" -}}
{{- if and (eq $name $id) (le (len $name) <KEEP>) -}}
<PREFIX>{{ $name }}
{{- else -}}
{{- $head := regexReplaceAll "-+$" (trunc <ROOM> $name) "" -}}
<PREFIX>{{ with $head }}{{ . }}-{{ end }}{{ trunc <HASH> (sha256sum $id) }}
{{- end -}}
""".strip()


def workflow_name_template() -> str:
    """The Go template (Argo Events ``dataTemplate``, Sprig functions) computing the Workflow name.

    Step by step as ``orchestrator.naming.workflow_name``: lower-case; every run of characters
    other than ``a-z0-9-`` becomes ``-``; trim ``-`` at both ends; collapse ``--``. The id is
    kept as is when that changed nothing and ``lc-<id>`` fits in 63 characters; otherwise the
    name is ``lc-`` + the sanitized id cut to what leaves room for ``-`` and the first 10 hex
    digits of the id's SHA-256 (``-`` trimmed off the cut), or ``lc-<hash>`` when nothing is left.

    Two differences between Go and Python are bridged here: Python lower-cases ``İ`` (U+0130) to
    ``i`` + a combining dot (U+0307), Go to a plain ``i``, so it is rewritten to Python's form
    first; and a missing id fails the template (no Workflow) instead of naming one after
    ``<nil>``. Everything after sanitizing is ASCII, so Go's byte lengths and slices are
    Python's character ones.
    """
    room = WORKFLOW_NAME_MAX - len(WORKFLOW_NAME_PREFIX) - WORKFLOW_NAME_HASH_LENGTH - 1
    values = {
        "ID": _ID_FIELD,
        "PREFIX": WORKFLOW_NAME_PREFIX,
        "KEEP": str(WORKFLOW_NAME_MAX - len(WORKFLOW_NAME_PREFIX)),
        "ROOM": str(room),
        "HASH": str(WORKFLOW_NAME_HASH_LENGTH),
    }
    text = _NAME_TEMPLATE
    for key, value in values.items():
        text = text.replace(f"<{key}>", value)
    return text


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
            # No name here: the first trigger parameter sets it (workflow_name_template).
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
            # Template only, no dataKey: argo-events would fall back to a dataKey's raw value
            # when the template fails, and a raw id is exactly the name this must never give.
            "src": {"dependencyName": DEPENDENCY, "dataTemplate": workflow_name_template()},
            "dest": "metadata.name",
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
