"""Properties of ``orchestrator.events.parse_request``: whatever arrives on the bus, the parser
returns a valid request or raises ``InvalidEvent`` with a reason code and a message -- nothing
else -- and the same bytes always give the same answer."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import event, example, given
from hypothesis import strategies as st

from bridge.contract import operation_name_problem
from orchestrator.events import InvalidEvent, LifecycleRequest, binary_message, parse_request

from .strategies import JSON_VALUES, near_valid_events

REASON_CODE = re.compile(r"^[A-Z][A-Za-z0-9]+$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
VALID = {
    "specversion": "1.0",
    "type": "dev.tenant-lifecycle.operation.requested",
    "source": "tenant-manager",
    "id": "b-1",
    "subject": "t-1",
    "data": {"operation": "lifecycle.upsert"},
}


def outcome(data: bytes) -> LifecycleRequest | InvalidEvent:
    """The parser's answer; any exception other than InvalidEvent fails the property."""
    try:
        return parse_request(data)
    except InvalidEvent as exc:
        return exc


def check_answer(data: bytes) -> LifecycleRequest | InvalidEvent:
    answer = outcome(data)
    event(f"rejected: {answer.reason_code}" if isinstance(answer, InvalidEvent) else "accepted")
    if isinstance(answer, InvalidEvent):
        assert REASON_CODE.match(answer.reason_code), answer.reason_code
        assert str(answer).strip(), answer.reason_code
        assert isinstance(answer.field, str)
    else:
        assert LABEL_VALUE.match(answer.batch_operation_id)
        assert LABEL_VALUE.match(answer.tenant_env_id)
        assert operation_name_problem(answer.operation) is None
        assert isinstance(answer.environment, dict)
        assert isinstance(answer.changeset, dict)
    # Deterministic: the same message is always judged the same way (redeliveries agree).
    again = outcome(data)
    if isinstance(answer, InvalidEvent):
        assert isinstance(again, InvalidEvent)
        assert (again.reason_code, str(again), again.field) == (
            answer.reason_code,
            str(answer),
            answer.field,
        )
    else:
        assert again == answer
    return answer


@given(st.binary(max_size=300))
@example(b"")
@example(b"\xff\xfe")
@example(b"[" * 5000)
@example(b'{"a":' * 40 + b"1" + b"}" * 40)
def test_arbitrary_bytes(data: bytes) -> None:
    check_answer(data)


@given(JSON_VALUES)
def test_arbitrary_json(value: Any) -> None:
    check_answer(json.dumps(value).encode())


@given(near_valid_events())
@example(VALID)
def test_near_valid_events(event: dict[str, Any]) -> None:
    answer = check_answer(json.dumps(event).encode())
    if isinstance(answer, LifecycleRequest):
        # What the parser accepted is what was sent.
        assert answer.batch_operation_id == event["id"]
        assert answer.tenant_env_id == event["subject"]
        assert answer.operation == event["data"]["operation"]
        assert answer.source == event["source"]


@given(near_valid_events(), st.integers(0, 4))
def test_a_valid_event_with_one_field_broken_names_a_reason(
    event: dict[str, Any], which: int
) -> None:
    # Start from the valid event and break exactly one required attribute.
    broken = dict(VALID)
    name = ["specversion", "type", "id", "subject", "data"][which]
    if name in event and event[name] != VALID[name]:
        broken[name] = event[name]
    else:
        del broken[name]
    answer = check_answer(json.dumps(broken).encode())
    if isinstance(answer, LifecycleRequest):
        # Only possible when the replacement was itself valid.
        assert name in ("id", "subject", "data")
    else:
        assert answer.field == "" or answer.field.split(".")[0] in {name, "data"}


@given(near_valid_events())
@example(VALID)
def test_what_structured_mode_accepts_binary_mode_accepts_as_the_same_request(
    event: dict[str, Any],
) -> None:
    answer = outcome(json.dumps(event).encode())
    if not isinstance(answer, LifecycleRequest):
        return
    if "specversion" in event["data"]:
        return  # a data object that looks like an event is a mixed-up binary message
    body, attributes = binary_message(event)
    assert parse_request(body, attributes) == answer


ATTRIBUTE_KEYS = st.sampled_from(
    [
        "ce-specversion",
        "ce-id",
        "ce-type",
        "ce-source",
        "ce-subject",
        "ce-time",
        "ce-x",
        "ce-data",
        "ce-datacontenttype",
        "content-type",
        "origin",
        "ce-",
        "ce-Bad_Name",
    ]
)


@given(st.binary(max_size=200), st.dictionaries(ATTRIBUTE_KEYS, st.text(max_size=40)))
@example(b"", {"ce-specversion": "1.0"})
@example(b'{"operation": "lifecycle.upsert"}', {"content-type": "application/cloudevents+xml"})
def test_arbitrary_binary_messages_get_an_answer(data: bytes, attributes: dict[str, str]) -> None:
    try:
        parse_request(data, attributes)
    except InvalidEvent as exc:
        answer: InvalidEvent | None = exc
    else:
        answer = None
    if answer is not None:
        assert REASON_CODE.match(answer.reason_code), answer.reason_code
        assert str(answer).strip()
