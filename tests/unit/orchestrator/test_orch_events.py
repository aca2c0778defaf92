"""Parsing and validation of lifecycle request events; building result and request events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from orchestrator.events import (
    FAILED_TYPE,
    REQUEST_TYPE,
    SUCCEEDED_TYPE,
    InvalidEvent,
    encode_event,
    json_depth,
    parse_request,
    request_event,
    result_event,
)

from .bad_events import BAD_EVENTS, valid_event, with_data


def test_valid_request_is_parsed_into_the_model() -> None:
    request = parse_request(json.dumps(valid_event()).encode())
    assert request.batch_operation_id == "batch-0001"
    assert request.tenant_env_id == "tenant-799a"
    assert request.operation == "lifecycle.upsert"
    assert request.region == "eu-west-1"
    assert request.environment == {"applications": ["catalog", "search"]}
    assert request.changeset == {}
    assert request.source == "tenant-manager"
    assert request.time == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert request.parent_batch_operation_id is None


def test_optional_fields_may_be_left_out() -> None:
    event = valid_event(time=None, datacontenttype=None)
    event["data"] = {"operation": "team-a.reindex"}
    request = parse_request(json.dumps(event).encode())
    assert request.operation == "team-a.reindex"  # team operations are allowed
    assert request.region is None
    assert request.environment == {}
    assert request.time is None


def test_extensions_with_valid_names_are_accepted() -> None:
    event = valid_event(traceparent="00-abc-01", priority=3, urgent=True)
    assert parse_request(json.dumps(event).encode()).batch_operation_id == "batch-0001"


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/cloudevents+json"],
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    parse_request(json.dumps(valid_event(datacontenttype=content_type)).encode())


def test_time_with_offset_and_nanoseconds_is_parsed() -> None:
    request = parse_request(
        json.dumps(valid_event(time="2026-11-22T11:00:00.123456789+01:00")).encode()
    )
    assert request.time is not None
    assert request.time.astimezone(UTC).hour == 10


def test_parent_and_source_batch_ids_are_read_from_data() -> None:
    event = with_data(parentBatchOperationId="move-1", sourceBatchOperationId="export-1")
    request = parse_request(json.dumps(event).encode())
    assert request.parent_batch_operation_id == "move-1"
    assert request.source_batch_operation_id == "export-1"


@pytest.mark.parametrize(
    ("name", "data", "code", "word"), BAD_EVENTS, ids=[c[0] for c in BAD_EVENTS]
)
def test_bad_event_is_rejected_with_a_specific_reason(
    name: str, data: bytes, code: str, word: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_request(data)
    assert caught.value.reason_code == code, str(caught.value)
    assert word.lower() in str(caught.value).lower()


def test_there_are_at_least_twenty_distinct_reason_codes() -> None:
    assert len({code for _, _, code, _ in BAD_EVENTS}) >= 20


def test_size_limit_is_configurable() -> None:
    data = json.dumps(valid_event()).encode()
    with pytest.raises(InvalidEvent) as caught:
        parse_request(data, max_bytes=100)
    assert caught.value.reason_code == "TooLarge"
    assert parse_request(data, max_bytes=len(data)).operation == "lifecycle.upsert"


def test_pathological_nesting_does_not_crash_the_parser() -> None:
    data = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(InvalidEvent) as caught:
        parse_request(data, max_bytes=len(data))
    assert caught.value.reason_code == "TooDeep"


def test_error_names_the_field_and_carries_a_hint() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_request(json.dumps(with_data(region=7)).encode())
    assert caught.value.field == "data.region"
    assert caught.value.hint


def test_json_depth() -> None:
    assert json_depth("x") == 0
    assert json_depth({"a": [1, {"b": 2}]}) == 3


def test_request_event_round_trips_through_the_parser() -> None:
    event = request_event(
        "lifecycle.backup",
        tenant_env_id="t-42",
        batch_operation_id="nightly-1",
        region="eu-west-1",
        environment={"applications": ["catalog"]},
        changeset={"a": 1},
    )
    assert event["type"] == REQUEST_TYPE
    request = parse_request(encode_event(event))
    assert (request.batch_operation_id, request.operation, request.changeset) == (
        "nightly-1",
        "lifecycle.backup",
        {"a": 1},
    )


def test_request_event_generates_a_batch_id() -> None:
    first = request_event("lifecycle.upsert", tenant_env_id="t")
    second = request_event("lifecycle.upsert", tenant_env_id="t")
    assert first["id"] != second["id"]
    parse_request(encode_event(first))


@pytest.mark.parametrize(
    ("status", "type_"), [("succeeded", SUCCEEDED_TYPE), ("failed", FAILED_TYPE)]
)
def test_result_event_keeps_the_request_id(status: str, type_: str) -> None:
    event = result_event(
        batch_operation_id="b1",
        tenant_env_id="t1",
        operation="lifecycle.upsert",
        status=status,
        jobs=[{"namespace": "team-a", "job": "schema", "status": status, "wave": 0}],
        workflow="lc-b1",
        region="eu-west-1",
        started_at="2026-11-22T10:00:00Z",
        finished_at="2026-11-22T10:01:00Z",
    )
    assert event["id"] == "b1"
    assert event["type"] == type_
    assert event["subject"] == "t1"
    assert set(event["data"]) == {
        "operation",
        "tenantEnvId",
        "region",
        "status",
        "jobs",
        "workflow",
        "startedAt",
        "finishedAt",
    }
    assert event["data"]["jobs"][0]["job"] == "schema"


def test_result_event_refuses_an_unknown_status() -> None:
    with pytest.raises(ValueError, match="succeeded"):
        result_event(
            batch_operation_id="b",
            tenant_env_id="t",
            operation="lifecycle.upsert",
            status="running",
            jobs=[],
            workflow=None,
        )
