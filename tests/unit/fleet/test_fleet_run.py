"""Fleet logic with scripted tenants: canary, failure budget, concurrency bound, resume.

The checks read the history store the run wrote (as an operator would), not only the
runner's own counters: the bound and the stop are proven from recorded timestamps.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.errors import UsageError
from orchestrator.fleet import (
    CANCELLED,
    FAILED,
    SUCCEEDED,
    Counts,
    FailureBudget,
    FleetRun,
    FleetSettings,
    NoProgress,
    TenantOutcome,
    TenantRequest,
    child_batch_id,
)
from orchestrator.fleet.inventory import Tenant
from orchestrator.history import HistoryRecord, HistoryStore, open_store
from tests.support.fleet import FakeScript, FakeTenantRunner

OP = "lifecycle.upsert"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    history = open_store(f"sqlite:///{tmp_path / 'history.db'}")
    yield history
    history.close()


def fleet(n: int) -> list[Tenant]:
    return [Tenant(id=f"t-{i:03d}", region="eu-west-1") for i in range(n)]


def scripted(
    tenants: list[Tenant], failing: set[str], *, seed: int = 7, lo: float = 0.02, hi: float = 0.06
) -> FakeTenantRunner:
    rng = random.Random(seed)
    return FakeTenantRunner(
        {
            t.id: FakeScript(
                status=FAILED if t.id in failing else SUCCEEDED,
                seconds=rng.uniform(lo, hi),
                message="team-a/schema BackoffLimitExceeded (exit 3)" if t.id in failing else "",
            )
            for t in tenants
        }
    )


def max_overlap(records: list[HistoryRecord]) -> int:
    """The most requests in flight at once, from their recorded start and finish times."""
    events = []
    for r in records:
        assert r.started_at is not None, r
        assert r.finished_at is not None, r
        events += [(r.started_at, 1), (r.finished_at, -1)]
    running = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):  # a finish before a start
        running += delta
        peak = max(peak, running)
    return peak


def test_the_concurrency_bound_holds_in_the_history(store: HistoryStore) -> None:
    tenants = fleet(200)
    runner = scripted(tenants, set(), lo=0.03, hi=0.06)
    run = FleetRun(
        operation=OP,
        tenants=tenants,
        runner=runner,
        store=store,
        settings=FleetSettings(concurrency=20, canary=5),
    )
    summary = run.execute()

    assert [r.tenant for r in summary.succeeded] == [t.id for t in tenants]
    assert summary.exit_code == 0
    records = store.query(parent=run.parent_batch_id, limit=None)
    assert len(records) == 200
    assert max_overlap(records) == 20  # never more, and the bound is actually used
    assert runner.peak == 20
    assert {r.source for r in records} == {"tenantctl-fleet"}
    assert {r.region for r in records} == {"eu-west-1"}


def test_canaries_finish_before_any_other_tenant_starts(store: HistoryStore) -> None:
    tenants = fleet(30)
    run = FleetRun(
        operation=OP,
        tenants=tenants,
        runner=scripted(tenants, set()),
        store=store,
        settings=FleetSettings(concurrency=4, canary=5),
    )
    run.execute()
    records = {r.tenant: r for r in store.query(parent=run.parent_batch_id, limit=None)}
    canary_end = max(records[t.id].finished_at for t in tenants[:5])  # type: ignore[type-var]
    rest_start = min(records[t.id].started_at for t in tenants[5:])  # type: ignore[type-var]
    assert canary_end <= rest_start


def test_a_failed_canary_stops_the_fleet(store: HistoryStore) -> None:
    tenants = fleet(50)
    runner = scripted(tenants, {"t-002"})
    summary = FleetRun(
        operation=OP,
        tenants=tenants,
        runner=runner,
        store=store,
        settings=FleetSettings(concurrency=10, canary=5, max_failures=FailureBudget(count=10)),
    ).execute()
    assert sorted(runner.started) == [f"t-{i:03d}" for i in range(5)]
    assert [r.tenant for r in summary.failed] == ["t-002"]
    assert summary.not_started == [t.id for t in tenants[5:]]
    assert summary.stopped == "canary t-002 failed"
    assert summary.exit_code == 1


def test_200_tenants_stop_starting_once_the_budget_is_exceeded(store: HistoryStore) -> None:
    tenants = fleet(200)
    # 3% of the fleet fails; the budget is 2% (4 failures): the 5th failure stops new starts.
    failing = {f"t-{i:03d}" for i in (12, 31, 47, 66, 90, 150)}
    runner = scripted(tenants, failing)
    run = FleetRun(
        operation=OP,
        tenants=tenants,
        runner=runner,
        store=store,
        settings=FleetSettings(concurrency=20, canary=5, max_failures=FailureBudget.parse("2%")),
    )
    summary = run.execute()

    records = store.query(parent=run.parent_batch_id, limit=None)
    started = {r.tenant for r in records}
    by_finish = sorted((r for r in records if r.outcome == FAILED), key=lambda r: r.finished_at)  # type: ignore[arg-type, return-value]
    assert summary.allowed_failures == 4
    assert summary.stopped is not None
    assert summary.stopped.startswith("failure budget exceeded: 5 failed, 4 allowed")
    # Exactly which failed: every failing tenant that started, with its reason...
    assert {r.tenant for r in summary.failed} == failing & started
    assert len(summary.failed) >= 5
    assert all("BackoffLimitExceeded" in r.message for r in summary.failed)
    assert {r.tenant for r in records if r.outcome == FAILED} == failing & started
    # ...and exactly which never started: the rest of the list, in order, with no history.
    assert summary.not_started == [t.id for t in tenants if t.id not in started]
    assert summary.not_started, "the budget should have stopped the run before the end"
    assert "t-150" in summary.not_started
    assert {r.tenant for r in summary.succeeded} == started - failing
    assert len(summary.succeeded) + len(summary.failed) + len(summary.not_started) == 200
    # Nothing started after the failure that exceeded the budget had been recorded.
    fifth_failure = by_finish[4].finished_at
    assert all(r.started_at <= fifth_failure for r in records)  # type: ignore[operator]
    # Starts follow the list order, so "not started" is a tail.
    assert sorted(runner.started) == [t.id for t in tenants[: len(started)]]
    assert max_overlap(records) <= 20
    assert summary.exit_code == 1
    assert "resume with: tenantctl fleet" in summary.render()


class CancelAfter(NoProgress):
    """Interrupts the run (as SIGINT does) once ``n`` tenants succeeded."""

    def __init__(self, cancel: threading.Event, n: int) -> None:
        self.cancel, self.n = cancel, n

    def on_finish(self, request: TenantRequest, outcome: TenantOutcome, counts: Counts) -> None:
        if counts.succeeded >= self.n:
            self.cancel.set()


def test_an_interrupted_fleet_resumes_without_rerunning_successes(store: HistoryStore) -> None:
    tenants = fleet(200)
    failing = {"t-020", "t-021"}
    cancel = threading.Event()
    first_runner = scripted(tenants, failing)
    first = FleetRun(
        operation=OP,
        tenants=tenants,
        runner=first_runner,
        store=store,
        settings=FleetSettings(concurrency=20, canary=5, max_failures=FailureBudget(count=5)),
        progress=CancelAfter(cancel, 60),
        cancel=cancel,
    )
    interrupted = first.execute()
    assert interrupted.interrupted
    assert interrupted.exit_code == 130
    assert interrupted.stopped == "interrupted"
    assert interrupted.cancelled, "tenants in flight are cancelled"
    assert interrupted.not_started
    succeeded_first = {r.tenant for r in interrupted.succeeded}
    assert len(succeeded_first) >= 60
    cancelled_first = {r.tenant: r.batch_id for r in interrupted.cancelled}
    for record in store.query(parent=first.parent_batch_id, limit=None):
        if record.tenant in cancelled_first:
            assert record.outcome == CANCELLED

    second_runner = scripted(tenants, set())  # the failing tenants were fixed meanwhile
    resumed = FleetRun(
        operation=OP,
        tenants=tenants,
        runner=second_runner,
        store=store,
        settings=FleetSettings(concurrency=20, canary=5, max_failures=FailureBudget(count=5)),
        parent_batch_id=first.parent_batch_id,
        resume=True,
    ).execute()

    assert not set(second_runner.started) & succeeded_first  # no success ran twice
    assert set(second_runner.started) == {t.id for t in tenants} - succeeded_first
    assert sorted(resumed.skipped) == sorted(succeeded_first)
    assert resumed.exit_code == 0
    assert not resumed.failed
    assert not resumed.not_started
    records = store.query(parent=first.parent_batch_id, limit=None)
    latest: dict[str, HistoryRecord] = {}
    for record in records:  # newest first
        latest.setdefault(record.tenant, record)
    assert {r.outcome for r in latest.values()} == {SUCCEEDED}
    assert len(latest) == 200
    assert sum(1 for r in records if r.outcome == SUCCEEDED) == 200  # each succeeded once
    # A cancelled or failed tenant runs again as a new attempt, with a new child id.
    for tenant, old_batch in cancelled_first.items():
        assert latest[tenant].batch_id == child_batch_id(first.parent_batch_id, tenant, 2)
        assert latest[tenant].batch_id != old_batch


def test_a_request_that_never_finished_is_resumed_under_the_same_id(store: HistoryStore) -> None:
    tenants = fleet(3)
    parent = "fleet-crashed"
    store.record_request(
        child_batch_id(parent, "t-000"), tenant="t-000", operation=OP, parent_batch_id=parent
    )
    store.record_finished(child_batch_id(parent, "t-000"), SUCCEEDED)
    store.record_request(
        child_batch_id(parent, "t-001"), tenant="t-001", operation=OP, parent_batch_id=parent
    )
    store.record_started(child_batch_id(parent, "t-001"))  # the process died here
    runner = scripted(tenants, set())
    summary = FleetRun(
        operation=OP,
        tenants=tenants,
        runner=runner,
        store=store,
        settings=FleetSettings(concurrency=2),
        parent_batch_id=parent,
        resume=True,
    ).execute()
    assert summary.skipped == ["t-000"]
    assert sorted(runner.started) == ["t-001", "t-002"]
    assert {r.tenant: r.batch_id for r in summary.succeeded} == {
        "t-001": child_batch_id(parent, "t-001"),
        "t-002": child_batch_id(parent, "t-002"),
    }


def test_resuming_with_another_operation_is_refused(store: HistoryStore) -> None:
    store.record_request("c1", tenant="t-000", operation="lifecycle.backup", parent_batch_id="p")
    with pytest.raises(UsageError, match=r"fleet p ran lifecycle\.backup, not lifecycle\.upsert"):
        FleetRun(
            operation=OP,
            tenants=fleet(1),
            runner=FakeTenantRunner(),
            store=store,
            settings=FleetSettings(),
            parent_batch_id="p",
            resume=True,
        )


def test_a_runner_that_raises_is_an_error_outcome_not_a_crash(store: HistoryStore) -> None:
    runner = FakeTenantRunner(raises={"t-001": RuntimeError("boom")})
    summary = FleetRun(
        operation=OP,
        tenants=fleet(3),
        runner=runner,
        store=store,
        settings=FleetSettings(concurrency=1, max_failures=FailureBudget(count=1)),
    ).execute()
    assert [(r.tenant, r.status, r.message) for r in summary.failed] == [
        ("t-001", "error", "RuntimeError: boom")
    ]
    assert [r.tenant for r in summary.succeeded] == ["t-000", "t-002"]
    assert store.get(summary.failed[0].batch_id).outcome == "error"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "total", "allowed"),
    [("0", 200, 0), ("5", 200, 5), ("2%", 200, 4), ("2%", 49, 0), ("2.5%", 200, 5), ("100%", 7, 7)],
)
def test_failure_budgets(text: str, total: int, allowed: int) -> None:
    assert FailureBudget.parse(text).allowed(total) == allowed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x", "neither a count nor a percentage"),
        ("1.5", "whole number"),
        ("150%", "more than 100%"),
        ("-1", "neither"),
    ],
)
def test_bad_failure_budgets(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        FailureBudget.parse(text)


def test_child_ids_are_deterministic_and_distinct() -> None:
    assert child_batch_id("p", "t1") == child_batch_id("p", "t1", 1)
    assert (
        len(
            {
                child_batch_id("p", "t1"),
                child_batch_id("p", "t2"),
                child_batch_id("p", "t1", 2),
                child_batch_id("q", "t1"),
            }
        )
        == 4
    )
    assert child_batch_id("fleet-x", "t1").startswith("fleet-x-")


def test_bad_settings_and_selections_are_usage_errors(store: HistoryStore) -> None:
    with pytest.raises(UsageError, match="--concurrency 0"):
        FleetSettings(concurrency=0)
    with pytest.raises(UsageError, match="matched no tenant"):
        FleetRun(
            operation=OP,
            tenants=[],
            runner=FakeTenantRunner(),
            store=store,
            settings=FleetSettings(),
        )
    with pytest.raises(UsageError, match="selected twice"):
        FleetRun(
            operation=OP,
            tenants=fleet(2) * 2,
            runner=FakeTenantRunner(),
            store=store,
            settings=FleetSettings(),
        )
