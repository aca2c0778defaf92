"""The CloudEvents Pub/Sub binding's two content modes: structured (the whole event in the body)
and binary (``ce-*`` attributes, only ``data`` in the body) parse to the same request, and every
malformed binary message gets a reason naming the attribute as the message carries it."""

from __future__ import annotations

import json

import pytest

from orchestrator.bus import Disposition
from orchestrator.events import (
    BINARY,
    REQUEST_TYPE,
    STRUCTURED,
    STRUCTURED_CONTENT_TYPE,
    InvalidEvent,
    LifecycleRequest,
    binary_message,
    content_mode,
    encode_event,
    event_message,
    parse_request,
    request_event,
    structured_message,
)
from orchestrator.listen import Consumer, ConsumerSettings
from orchestrator.metrics import Metrics
from orchestrator.submit import SubmitOutcome
from tests.support.bus import FakeBus

from .bad_events import BAD_BINARY_EVENTS, DROP, binary_parts, valid_event


def test_the_same_event_in_both_modes_is_the_same_request() -> None:
    event = valid_event(traceparent="00-abc-01")
    structured = parse_request(*structured_message(event))
    binary = parse_request(*binary_message(event))
    assert structured == binary
    assert binary.batch_operation_id == "batch-0001"
    assert binary.environment == {"applications": ["catalog", "search"]}


def test_binary_message_layout_follows_the_binding() -> None:
    body, attributes = binary_message(valid_event(priority=3, urgent=True))
    assert json.loads(body) == valid_event()["data"]
    assert attributes == {
        "ce-specversion": "1.0",
        "ce-type": "dev.tenant-lifecycle.operation.requested",
        "ce-source": "tenant-manager",
        "ce-id": "batch-0001",
        "ce-subject": "tenant-799a",
        "ce-time": "2026-11-22T10:00:00Z",
        "ce-priority": "3",
        "ce-urgent": "true",
        "content-type": "application/json",
    }


def test_structured_message_names_its_event_format() -> None:
    body, attributes = structured_message(valid_event())
    assert json.loads(body) == valid_event()
    assert attributes["content-type"] == STRUCTURED_CONTENT_TYPE
    assert (attributes["ce-type"], attributes["ce-id"]) == (
        "dev.tenant-lifecycle.operation.requested",
        "batch-0001",
    )


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="structured, binary"):
        event_message(valid_event(), "batch")


@pytest.mark.parametrize(
    ("data", "attributes", "mode"),
    [
        # the binding: content-type application/cloudevents* is structured
        (b"{}", {"content-type": "application/cloudevents+json"}, STRUCTURED),
        (b"{}", {"content-type": "Application/CloudEvents+JSON; charset=utf-8"}, STRUCTURED),
        # ce-specversion: binary
        (b"{}", {"ce-specversion": "1.0"}, BINARY),
        (b"{}", {"ce-specversion": "1.0", "content-type": "application/json"}, BINARY),
        # earlier producers: the event in the body, ce-type/ce-id beside it, no content-type
        (encode_event(valid_event()), {"ce-type": "x", "ce-id": "y"}, STRUCTURED),
        (encode_event(valid_event()), {}, STRUCTURED),
        (b"", {"origin": "test"}, STRUCTURED),
        # ce-* attributes, no ce-specversion, a body that is not an event: binary
        (b'{"operation": "lifecycle.upsert"}', {"ce-id": "b-1"}, BINARY),
    ],
)
def test_content_mode_detection(data: bytes, attributes: dict[str, str], mode: str) -> None:
    assert content_mode(data, attributes) == mode


@pytest.mark.parametrize("case", BAD_BINARY_EVENTS, ids=[case[0] for case in BAD_BINARY_EVENTS])
def test_bad_binary_message_is_rejected_naming_the_attribute(
    case: tuple[str, bytes, dict[str, str], str, str, str],
) -> None:
    _, data, attributes, code, word, field = case
    with pytest.raises(InvalidEvent) as caught:
        parse_request(data, attributes)
    assert caught.value.reason_code == code, str(caught.value)
    assert word.lower() in str(caught.value).lower(), str(caught.value)
    assert caught.value.field == field
    assert caught.value.hint, "every reason carries the fix"


