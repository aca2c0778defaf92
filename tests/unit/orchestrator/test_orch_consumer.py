"""The consumer's policy (ack / nack / dead-letter) against the FakeBus and a fake engine."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from bridge.errors import InvalidError, UnavailableError
from orchestrator.bus import BusError, Disposition
from orchestrator.events import LifecycleRequest
from orchestrator.listen import Consumer, ConsumerSettings
from orchestrator.metrics import Metrics
from orchestrator.pubsub import publishable_attributes
from orchestrator.submit import SubmitOutcome
from tests.support.bus import FakeBus

from .bad_events import BAD_EVENTS, valid_event

SUBSCRIPTION = "requests-sub"
DLQ = "dead-letter"


class FakeEngine:
    """Remembers submitted batch ids (duplicates like the API server's 409) or raises."""

    name = "fake"

    def __init__(self) -> None:
        self.submitted: list[LifecycleRequest] = []
        self.fail: Exception | None = None

    def submit(self, request: LifecycleRequest) -> SubmitOutcome:
        if self.fail is not None:
            raise self.fail
        if any(r.batch_operation_id == request.batch_operation_id for r in self.submitted):
            return SubmitOutcome("duplicate", request.batch_operation_id, engine=self.name)
        self.submitted.append(request)
        return SubmitOutcome("submitted", request.batch_operation_id, engine=self.name)


@pytest.fixture
def setup() -> tuple[FakeBus, FakeEngine, Metrics]:
    bus, engine, metrics = FakeBus(), FakeEngine(), Metrics()
    consumer = Consumer(
        engine,
        bus,
        settings=ConsumerSettings(dead_letter_topic=DLQ, subscription=SUBSCRIPTION),
        metrics=metrics,
        sleep=lambda _: None,
    )
    bus.subscribe(SUBSCRIPTION, consumer.handle)
    return bus, engine, metrics


def test_valid_then_duplicates_are_all_acked_and_submitted_once(setup) -> None:
    bus, engine, metrics = setup
    data = json.dumps(valid_event()).encode()
    assert [bus.deliver(SUBSCRIPTION, data) for _ in range(3)] == [Disposition.ACK] * 3
    assert len(engine.submitted) == 1
    assert metrics.value("tenantctl_events_received_total", outcome="submitted") == 1
    assert metrics.value("tenantctl_events_received_total", outcome="duplicate") == 2
    assert metrics.value("tenantctl_duplicates_total") == 2
    assert metrics.value("tenantctl_submissions_total", engine="fake") == 1
    assert DLQ not in bus.published


def test_every_bad_message_is_dead_lettered_with_its_reason_and_acked(setup) -> None:
    bus, engine, metrics = setup
    for _, data, _, _ in BAD_EVENTS:
        assert bus.deliver(SUBSCRIPTION, data, {"origin": "test"}) is Disposition.ACK
    dead = bus.published[DLQ]
    assert [m.attributes["reasonCode"] for m in dead] == [code for _, _, code, _ in BAD_EVENTS]
    assert all(m.attributes["reason"] and m.attributes["origin"] == "test" for m in dead)
    assert [m.data for m in dead] == [data for _, data, _, _ in BAD_EVENTS]
    assert engine.submitted == []
    assert metrics.value("tenantctl_events_received_total", outcome="invalid") == len(BAD_EVENTS)
    assert metrics.value("tenantctl_dead_letters_total", reason="NotJSON") == 1
    assert metrics.value("tenantctl_dead_letters_total", reason="EmptyBody") == 2
    # and the next valid message still goes through
    assert bus.deliver(SUBSCRIPTION, json.dumps(valid_event()).encode()) is Disposition.ACK
    assert len(engine.submitted) == 1


def test_transient_failure_is_nacked_and_nothing_is_dead_lettered(setup) -> None:
    bus, engine, metrics = setup
    engine.fail = UnavailableError("connection refused", status=0)
    data = json.dumps(valid_event()).encode()
    assert bus.deliver(SUBSCRIPTION, data) is Disposition.NACK
    assert metrics.value("tenantctl_events_received_total", outcome="retried") == 1
    engine.fail = None
    assert bus.deliver(SUBSCRIPTION, data) is Disposition.ACK
    assert len(engine.submitted) == 1
    assert DLQ not in bus.published


def test_workflow_rejected_by_the_api_server_is_dead_lettered(setup) -> None:
    bus, engine, metrics = setup
    engine.fail = InvalidError("Workflow is invalid: spec.arguments", status=422)
    assert bus.deliver(SUBSCRIPTION, json.dumps(valid_event()).encode()) is Disposition.ACK
    assert bus.published[DLQ][0].attributes["reasonCode"] == "WorkflowRejected"
    assert metrics.value("tenantctl_events_received_total", outcome="rejected") == 1


def test_dead_letter_publish_failure_means_nack(setup) -> None:
    bus, _, metrics = setup
    bus.fail_publish = BusError("emulator down")
    assert bus.deliver(SUBSCRIPTION, b"not json") is Disposition.NACK
    assert metrics.value("tenantctl_dead_letters_total", reason="NotJSON") == 0


def test_long_reason_is_kept_whole_for_the_bus_adapter_to_clip(setup) -> None:
    bus, _, _ = setup
    bus.deliver(SUBSCRIPTION, json.dumps(valid_event(id="x" * 5000)).encode())
    assert bus.published[DLQ][0].attributes["reasonCode"] == "InvalidId"


class EncodingBus(FakeBus):
    """Publishes like the Pub/Sub adapter does: attributes made publishable, UTF-8 on the wire."""

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        attrs = publishable_attributes(attributes)
        for key, value in attrs.items():
            (key + value).encode("utf-8")
        return super().publish(topic, data, attrs)


@pytest.mark.parametrize(
    "payload",
    [
        # a lone UTF-16 surrogate escape: valid JSON, but not encodable as UTF-8 text
        b'{"specversion": "1.0", "\\ud800x": 1}',
        json.dumps(valid_event(source="tenant-\ud800manager")).encode(),
        json.dumps(
            valid_event(data={"operation": "lifecycle.upsert", "changeset": {"k": "\udfff"}})
        ).encode(),
    ],
)
def test_lone_surrogate_escapes_are_dead_lettered_not_redelivered_forever(payload) -> None:
    bus, engine, metrics = EncodingBus(), FakeEngine(), Metrics()
    consumer = Consumer(
        engine,
        bus,
        settings=ConsumerSettings(dead_letter_topic=DLQ, subscription=SUBSCRIPTION),
        metrics=metrics,
        sleep=lambda _: None,
    )
    bus.subscribe(SUBSCRIPTION, consumer.handle)
    assert bus.deliver(SUBSCRIPTION, payload) is Disposition.ACK
    assert engine.submitted == []
    assert bus.published[DLQ][0].attributes["reasonCode"] == "InvalidUnicode"
