"""The history store contract, identical on SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.history import HistoryError, HistoryStore, open_store
from orchestrator.history.migrations import MIGRATIONS, Migration

T0 = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
JOB = {
    "namespace": "team-a",
    "job": "schema",
    "wave": 0,
    "status": "succeeded",
    "exitCode": 0,
    "reason": "Completed",
    "attempts": [{"attempt": 1, "exitCode": 0}],
}


def _request(store: HistoryStore, batch: str, tenant: str, at: datetime, **kw: str) -> None:
    store.record_request(
        batch,
        tenant=tenant,
        operation=kw.pop("operation", "lifecycle.upsert"),
        requested_at=at,
        **kw,  # type: ignore[arg-type]
    )


def test_a_request_and_its_outcome_round_trip(history_store: HistoryStore) -> None:
    record = history_store.record_request(
        "b1",
        tenant="t1",
        operation="lifecycle.backup",
        region="eu-west-1",
        parent_batch_id="fleet-1",
        source="tenant-manager",
        requested_at=T0,
    )
    assert record.state == "requested"
    assert record.requested_at == T0
    history_store.record_submitted("b1", at=T0 + timedelta(seconds=1), workflow="lc-b1")
    history_store.record_started("b1", at=T0 + timedelta(seconds=2))
    assert history_store.get("b1").state == "running"  # type: ignore[union-attr]
    history_store.record_finished(
        "b1", "succeeded", [JOB], message="1 job succeeded", at=T0 + timedelta(seconds=5)
    )

    got = history_store.get("b1")
    assert got is not None
    assert (got.tenant, got.operation, got.region) == ("t1", "lifecycle.backup", "eu-west-1")
    assert (got.parent_batch_id, got.source, got.workflow) == ("fleet-1", "tenant-manager", "lc-b1")
    assert got.submitted_at == T0 + timedelta(seconds=1)
    assert got.started_at == T0 + timedelta(seconds=2)
    assert got.finished_at == T0 + timedelta(seconds=5)
    assert got.outcome == got.state == "succeeded"
    assert got.message == "1 job succeeded"
    assert got.jobs == (JOB,)
    assert got.duration_seconds == 3.0
    assert got.to_json()["startedAt"] == "2026-11-20T10:00:02.123456Z"


def test_recording_the_same_request_twice_keeps_the_first(history_store: HistoryStore) -> None:
    _request(history_store, "b1", "t1", T0)
    again = history_store.record_request(
        "b1", tenant="t1", operation="lifecycle.upsert", requested_at=T0 + timedelta(hours=1)
    )
    assert again.requested_at == T0
    assert len(history_store.query()) == 1


def test_unknown_batch_and_bad_outcome_are_refused(history_store: HistoryStore) -> None:
    assert history_store.get("nope") is None
    with pytest.raises(HistoryError, match="no request recorded for batch 'nope'"):
        history_store.record_started("nope")
    _request(history_store, "b1", "t1", T0)
    with pytest.raises(ValueError, match="outcome 'done'"):
        history_store.record_finished("b1", "done")


def test_query_filters_and_orders_newest_first(history_store: HistoryStore) -> None:
    _request(history_store, "b1", "t1", T0)
    _request(history_store, "b2", "t2", T0 + timedelta(minutes=1))
    _request(history_store, "b3", "t1", T0 + timedelta(minutes=2), operation="lifecycle.backup")
    _request(history_store, "b4", "t1", T0 + timedelta(minutes=3), parent_batch_id="p1")
    _request(history_store, "b5", "t2", T0 + timedelta(minutes=4), parent_batch_id="p1")

    def ids(**kw: object) -> list[str]:
        return [r.batch_id for r in history_store.query(**kw)]  # type: ignore[arg-type]

    assert ids() == ["b5", "b4", "b3", "b2", "b1"]
    assert ids(tenant="t1") == ["b4", "b3", "b1"]
    assert ids(operation="lifecycle.backup") == ["b3"]
    assert ids(parent="p1") == ["b5", "b4"]
    assert ids(since=T0 + timedelta(minutes=2)) == ["b5", "b4", "b3"]
    assert ids(tenant="t1", since=T0 + timedelta(seconds=30), limit=1) == ["b4"]
    assert ids(tenant="t1", operation="lifecycle.upsert", parent="p1") == ["b4"]
    assert ids(limit=None) == ["b5", "b4", "b3", "b2", "b1"]
    assert ids(tenant="nobody") == []
    with pytest.raises(ValueError, match="limit"):
        history_store.query(limit=0)


def test_query_since_accepts_other_timezones(history_store: HistoryStore) -> None:
    _request(history_store, "b1", "t1", T0)
    plus_two = T0.astimezone(datetime.now().astimezone().tzinfo)
    assert [r.batch_id for r in history_store.query(since=plus_two)] == ["b1"]
    assert history_store.query(since=T0 + timedelta(microseconds=1)) == []


def test_purge_deletes_only_what_is_older_than_the_retention(history_store: HistoryStore) -> None:
    now = datetime.now(UTC)
    _request(history_store, "old-done", "t1", now - timedelta(days=40))
    history_store.record_finished("old-done", "failed", at=now - timedelta(days=39))
    _request(history_store, "old-but-finished-lately", "t1", now - timedelta(days=40))
    history_store.record_finished(
        "old-but-finished-lately", "succeeded", at=now - timedelta(days=1)
    )
    _request(history_store, "old-never-finished", "t2", now - timedelta(days=31))
    _request(history_store, "recent", "t2", now - timedelta(days=2))

    assert history_store.purge(timedelta(days=30)) == 2
    left = {r.batch_id for r in history_store.query()}
    assert left == {"old-but-finished-lately", "recent"}
    assert history_store.purge(timedelta(days=30)) == 0


def test_threads_can_record_concurrently(history_store: HistoryStore) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                batch = f"b-{n}-{i}"
                history_store.record_request(batch, tenant=f"t{n}", operation="lifecycle.upsert")
                history_store.record_started(batch)
                history_store.record_finished(batch, "succeeded", [JOB])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    records = history_store.query(limit=None)
    assert len(records) == 80
    assert {r.outcome for r in records} == {"succeeded"}


def test_reopening_applies_no_migration_twice_and_keeps_rows(history_store_url: str) -> None:
    first = open_store(history_store_url)
    _request(first, "b1", "t1", T0)
    first.close()
    errors: list[BaseException] = []
    stores: list[HistoryStore] = []
    lock = threading.Lock()

    def reopen() -> None:  # replicas starting together
        try:
            store = open_store(history_store_url)
            with lock:
                stores.append(store)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reopen) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        for store in stores:
            assert store.schema_version() == MIGRATIONS[-1].version  # type: ignore[attr-defined]
        assert [r.batch_id for r in stores[0].query()] == ["b1"]
    finally:
        for store in stores:
            store.close()


def test_replicas_opening_a_new_store_together_migrate_it_once(history_store_url: str) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    stores: list[HistoryStore] = []
    lock = threading.Lock()

    def open_together() -> None:
        try:
            barrier.wait()
            store = open_store(history_store_url)
            with lock:
                stores.append(store)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_together) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert len(stores) == 4
        expected = [m.version for m in MIGRATIONS]
        for store in stores:
            assert store.applied_migrations() == expected  # type: ignore[attr-defined]
    finally:
        for store in stores:
            store.close()


def test_an_older_schema_is_migrated_forward(history_store_url: str) -> None:
    from orchestrator.history.postgres import PostgresHistoryStore
    from orchestrator.history.sqlite import SqliteHistoryStore

    opener = (
        PostgresHistoryStore
        if history_store_url.startswith("postgresql")
        else lambda url, **kw: SqliteHistoryStore(url.removeprefix("sqlite:///"), **kw)
    )
    old = opener(history_store_url, migrations=MIGRATIONS[:1])
    assert old.schema_version() == 1
    _request(old, "b1", "t1", T0)
    old.close()
    new = opener(history_store_url)
    try:
        assert new.schema_version() == MIGRATIONS[-1].version
        assert new.get("b1") is not None
    finally:
        new.close()


def test_a_store_from_a_newer_release_is_refused(history_store_url: str) -> None:
    from orchestrator.history.postgres import PostgresHistoryStore
    from orchestrator.history.sqlite import SqliteHistoryStore

    future = (
        *MIGRATIONS,
        Migration(99, "from the future", ("SELECT 1",), ("SELECT 1",)),
    )
    if history_store_url.startswith("postgresql"):
        PostgresHistoryStore(history_store_url, migrations=future).close()
    else:
        SqliteHistoryStore(history_store_url.removeprefix("sqlite:///"), migrations=future).close()
    with pytest.raises(HistoryError, match="schema version 99, newer than this tenantctl"):
        open_store(history_store_url)
