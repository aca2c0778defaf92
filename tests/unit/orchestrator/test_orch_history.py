"""``tenantctl listen`` records every valid request, its submission and its result in the
operation history (docs/fleet.md), and a broken history never changes a message's fate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.bus import Disposition
from orchestrator.engine import RunRequest
from orchestrator.events import LifecycleRequest
from orchestrator.history import HistoryStore, open_store
from orchestrator.history.recorder import HistoryRecorder
from orchestrator.listen import Consumer, ConsumerSettings, LocalResultPublisher
from orchestrator.metrics import Metrics
from orchestrator.submit import SubmitOutcome
from tests.support.bus import FakeBus

from .bad_events import valid_event

SUBSCRIPTION = "requests-sub"


class FakeEngine:
    name = "fake"

    def submit(self, request: LifecycleRequest) -> SubmitOutcome:
        return SubmitOutcome("submitted", f"lc-{request.batch_operation_id}", engine=self.name)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    history = open_store(str(tmp_path / "history.db"))
    yield history
    history.close()


def _consumer(bus: FakeBus, history: HistoryRecorder) -> Consumer:
    consumer = Consumer(
        FakeEngine(),
        bus,
        settings=ConsumerSettings(dead_letter_topic="dlq", subscription=SUBSCRIPTION),
        metrics=Metrics(),
        sleep=lambda _: None,
        history=history,
    )
    bus.subscribe(SUBSCRIPTION, consumer.handle)
    return consumer


def test_a_request_and_its_submission_are_recorded(store: HistoryStore) -> None:
    bus = FakeBus()
    _consumer(bus, HistoryRecorder(store))
    data = json.dumps(valid_event()).encode()
    assert bus.deliver(SUBSCRIPTION, data) is Disposition.ACK
    assert bus.deliver(SUBSCRIPTION, data) is Disposition.ACK  # a redelivery: one record
    assert bus.deliver(SUBSCRIPTION, b"not json") is Disposition.ACK  # invalid: no record
    (record,) = store.query()
    assert (record.batch_id, record.tenant, record.operation, record.region) == (
        "batch-0001",
        "tenant-799a",
        "lifecycle.upsert",
        "eu-west-1",
    )
    assert record.source == "tenant-manager"
    assert record.requested_at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert record.workflow == "lc-batch-0001"
    assert record.state == "submitted"


def test_a_broken_history_does_not_change_the_disposition(store: HistoryStore) -> None:
    bus = FakeBus()
    recorder = HistoryRecorder(store)
    _consumer(bus, recorder)
    store.close()
    assert bus.deliver(SUBSCRIPTION, json.dumps(valid_event()).encode()) is Disposition.ACK
    assert recorder.errors == 2


def test_a_local_result_is_recorded(store: HistoryStore) -> None:
    class Result:
        def to_event_data(self) -> dict[str, object]:
            return {
                "status": "failed",
                "jobs": [
                    {
                        "namespace": "team-a",
                        "job": "schema",
                        "status": "failed",
                        "reason": "BackoffLimitExceeded",
                        "exitCode": 3,
                        "wave": 0,
                    }
                ],
                "startedAt": "2026-11-22T10:00:01Z",
                "finishedAt": "2026-11-22T10:00:09Z",
            }

    recorder = HistoryRecorder(store)
    request = RunRequest("lifecycle.upsert", "t-1", batch_operation_id="b-7", region="eu-west-1")
    recorder.request_received(request)
    publish = LocalResultPublisher(FakeBus(), "results", Metrics(), recorder).on_result
    publish(request, Result())
    record = store.get("b-7")
    assert record is not None
    assert record.outcome == "failed"
    assert record.message == "team-a/schema BackoffLimitExceeded (exit 3)"
    assert record.duration_seconds == 8.0