def test_binary_without_specversion_says_which_attribute_is_missing() -> None:
    body, attributes = binary_parts(**{"ce-specversion": DROP})
    with pytest.raises(InvalidEvent) as caught:
        parse_request(body, attributes)
    assert caught.value.reason_code == "MissingSpecVersion"
    assert caught.value.field == "ce-specversion"
    assert "ce-specversion" in str(caught.value)


def test_binary_content_type_and_ce_datacontenttype_must_agree() -> None:
    body, attributes = binary_parts(**{"ce-datacontenttype": "application/xml"})
    with pytest.raises(InvalidEvent) as caught:
        parse_request(body, attributes)
    assert caught.value.reason_code == "ConflictingContentMode"
    assert "ce-datacontenttype" in str(caught.value)


def test_binary_data_attribute_is_refused() -> None:
    body, attributes = binary_parts(**{"ce-data": "{}"})
    with pytest.raises(InvalidEvent) as caught:
        parse_request(body, attributes)
    assert caught.value.field == "ce-data"


def test_unsupported_event_format_is_named() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_request(b"\x00avro", {"content-type": "application/cloudevents+avro"})
    assert caught.value.reason_code == "UnsupportedContentType"
    assert "application/cloudevents+avro" in str(caught.value)


def test_structured_ce_attributes_that_agree_are_accepted() -> None:
    data = encode_event(valid_event(urgent=True))
    attributes = {"ce-id": "batch-0001", "ce-urgent": "true", "ce-type": REQUEST_TYPE}
    assert parse_request(data, attributes).batch_operation_id == "batch-0001"


def test_empty_body_says_the_body_is_empty_not_a_parser_error() -> None:
    for attributes in ({"origin": "test"}, binary_parts()[1]):
        with pytest.raises(InvalidEvent) as caught:
            parse_request(b"", attributes)
        assert caught.value.reason_code == "EmptyBody"
        assert "body is empty" in str(caught.value)
        assert "Expecting value" not in str(caught.value)


def test_binary_size_limit_applies_to_the_body() -> None:
    event = request_event("lifecycle.upsert", tenant_env_id="t", changeset={"x": "y" * 400})
    body, attributes = binary_message(event)
    with pytest.raises(InvalidEvent) as caught:
        parse_request(body, attributes, max_bytes=100)
    assert caught.value.reason_code == "TooLarge"


def test_consumer_submits_binary_and_dead_letters_bad_binary_unchanged() -> None:
    class Engine:
        name = "fake"

        def __init__(self) -> None:
            self.submitted: list[str] = []

        def submit(self, request: LifecycleRequest) -> SubmitOutcome:
            self.submitted.append(request.batch_operation_id)
            return SubmitOutcome("submitted", f"lc-{request.batch_operation_id}", engine="fake")

    bus, engine = FakeBus(), Engine()
    consumer = Consumer(
        engine,
        bus,
        settings=ConsumerSettings(dead_letter_topic="dlq", subscription="requests"),
        metrics=Metrics(),
    )
    bus.subscribe("requests", consumer.handle)
    body, attributes = binary_parts()
    assert bus.deliver("requests", body, attributes) is Disposition.ACK
    assert engine.submitted == ["batch-0001"]
    _, data, bad, code, _, field = BAD_BINARY_EVENTS[0]
    assert bus.deliver("requests", data, bad) is Disposition.ACK
    (dead,) = bus.published["dlq"]
    assert dead.data == data
    assert (dead.attributes["reasonCode"], dead.attributes["field"]) == (code, field)
    assert dead.attributes["ce-type"] == bad["ce-type"]  # the original attributes are kept


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--batch-operation-id", "a b"], ["--batch-operation-id", "'a b'"]),
        (["--tenant-env-id", "t;1"], ["--tenant-env-id", "'t;1'"]),
        (["--mode", "avro"], ["--mode", "structured", "binary"]),
    ],
)
def test_publish_in_binary_mode_names_the_flag_not_the_attribute(
    args: list[str], names: list[str]
) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import main

    argv = ["publish", "lifecycle.upsert", "--tenant-env-id", "t1", "--project", "p"]
    argv += ["--mode", "binary", *args]
    result = CliRunner().invoke(main, argv, prog_name="tenantctl")
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    for name in names:
        assert name in lines[0]
    assert "ce-" not in lines[0]  # the user sets flags, not message attributes
    assert "Traceback" not in result.output
