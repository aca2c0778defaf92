"""Migration between regions: the steps, their ids, resumption from the history, the events."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import UnavailableError, UsageError
from orchestrator.events import InvalidEvent, LifecycleRequest, encode_event
from orchestrator.history import HistoryStore, open_store
from orchestrator.migration import (
    EXPORT,
    IMPORT,
    MIGRATION_FAILED_TYPE,
    MIGRATION_SUCCEEDED_TYPE,
    MIGRATION_TYPE,
    Migration,
    MigrationRequest,
    StepOutcome,
    migration_event,
    parse_migration,
)


class FakeStepRunner:
    """Scripted outcomes per operation (a list: one per call); records every request."""

    def __init__(self, **script: list[str | Exception]) -> None:
        self.script = {op.replace("_", "-"): list(v) for op, v in script.items()}
        self.requests: list[LifecycleRequest] = []

    def run(self, request: LifecycleRequest, *, cancel: threading.Event) -> StepOutcome:
        self.requests.append(request)
        key = request.operation.removeprefix("lifecycle.")
        outcome = self.script[key].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        job = {"namespace": "team-archive", "job": "archive", "status": outcome, "wave": 1}
        return StepOutcome(outcome, f"1 job(s) {outcome}", (job,))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    history = open_store(str(tmp_path / "history.db"))
    yield history
    history.close()


def make(parent: str = "mig-1") -> MigrationRequest:
    return MigrationRequest(
        parent_batch_operation_id=parent,
        tenant_env_id="t-42",
        from_region="eu-west-1",
        to_region="us-east-1",
        environment={"applications": ["archive"]},
    )


def test_out_in_a_then_in_in_b_reading_the_export_under_one_parent(store: HistoryStore) -> None:
    a, b = FakeStepRunner(migrate_out=["succeeded"]), FakeStepRunner(migrate_in=["succeeded"])
    events: list[Mapping[str, Any]] = []
    result = Migration({"eu-west-1": a, "us-east-1": b}, store=store, publish=events.append).run(
        make()
    )
    assert result.status == "succeeded"
    (out,), (into,) = a.requests, b.requests
    assert (out.operation, out.batch_operation_id, out.region) == (EXPORT, "mig-1-out", "eu-west-1")
    assert (into.operation, into.batch_operation_id, into.region) == (
        IMPORT,
        "mig-1-in",
        "us-east-1",
    )
    assert into.source_batch_operation_id == "mig-1-out"
    assert out.parent_batch_operation_id == into.parent_batch_operation_id == "mig-1"
    assert into.environment == {"applications": ["archive"]}
    # One result per step (operation events) and one for the whole (migration event).
    assert [(e["type"], e["id"]) for e in events] == [
        ("dev.tenant-lifecycle.operation.succeeded", "mig-1-out"),
        ("dev.tenant-lifecycle.operation.succeeded", "mig-1-in"),
        (MIGRATION_SUCCEEDED_TYPE, "mig-1"),
    ]
    assert events[1]["data"]["sourceBatchOperationId"] == "mig-1-out"
    assert events[1]["data"]["parentBatchOperationId"] == "mig-1"
    whole = events[2]["data"]
    assert [s["status"] for s in whole["steps"]] == ["succeeded", "succeeded"]
    records = {r.batch_id: r for r in store.query(parent="mig-1", limit=None)}
    assert {k: v.outcome for k, v in records.items()} == {
        "mig-1-out": "succeeded",
        "mig-1-in": "succeeded",
    }
    parent = store.get("mig-1")
    assert parent is not None
    assert parent.outcome == "succeeded"


def test_b_fails_after_a_then_a_rerun_resumes_at_the_import(store: HistoryStore) -> None:
    a = FakeStepRunner(migrate_out=["succeeded"])
    b = FakeStepRunner(migrate_in=["failed", "succeeded"])
    events: list[Mapping[str, Any]] = []
    migration = Migration({"eu-west-1": a, "us-east-1": b}, store=store, publish=events.append)
    first = migration.run(make())
    assert first.status == "failed"
    assert [s.status for s in first.steps] == ["succeeded", "failed"]
    assert "exported from eu-west-1" in first.tenant_state
    assert "--batch-operation-id mig-1" in first.tenant_state
    failed = events[-1]
    assert failed["type"] == MIGRATION_FAILED_TYPE
    assert [(s["operation"], s["status"]) for s in failed["data"]["steps"]] == [
        (EXPORT, "succeeded"),
        (IMPORT, "failed"),
    ]

    second = migration.run(make())
    assert second.status == "succeeded"
    assert len(a.requests) == 1  # no second export
    export, into = second.steps
    assert export.resumed
    assert export.batch_operation_id == "mig-1-out"
    assert into.batch_operation_id == "mig-1-in-2"  # a new run of the import, not a duplicate
    assert b.requests[-1].source_batch_operation_id == "mig-1-out"

    third = migration.run(make())  # a redelivery of a finished migration runs nothing
    assert third.status == "succeeded"
    assert all(step.resumed for step in third.steps)
    assert (len(a.requests), len(b.requests)) == (1, 2)


def test_a_failed_export_never_starts_the_import_and_is_retried_next_time(
    store: HistoryStore,
) -> None:
    a = FakeStepRunner(migrate_out=[UnavailableError("eu is down"), "succeeded"])
    b = FakeStepRunner(migrate_in=["succeeded"])
    migration = Migration({"eu-west-1": a, "us-east-1": b}, store=store)
    first = migration.run(make())
    assert [s.status for s in first.steps] == ["error", "not-started"]
    assert "eu is down" in first.steps[0].message
    assert first.tenant_state.startswith("still in eu-west-1")
    assert b.requests == []
    second = migration.run(make())
    assert second.status == "succeeded"
    assert [r.batch_operation_id for r in a.requests] == ["mig-1-out", "mig-1-out-2"]
    assert b.requests[0].source_batch_operation_id == "mig-1-out-2"


def test_an_unfinished_step_resumes_under_the_same_id(store: HistoryStore) -> None:
    store.record_request("mig-1-out", tenant="t-42", operation=EXPORT, parent_batch_id="mig-1")
    a, b = FakeStepRunner(migrate_out=["succeeded"]), FakeStepRunner(migrate_in=["succeeded"])
    Migration({"eu-west-1": a, "us-east-1": b}, store=store).run(make())
    assert [r.batch_operation_id for r in a.requests] == ["mig-1-out"]


def test_request_checks() -> None:
    with pytest.raises(UsageError, match="both 'eu-west-1'"):
        MigrationRequest("m", "t", "eu-west-1", "eu-west-1")
    with pytest.raises(UsageError, match="TENANT"):
        MigrationRequest("m", "bad tenant!", "a", "b")
    with pytest.raises(UsageError, match="longer than"):
        MigrationRequest("m" * 60, "t", "a", "b")
    with pytest.raises(UsageError, match="not in the region map"):
        Migration({"eu-west-1": FakeStepRunner()}).run(make())


def test_the_event_round_trips_and_bad_events_are_named() -> None:
    event = migration_event(make())
    assert event["type"] == MIGRATION_TYPE
    parsed = parse_migration(encode_event(event))
    assert parsed.parent_batch_operation_id == "mig-1"
    assert (parsed.from_region, parsed.to_region) == ("eu-west-1", "us-east-1")
    assert parsed.environment == {"applications": ["archive"]}

    def bad(**data_changes: object) -> InvalidEvent:
        broken = json.loads(json.dumps(event))
        broken["data"].update(data_changes)
        broken["data"] = {k: v for k, v in broken["data"].items() if v is not None}
        with pytest.raises(InvalidEvent) as caught:
            parse_migration(encode_event(broken))
        return caught.value

    assert bad(to=None).reason_code == "MissingRegion"
    wrong = bad(to="Not A Region")
    assert (wrong.reason_code, wrong.field) == ("InvalidRegion", "data.to")
    assert bad(to="eu-west-1").reason_code == "SameRegion"
    assert bad(tenantEnvironment=[]).reason_code == "InvalidTenantEnvironment"
    with pytest.raises(InvalidEvent) as caught:
        parse_migration(b"not json")
    assert caught.value.reason_code == "NotJSON"
    other = dict(event, type="dev.tenant-lifecycle.operation.requested")
    with pytest.raises(InvalidEvent, match=r"not 'dev\.tenant-lifecycle\.migration\.requested'"):
        parse_migration(encode_event(other))


def test_an_import_that_leaves_an_exported_jobs_data_behind_fails(store: HistoryStore) -> None:
    class NoJobsInB(FakeStepRunner):
        def run(self, request: LifecycleRequest, *, cancel: threading.Event) -> StepOutcome:
            self.requests.append(request)
            return StepOutcome("succeeded", "0 job(s)", ())

    a, b = FakeStepRunner(migrate_out=["succeeded"]), NoJobsInB()
    result = Migration({"eu-west-1": a, "us-east-1": b}, store=store).run(make())
    assert result.status == "failed"
    into = result.step(IMPORT)
    assert into.status == "failed"
    assert "team-archive/archive exported data but did not import it in us-east-1" in into.message
    record = store.get("mig-1-in")
    assert record is not None
    assert record.outcome == "failed"


def test_the_bus_handler_runs_migrations_and_passes_everything_else_on(
    store: HistoryStore,
) -> None:
    from orchestrator.bus import Disposition, Message
    from orchestrator.events import request_event
    from orchestrator.migration import MigrationHandler

    a, b = FakeStepRunner(migrate_out=["succeeded"]), FakeStepRunner(migrate_in=["succeeded"])
    dead: list[tuple[str, str]] = []
    passed: list[Message] = []
    events: list[Mapping[str, Any]] = []

    def dead_letter(message: Message, code: str, reason: str, *, field: str) -> Disposition:
        dead.append((code, field))
        return Disposition.ACK

    def other(message: Message) -> Disposition:
        passed.append(message)
        return Disposition.ACK

    handler = MigrationHandler(
        {"eu-west-1": a, "us-east-1": b},
        dead_letter=dead_letter,
        store=store,
        publish=events.append,
        sleep=lambda _: None,
    ).wrap(other)
    migration = encode_event(migration_event(make()))
    assert handler(Message(migration)) is Disposition.ACK
    assert [e["id"] for e in events] == ["mig-1-out", "mig-1-in", "mig-1"]
    upsert = encode_event(request_event("lifecycle.upsert", tenant_env_id="t1"))
    assert handler(Message(upsert)) is Disposition.ACK
    assert len(passed) == 1
    elsewhere = migration_event(make("mig-2"))
    elsewhere["data"]["to"] = "mars-1"
    assert handler(Message(encode_event(elsewhere))) is Disposition.ACK
    assert dead == [("unknown-region", "data.to")]
    assert len(b.requests) == 1  # the unroutable one never started


def test_a_binary_mode_migration_runs_and_a_bad_one_is_dead_lettered_unchanged(
    store: HistoryStore,
) -> None:
    from orchestrator.bus import Disposition, Message
    from orchestrator.events import binary_message, request_event
    from orchestrator.migration import MigrationHandler

    a, b = FakeStepRunner(migrate_out=["succeeded"]), FakeStepRunner(migrate_in=["succeeded"])
    dead: list[tuple[Message, str, str]] = []
    passed: list[Message] = []
    events: list[Mapping[str, Any]] = []

    def dead_letter(message: Message, code: str, reason: str, *, field: str) -> Disposition:
        dead.append((message, code, field))
        return Disposition.ACK

    def other(message: Message) -> Disposition:
        passed.append(message)
        return Disposition.ACK

    handler = MigrationHandler(
        {"eu-west-1": a, "us-east-1": b},
        dead_letter=dead_letter,
        store=store,
        publish=events.append,
        sleep=lambda _: None,
    ).wrap(other)
    data, attributes = binary_message(migration_event(make()))
    assert handler(Message(data, attributes)) is Disposition.ACK
    assert [e["id"] for e in events] == ["mig-1-out", "mig-1-in", "mig-1"]
    same_regions = migration_event(make("mig-2"))
    same_regions["data"]["to"] = "eu-west-1"
    data, attributes = binary_message(same_regions)
    assert handler(Message(data, attributes)) is Disposition.ACK
    assert [(m.data, code, field) for m, code, field in dead] == [(data, "SameRegion", "data.to")]
    # a binary request that is not a migration goes to the request consumer, untouched
    data, attributes = binary_message(request_event("lifecycle.upsert", tenant_env_id="t1"))
    assert handler(Message(data, attributes)) is Disposition.ACK
    assert [(m.data, m.attributes) for m in passed] == [(data, attributes)]


def test_a_detached_step_is_not_finished_and_the_next_run_follows_the_same_id(
    store: HistoryStore,
) -> None:
    a = FakeStepRunner(migrate_out=["detached", "succeeded"])
    b = FakeStepRunner(migrate_in=["succeeded"])
    migration = Migration({"eu-west-1": a, "us-east-1": b}, store=store)
    first = migration.run(make())
    assert first.status == "cancelled"
    record = store.get("mig-1-out")
    assert record is not None
    assert record.outcome is None
    assert migration.run(make()).status == "succeeded"
    assert [r.batch_operation_id for r in a.requests] == ["mig-1-out", "mig-1-out"]
