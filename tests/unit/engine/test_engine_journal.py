"""The run journal and the held request (``tenantctl listen --engine local``): a request is
answered only once its result is published, finished jobs are recorded as they end, a
redelivery resumes from the record and a published one is a duplicate."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from bridge.errors import UnavailableError
from orchestrator.bus import BusError
from orchestrator.engine import EngineSettings, LocalEngine, LocalSubmitter, OperationResult
from orchestrator.engine.journal import JournalState
from orchestrator.engine.request import RequestLike
from orchestrator.engine.result import JobResult
from orchestrator.events import LifecycleRequest

from .fakes import FakeBridgeLauncher, FakeJob, FakePlanSource, plan_of

UPSERT = "lifecycle.upsert"


class MemoryJournal:
    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Mapping[str, Any]]] = {}
        self.published: set[str] = set()

    def load(self, request: RequestLike) -> JournalState:
        batch = request.batch_operation_id
        return JournalState(dict(self.jobs.get(batch, {})), batch in self.published)

    def record_job(self, request: RequestLike, result: JobResult) -> None:
        self.jobs.setdefault(request.batch_operation_id, {})[result.job.key] = dict(result.data)

    def mark_published(self, request: RequestLike) -> None:
        self.published.add(request.batch_operation_id)


def two_waves(launcher: FakeBridgeLauncher) -> LocalEngine:
    plan = plan_of(UPSERT, ("team-a/first", 0, "abort"), ("team-b/second", 1, "abort"))
    return LocalEngine(
        plan_source=FakePlanSource(plan),
        launcher=launcher,
        settings=EngineSettings(poll_seconds=0.01),
    )


REQUEST = LifecycleRequest(batch_operation_id="b-1", tenant_env_id="t1", operation=UPSERT)


def test_a_held_request_is_answered_after_its_result_and_each_job_is_journaled() -> None:
    launcher, journal = FakeBridgeLauncher({}), MemoryJournal()
    published: list[tuple[str, str]] = []

    def on_result(request: RequestLike, result: OperationResult) -> None:
        # The journal has every job before the result goes out, and nothing is marked yet.
        assert set(journal.jobs["b-1"]) == {"team-a/first", "team-b/second"}
        assert "b-1" not in journal.published
        published.append((request.batch_operation_id, result.status))

    submitter = LocalSubmitter(two_waves(launcher), on_result=on_result, journal=journal, hold=True)
    try:
        outcome = submitter.submit(REQUEST)  # blocks until the result is out
        assert outcome.status == "submitted"
        assert published == [("b-1", "succeeded")]
        assert journal.published == {"b-1"}
    finally:
        submitter.close()


def test_a_redelivery_after_a_restart_resumes_and_a_published_one_is_a_duplicate() -> None:
    journal = MemoryJournal()
    journal.jobs["b-1"] = {
        "team-a/first": {"namespace": "team-a", "job": "first", "status": "succeeded"}
    }
    launcher = FakeBridgeLauncher({})
    results: list[OperationResult] = []
    submitter = LocalSubmitter(
        two_waves(launcher), on_result=lambda _, r: results.append(r), journal=journal, hold=True
    )
    try:
        assert submitter.submit(REQUEST).status == "submitted"
        # the first wave's job finished before the restart: not launched again
        assert [spec.job.key for spec in launcher.launched] == ["team-b/second"]
        assert [job.status for job in results[0].jobs] == ["succeeded", "succeeded"]
    finally:
        submitter.close()
    again = LocalSubmitter(two_waves(launcher), journal=journal, hold=True)
    try:  # answered before another restart: a duplicate, nothing runs
        assert again.submit(REQUEST).duplicate
        assert len(launcher.launched) == 1
    finally:
        again.close()


def test_a_result_that_could_not_be_published_leaves_the_request_unanswered() -> None:
    journal = MemoryJournal()

    def on_result(request: RequestLike, result: OperationResult) -> None:
        raise BusError("Pub/Sub unavailable")

    submitter = LocalSubmitter(
        two_waves(FakeBridgeLauncher({})), on_result=on_result, journal=journal, hold=True
    )
    try:
        with pytest.raises(UnavailableError, match="not published"):
            submitter.submit(REQUEST)
        assert journal.published == set()  # the redelivery publishes it
        assert set(journal.jobs["b-1"]) == {"team-a/first", "team-b/second"}
    finally:
        submitter.close()


def test_a_second_delivery_while_running_waits_for_the_first_answer() -> None:
    release = threading.Event()
    launcher = FakeBridgeLauncher({"team-b/second": FakeJob(gate=lambda: release.wait(10))})
    submitter = LocalSubmitter(two_waves(launcher), journal=MemoryJournal(), hold=True)
    answers: list[str] = []
    try:
        first = threading.Thread(target=lambda: answers.append(submitter.submit(REQUEST).status))
        first.start()
        while len(launcher.launched) < 2:
            threading.Event().wait(0.01)
        second = threading.Thread(target=lambda: answers.append(submitter.submit(REQUEST).status))
        second.start()
        second.join(0.3)
        assert answers == []  # neither is acked while the run is in flight
        release.set()
        first.join(10)
        second.join(10)
        assert sorted(answers) == ["duplicate", "submitted"]
    finally:
        release.set()
        submitter.close()
