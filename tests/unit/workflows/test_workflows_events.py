"""The Argo Events path: a request CloudEvent through the Sensor's trigger into a Workflow.

Argo Events applies each trigger parameter by reading ``src.dataKey`` (a gjson path) from the
event data and writing it at ``dest`` (an sjson path) in the resource, with ``operation``
``append``/``prepend``/``overwrite``; a missing key falls back to ``src.value``. That is
reproduced here for the paths the Sensor uses, so the test shows which Workflow a given request
becomes, and that its parameters are the ones the template declares. The Workflow name is a
``src.dataTemplate`` (Go text/template), which Python cannot run: it is taken here as
``workflow_name`` of the id, which ``tests/integration/test_sensor_naming.py`` proves by
evaluating the template with argo-events' own code.

``test_submitted_parameters_run_the_template`` ran the template on ``workflows/emulator.py``
(removed); what the template does with its parameters is proven on the real Argo controller
(``tests/e2e/argo``), and its text check stays here as
``test_submitted_parameters_are_the_templates_and_the_environment_is_a_document``.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import naming
from tests.fixtures.argo_schemas import ArgoSchemas
from workflows import events
from workflows.events import WORKFLOW_NAME_PREFIX
from workflows.settings import WorkflowSettings
from workflows.template import workflow_template_manifest

REPO = Path(__file__).resolve().parents[3]

SENSOR: dict[str, Any] = yaml.safe_load(
    (REPO / "workflows/rendered/events/sensor.yaml").read_text()
)
SOURCE: dict[str, Any] = yaml.safe_load(
    (REPO / "workflows/rendered/events/eventsource.yaml").read_text()
)
TRIGGER = SENSOR["spec"]["triggers"][0]

REQUEST = {
    "specversion": "1.0",
    "type": "dev.tenant-lifecycle.operation.requested",
    "source": "tenant-manager",
    "id": "b-20261122-0001",
    "subject": "799a0c4e",
    "time": "2026-11-22T10:00:00Z",
    "datacontenttype": "application/json",
    "data": {
        "operation": "lifecycle.upsert",
        "region": "eu-west-1",
        "tenantEnvironment": {"applications": ["catalog", "search"]},
        "changeset": {},
    },
}


def _get(data: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _as_text(value: Any) -> str:
    # gjson's String() of an object or array is its JSON text.
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _set(resource: dict[str, Any], path: str, value: str, operation: str) -> None:
    keys = path.split(".")
    node: Any = resource
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last: Any = int(keys[-1]) if isinstance(node, list) else keys[-1]
    current = node[last] if (isinstance(node, list) or last in node) else ""
    node[last] = {"append": current + value, "prepend": value + current}.get(operation, value)


def submitted_workflow(event: dict[str, Any]) -> dict[str, Any]:
    """The Workflow the Sensor's trigger creates for a Pub/Sub message carrying ``event``."""
    data = {"id": "pubsub-message-1", "body": event}  # the EventSource's event data (jsonBody)
    resource = copy.deepcopy(TRIGGER["template"]["argoWorkflow"]["source"]["resource"])
    for param in TRIGGER["template"]["argoWorkflow"]["parameters"]:
        if "dataTemplate" in param["src"]:
            assert param["src"]["dataTemplate"] == events.workflow_name_template()
            if not _get(data, "body.id"):
                raise LookupError("event has no body.id: the name template fails")
            _set(resource, param["dest"], naming.workflow_name(data["body"]["id"]), "overwrite")
            continue
        value = _get(data, param["src"]["dataKey"])
        if value is None:
            if "value" not in param["src"]:
                raise LookupError(f"event has no {param['src']['dataKey']} and no default")
            value = param["src"]["value"]
        _set(resource, param["dest"], _as_text(value), param.get("operation", "overwrite"))
    return resource


def _parameters(workflow: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}


def test_request_becomes_a_workflow_referencing_the_template(argo_schemas: ArgoSchemas) -> None:
    workflow = submitted_workflow(REQUEST)
    assert workflow["metadata"]["name"] == WORKFLOW_NAME_PREFIX + "b-20261122-0001"
    assert workflow["spec"] == {
        "workflowTemplateRef": {"name": "tenant-lifecycle"},
        "arguments": workflow["spec"]["arguments"],
    }
    assert _parameters(workflow) == {
        "operation": "lifecycle.upsert",
        "tenant-env-id": "799a0c4e",
        "batch-operation-id": "b-20261122-0001",
        "environment": '{"applications":["catalog","search"]}',
        "changeset": "{}",
        "source-batch-operation-id": "",
    }
    assert argo_schemas.errors("Workflow", workflow) == []


