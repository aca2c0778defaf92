"""The orchestrator's hook: real request and result events in, history records out; a broken
store is logged and counted, never raised into the consumer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.events import encode_event, parse_request, request_event, result_event
from orchestrator.history import HistoryStore, open_store
from orchestrator.history.recorder import HistoryRecorder

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    history = open_store(str(tmp_path / "history.db"))
    yield history
    history.close()


def _request(batch: str = "b-1") -> object:
    return parse_request(
        encode_event(
            request_event(
                "lifecycle.upsert",
                tenant_env_id="799a",
                batch_operation_id=batch,
                source="tenant-manager",
                region="eu-west-1",
                parent_batch_operation_id="fleet-9",
                time=T0,
            )
        )
    )


def test_request_submission_and_result_are_recorded(store: HistoryStore) -> None:
    recorder = HistoryRecorder(store)
    request = _request()
    recorder.request_received(request)  # type: ignore[arg-type]
    recorder.request_received(request)  # type: ignore[arg-type]  # a redelivery: no-op
    recorder.request_submitted(request, workflow="lc-b-1")  # type: ignore[arg-type]
    data = result_event(
        batch_operation_id="b-1",
        tenant_env_id="799a",
        operation="lifecycle.upsert",
        status="failed",
        jobs=[
            {"namespace": "team-a", "job": "schema", "wave": 0, "status": "succeeded"},
            {
                "namespace": "team-b",
                "job": "index",
                "wave": 1,
                "status": "failed",
                "reason": "BackoffLimitExceeded",
                "exitCode": 3,
            },
        ],
        workflow="lc-b-1",
        region="eu-west-1",
        started_at="2026-11-22T10:00:05Z",
        finished_at="2026-11-22T10:01:05Z",
    )["data"]
    recorder.result("b-1", data)

    (record,) = store.query()
    assert (record.tenant, record.operation, record.region) == (
        "799a",
        "lifecycle.upsert",
        "eu-west-1",
    )
    assert (record.parent_batch_id, record.source, record.workflow) == (
        "fleet-9",
        "tenant-manager",
        "lc-b-1",
    )
    assert record.requested_at == T0
    assert record.submitted_at is not None
    assert record.started_at == datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)
    assert record.duration_seconds == 60.0
    assert record.outcome == "failed"
    assert record.message == "team-b/index BackoffLimitExceeded (exit 3)"
    assert [job["job"] for job in record.jobs] == ["schema", "index"]
    assert recorder.errors == 0


def test_a_result_for_an_unrecorded_request_and_a_local_cancel(store: HistoryStore) -> None:
    recorder = HistoryRecorder(store)
    recorder.result(
        "b-9",
        {
            "operation": "lifecycle.backup",
            "tenantEnvId": "t9",
            "region": None,
            "status": "failed",
            "cancelled": True,
            "jobs": [],
            "workflow": None,
            "startedAt": "2026-11-22T10:00:00Z",
            "finishedAt": "2026-11-22T10:00:03Z",
        },
    )
    record = store.get("b-9")
    assert record is not None
    assert (record.tenant, record.operation, record.outcome) == (
        "t9",
        "lifecycle.backup",
        "cancelled",
    )


def test_a_broken_store_is_counted_not_raised(
    store: HistoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    failures: list[int] = []
    recorder = HistoryRecorder(store, on_error=lambda: failures.append(1))
    store.close()  # every call now fails inside the store
    recorder.request_received(_request())  # type: ignore[arg-type]
    recorder.result("b-1", {"status": "succeeded"})
    assert recorder.errors == 2
    assert failures == [1, 1]
    assert "history: could not record the request of b-1" in caplog.text
    HistoryRecorder(None).request_received(_request())  # type: ignore[arg-type]  # disabled