def test_any_batch_id_gets_the_orchestrators_workflow_name(argo_schemas: ArgoSchemas) -> None:
    event = copy.deepcopy(REQUEST)
    event["id"] = "Batch_1/" + "X" * 80
    workflow = submitted_workflow(event)
    assert workflow["metadata"]["name"] == naming.workflow_name(event["id"])
    assert _parameters(workflow)["batch-operation-id"] == event["id"]  # the id itself, unchanged
    assert argo_schemas.errors("Workflow", workflow) == []


def test_name_template_restates_the_orchestrators_naming_rule() -> None:
    # workflows/ may not import orchestrator/: the constants are repeated, and held equal here.
    assert (
        events.WORKFLOW_NAME_PREFIX,
        events.WORKFLOW_NAME_MAX,
        events.WORKFLOW_NAME_HASH_LENGTH,
    ) == (naming.WORKFLOW_PREFIX, naming.MAX_NAME, naming._HASH_LENGTH)
    (name_parameter,) = [
        p for p in TRIGGER["template"]["argoWorkflow"]["parameters"] if p["dest"] == "metadata.name"
    ]
    # No dataKey: argo-events would fall back to the raw id whenever the template failed.
    assert name_parameter["src"] == {
        "dependencyName": "request",
        "dataTemplate": events.workflow_name_template(),
    }
    assert name_parameter.get("operation", "overwrite") == "overwrite"


def test_absent_optional_fields_take_their_defaults() -> None:
    event = copy.deepcopy(REQUEST)
    del event["data"]["tenantEnvironment"], event["data"]["changeset"]
    event["data"]["sourceBatchOperationId"] = "b-export-7"
    params = _parameters(submitted_workflow(event))
    assert (params["environment"], params["changeset"]) == ("{}", "{}")
    assert params["source-batch-operation-id"] == "b-export-7"


def test_submitted_parameters_are_the_templates_and_the_environment_is_a_document() -> None:
    params = _parameters(submitted_workflow(REQUEST))
    template = workflow_template_manifest(WorkflowSettings())
    declared = {p["name"]: p for p in template["spec"]["arguments"]["parameters"]}
    # Every parameter the Sensor sets is one the template declares, and none it must set is
    # missing (parallelism keeps the template's default).
    assert set(params) <= set(declared), set(params) - set(declared)
    assert {n for n, p in declared.items() if "value" not in p} <= set(params)
    assert set(declared) - set(params) == {"parallelism"}
    # The environment arrives as the JSON text of the event's object: a YAML document that
    # discovery's applications filter reads (what Argo does with it: tests/e2e/argo).
    assert yaml.safe_load(params["environment"]) == {"applications": ["catalog", "search"]}
    assert yaml.safe_load(params["changeset"]) == {}


def test_sensor_only_accepts_lifecycle_requests() -> None:
    dependency = SENSOR["spec"]["dependencies"][0]
    assert (dependency["eventSourceName"], dependency["eventName"]) == (
        SOURCE["metadata"]["name"],
        next(iter(SOURCE["spec"]["pubSub"])),
    )
    data_filters = {f["path"]: f["value"] for f in dependency["filters"]["data"]}
    # Argo Events matches string filters as regular expressions (RE2; same syntax here).
    assert {
        path: bool(re.fullmatch(v[0], _get(REQUEST, path[5:]))) for path, v in data_filters.items()
    } == {
        "body.type": True,
        "body.specversion": True,
    }
    assert not re.search(
        data_filters["body.type"][0], "dev.tenant-lifecycle.operation.requested.v2"
    )
    assert not re.search(data_filters["body.specversion"][0], "10")
    assert SOURCE["spec"]["pubSub"]["requests"]["jsonBody"] is True
    assert TRIGGER["atLeastOnce"] is True
    assert TRIGGER["retryStrategy"]["steps"] >= 3


@pytest.mark.parametrize("field", ["id", "subject"])
def test_missing_identifying_field_cannot_make_a_workflow(field: str) -> None:
    event = copy.deepcopy(REQUEST)
    del event[field]
    with pytest.raises(LookupError):
        submitted_workflow(event)
