"""The local engine's wave, parallelism, on-failure, cancel and lock logic, with fakes."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import pytest

from bridge.errors import ContractError
from orchestrator.engine import (
    EnginePlan,
    EngineSettings,
    LocalEngine,
    LocalSubmitter,
    PlannedJob,
    RunObserver,
    RunRequest,
    TenantBusyError,
    TenantLocks,
)
from orchestrator.engine.view import LiveView, summary_lines
from orchestrator.events import LifecycleRequest

from .fakes import FakeBridgeLauncher, FakeJob, FakePlanSource, plan_of

UPSERT = "lifecycle.upsert"


def engine_for(
    plan: EnginePlan, launcher: FakeBridgeLauncher, *, parallelism: int = 4, **kw: object
) -> LocalEngine:
    return LocalEngine(
        plan_source=FakePlanSource(plan),
        launcher=launcher,
        settings=EngineSettings(parallelism=parallelism, poll_seconds=0.01),
        **kw,  # type: ignore[arg-type]
    )


def three_waves() -> EnginePlan:
    return plan_of(
        UPSERT,
        ("team-platform/tenant", -1, "abort"),
        ("team-a/schema", 0, "abort"),
        ("team-b/index", 0, "abort"),
        ("team-c/warmup", 1, "abort"),
    )


def test_waves_run_in_order_and_all_jobs_succeed() -> None:
    launcher = FakeBridgeLauncher(
        {"team-a/schema": FakeJob(seconds=0.05), "team-b/index": FakeJob(seconds=0.02)}
    )
    result = engine_for(three_waves(), launcher).run(RunRequest(UPSERT, "t1"))

    assert result.status == "succeeded"
    assert result.exit_code == 0
    assert [j.job.key for j in result.jobs] == [
        "team-platform/tenant",
        "team-a/schema",
        "team-b/index",
        "team-c/warmup",
    ]
    # Every job of a wave finished before any job of the next wave started.
    assert launcher.first("finish", "team-platform/tenant") <= launcher.first(
        "start", "team-a/schema"
    )
    last_of_wave0 = max(launcher.first("finish", k) for k in ("team-a/schema", "team-b/index"))
    assert last_of_wave0 <= launcher.first("start", "team-c/warmup")


def test_bridges_get_the_request_context() -> None:
    launcher = FakeBridgeLauncher()
    request = RunRequest(
        UPSERT,
        "t1",
        batch_operation_id="b-1",
        environment={"applications": ["catalog"]},
        changeset={"x": 1},
        source_batch_operation_id="b-0",
    )
    engine_for(three_waves(), launcher).run(request)

    spec = launcher.launched[0]
    assert (spec.operation, spec.tenant_env_id, spec.batch_operation_id) == (UPSERT, "t1", "b-1")
    assert spec.environment == {"applications": ["catalog"]}
    assert spec.changeset == {"x": 1}
    assert spec.source_batch_operation_id == "b-0"


def test_parallelism_bounds_the_concurrent_bridges_of_a_wave() -> None:
    jobs = [(f"team-{i}/job", 0, "abort") for i in range(5)]
    # Two bridges must be running together to pass the barrier: proves the wave is concurrent.
    barrier = threading.Barrier(2, timeout=10)
    launcher = FakeBridgeLauncher(
        {key: FakeJob(gate=barrier.wait) for key, _, _ in jobs[:4]}
        | {jobs[4][0]: FakeJob(seconds=0.01)}
    )
    result = engine_for(plan_of(UPSERT, *jobs), launcher, parallelism=2).run(
        RunRequest(UPSERT, "t1")
    )

    assert result.status == "succeeded"
    assert launcher.max_running == 2


def test_parallelism_one_runs_a_wave_one_job_at_a_time() -> None:
    jobs = [(f"team-{i}/job", 0, "abort") for i in range(3)]
    launcher = FakeBridgeLauncher({key: FakeJob(seconds=0.02) for key, _, _ in jobs})
    engine_for(plan_of(UPSERT, *jobs), launcher, parallelism=1).run(RunRequest(UPSERT, "t1"))
    assert launcher.max_running == 1


def test_a_failed_abort_job_stops_later_waves_but_its_wave_finishes() -> None:
    launcher = FakeBridgeLauncher(
        {
            "team-a/schema": FakeJob(status="failed", exit_code=3, attempts=2),
            "team-b/index": FakeJob(seconds=0.05),
        }
    )
    result = engine_for(three_waves(), launcher).run(RunRequest(UPSERT, "t1"))

    assert result.status == "failed"
    assert result.exit_code == 1
    assert result.aborted_by == "team-a/schema"
    assert result.job("team-b/index").status == "succeeded"  # its sibling ran to the end
    skipped = result.job("team-c/warmup")
    assert (skipped.status, skipped.reason) == ("skipped", "WaveAborted")
    assert "team-c/warmup" not in [s.job.key for s in launcher.launched]


def test_a_failed_continue_job_lets_later_waves_run_and_the_run_fails() -> None:
    plan = plan_of(
        UPSERT,
        ("team-a/schema", 0, "continue"),
        ("team-c/warmup", 1, "abort"),
    )
    launcher = FakeBridgeLauncher({"team-a/schema": FakeJob(status="failed", exit_code=4)})
    result = engine_for(plan, launcher).run(RunRequest(UPSERT, "t1"))

    assert result.job("team-c/warmup").status == "succeeded"
    assert result.status == "failed"
    assert result.aborted_by is None


def test_refused_and_error_bridges_count_as_failures() -> None:
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"), ("team-b/y", 1, "abort"))
    launcher = FakeBridgeLauncher({"team-a/x": FakeJob(status="refused", exit_code=2)})
    result = engine_for(plan, launcher).run(RunRequest(UPSERT, "t1"))
    assert result.status == "failed"
    assert result.job("team-b/y").status == "skipped"


def test_a_bridge_that_cannot_start_is_an_error_result_not_a_crash() -> None:
    plan = plan_of(UPSERT, ("team-a/x", 0, "continue"), ("team-b/y", 0, "abort"))
    launcher = FakeBridgeLauncher(fail_launch={"team-a/x"})
    result = engine_for(plan, launcher).run(RunRequest(UPSERT, "t1"))

    broken = result.job("team-a/x")
    assert (broken.status, broken.reason) == ("error", "BridgeNotStarted")
    assert "no python here" in broken.message
    assert result.job("team-b/y").status == "succeeded"
    assert result.status == "failed"


def test_an_empty_plan_succeeds_with_no_jobs() -> None:
    result = engine_for(EnginePlan(UPSERT, ()), FakeBridgeLauncher()).run(RunRequest(UPSERT, "t"))
    assert result.status == "succeeded"
    assert result.jobs == ()


def test_cancel_terminates_running_bridges_and_skips_the_rest() -> None:
    plan = plan_of(
        UPSERT,
        ("team-a/slow", 0, "abort"),
        ("team-b/slow", 0, "abort"),
        ("team-c/later", 1, "abort"),
    )
    started = threading.Semaphore(0)

    def signal_started() -> None:
        started.release()

    launcher = FakeBridgeLauncher(
        {
            "team-a/slow": FakeJob(hang=True, gate=signal_started),
            "team-b/slow": FakeJob(hang=True, gate=signal_started),
        }
    )
    cancel = threading.Event()
    engine = engine_for(plan, launcher)
    outcome: list[object] = []
    runner = threading.Thread(
        target=lambda: outcome.append(engine.run(RunRequest(UPSERT, "t1"), cancel=cancel))
    )
    runner.start()
    assert started.acquire(timeout=10)
    assert started.acquire(timeout=10)
    cancel.set()
    runner.join(timeout=20)

    assert not runner.is_alive()
    result = outcome[0]
    assert result.status == "cancelled"  # type: ignore[attr-defined]
    assert result.exit_code == 130  # type: ignore[attr-defined]
    assert sorted(launcher.terminated) == ["team-a/slow", "team-b/slow"]
    assert result.job("team-a/slow").status == "cancelled"  # type: ignore[attr-defined]
    later = result.job("team-c/later")  # type: ignore[attr-defined]
    assert (later.status, later.reason) == ("skipped", "Cancelled")
    data = result.to_event_data()  # type: ignore[attr-defined]
    assert (data["status"], data["cancelled"]) == ("failed", True)


def test_cancel_before_a_queued_job_starts_never_launches_it() -> None:
    plan = plan_of(UPSERT, ("team-a/slow", 0, "abort"), ("team-b/queued", 0, "abort"))
    cancel = threading.Event()
    launcher = FakeBridgeLauncher({"team-a/slow": FakeJob(hang=True, gate=cancel.set)})
    result = engine_for(plan, launcher, parallelism=1).run(RunRequest(UPSERT, "t"), cancel=cancel)

    assert result.status == "cancelled"
    assert [s.job.key for s in launcher.launched] == ["team-a/slow"]
    assert result.job("team-b/queued").status == "skipped"


def test_a_busy_tenant_is_refused_and_other_tenants_run() -> None:
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    locks = TenantLocks()
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    busy_engine = engine_for(
        plan, FakeBridgeLauncher({"team-a/x": FakeJob(gate=hold)}), locks=locks
    )
    runner = threading.Thread(target=busy_engine.run, args=(RunRequest(UPSERT, "t1", "b-1"),))
    runner.start()
    try:
        assert started.wait(10)
        other = engine_for(plan, FakeBridgeLauncher(), locks=locks)
        with pytest.raises(
            TenantBusyError, match=r"tenant t1 is busy: lifecycle.upsert \(batch b-1\)"
        ):
            other.run(RunRequest("lifecycle.suspend", "t1"))
        assert other.run(RunRequest(UPSERT, "t2")).status == "succeeded"
    finally:
        release.set()
        runner.join(10)
    # Released after the run: the tenant is free again.
    assert locks.holder("t1") is None
    assert (
        engine_for(plan, FakeBridgeLauncher(), locks=locks).run(RunRequest(UPSERT, "t1")).succeeded
    )


def test_a_waiting_request_runs_when_the_tenant_is_released() -> None:
    locks = TenantLocks()
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    first = engine_for(plan, FakeBridgeLauncher({"team-a/x": FakeJob(seconds=0.2)}), locks=locks)
    runner = threading.Thread(target=first.run, args=(RunRequest(UPSERT, "t1"),))
    runner.start()
    while locks.holder("t1") is None:
        threading.Event().wait(0.01)
    patient = LocalEngine(
        plan_source=FakePlanSource(plan),
        launcher=FakeBridgeLauncher(),
        settings=EngineSettings(lock_wait_seconds=10, poll_seconds=0.01),
        locks=locks,
    )
    assert patient.run(RunRequest(UPSERT, "t1")).succeeded
    runner.join(10)


def test_the_result_has_the_argo_result_event_shape() -> None:
    launcher = FakeBridgeLauncher({"team-a/schema": FakeJob(attempts=2)})
    result = engine_for(three_waves(), launcher).run(
        RunRequest(UPSERT, "t1", batch_operation_id="b-9", region="eu-west-1")
    )
    data = result.to_event_data()

    assert {"operation", "tenantEnvId", "region", "status", "jobs", "workflow"} <= set(data)
    assert {"startedAt", "finishedAt"} <= set(data)
    assert (data["operation"], data["tenantEnvId"], data["region"]) == (UPSERT, "t1", "eu-west-1")
    assert data["status"] == "succeeded"
    schema = next(j for j in data["jobs"] if j["job"] == "schema")
    assert schema["wave"] == 0
    assert len(schema["attempts"]) == 2
    assert schema["batchOperationId"] == "b-9"


def test_the_orchestrators_request_type_runs_as_is() -> None:
    request = LifecycleRequest(
        batch_operation_id="b-2", tenant_env_id="t1", operation=UPSERT, region="eu"
    )
    result = engine_for(three_waves(), FakeBridgeLauncher()).run(request)
    assert result.succeeded
    assert result.region == "eu"


def test_the_submitter_runs_in_the_background_and_refuses_a_busy_tenant() -> None:
    release = threading.Event()
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    launcher = FakeBridgeLauncher({"team-a/x": FakeJob(gate=lambda: release.wait(10))})
    seen: list[tuple[str, str]] = []
    submitter = LocalSubmitter(
        engine_for(plan, launcher),
        on_result=lambda request, result: seen.append((request.batch_operation_id, result.status)),
    )
    try:
        request = LifecycleRequest(batch_operation_id="b-1", tenant_env_id="t1", operation=UPSERT)
        outcome = submitter.submit(request)
        assert (outcome.status, outcome.name, outcome.engine) == ("submitted", "b-1", "local")
        assert submitter.submit(request).duplicate
        with pytest.raises(TenantBusyError):
            submitter.submit(
                LifecycleRequest(batch_operation_id="b-2", tenant_env_id="t1", operation=UPSERT)
            )
        release.set()
        submission = submitter.submission("b-1")
        assert submission is not None
        assert submission.result(timeout=10).status == "succeeded"
    finally:
        release.set()
        submitter.close()
    assert seen == [("b-1", "succeeded")]


def test_the_submitter_cancels_a_submission() -> None:
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    launcher = FakeBridgeLauncher({"team-a/x": FakeJob(hang=True)})
    submitter = LocalSubmitter(engine_for(plan, launcher))
    submission = submitter.start(RunRequest(UPSERT, "t1"))
    while not launcher.events:
        threading.Event().wait(0.01)
    submission.cancel()
    assert submission.result(timeout=10).status == "cancelled"
    submitter.close()


def test_a_malformed_plan_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="malformed plan"):
        EnginePlan.from_json({"waves": []})


def test_a_plan_from_discovery_json() -> None:
    plan = EnginePlan.from_json(
        {
            "operation": UPSERT,
            "tenantEnvId": "t1",
            "waves": [
                {"wave": 1, "jobs": [{"namespace": "b", "name": "y", "onFailure": "continue"}]},
                {"wave": -1, "jobs": [{"namespace": "a", "name": "x"}]},
            ],
            "rejected": [{"namespace": "c", "name": "z", "errors": ["not suspended"]}],
            "skipped": [{"namespace": "d", "name": "w", "reason": "applications"}],
        }
    )
    assert [w.wave for w in plan.waves] == [-1, 1]
    assert plan.waves[1].jobs[0].on_failure == "continue"
    assert plan.rejected[0].errors == ("not suspended",)
    assert plan.filtered[0].key == "d/w"


def test_the_live_view_prefixes_logs_and_summarises() -> None:
    launcher = FakeBridgeLauncher(
        {
            "team-a/schema": FakeJob(lines=("migrating",), attempts=2),
            "team-b/index": FakeJob(status="failed", exit_code=3, lines=("boom",)),
        }
    )
    out = io.StringIO()
    view = LiveView(out, logs="all", parallelism=4)
    result = engine_for(three_waves(), launcher).run(RunRequest(UPSERT, "t1"), observer=view)
    text = out.getvalue()

    assert "[team-a/schema] migrating" in text
    assert "[team-b/index] boom" in text
    assert "wave -1: 1 job" in text
    assert "team-a/schema: succeeded (2 attempts" in text
    assert "team-b/index: failed: exit 3 BackoffLimitExceeded" in text
    assert "team-c/warmup (wave 1): skipped" in text
    table = "\n".join(summary_lines(result))
    assert "FAILED" in table
    assert "later waves not started because team-a/schema failed" not in table
    assert "because team-b/index failed" in table


def test_logs_failed_shows_only_the_failed_jobs_logs() -> None:
    launcher = FakeBridgeLauncher(
        {
            "team-a/schema": FakeJob(lines=("quiet",)),
            "team-b/index": FakeJob(status="failed", exit_code=3, lines=("loud",)),
        }
    )
    out = io.StringIO()
    engine_for(three_waves(), launcher).run(
        RunRequest(UPSERT, "t1"), observer=LiveView(out, logs="failed")
    )
    assert "[team-b/index] loud" in out.getvalue()
    assert "quiet" not in out.getvalue()


def test_a_request_from_the_bus_waits_there_while_the_engine_is_full() -> None:
    """``submit`` (the consumer's path) refuses beyond --max-concurrent: the message is nacked
    and waits on the bus, instead of being acked and queued in the process."""
    from orchestrator.engine import EngineBusyError

    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    release = threading.Event()
    launcher = FakeBridgeLauncher({"team-a/x": FakeJob(gate=lambda: release.wait(10))})
    seen: list[str] = []
    submitter = LocalSubmitter(
        engine_for(plan, launcher),
        on_result=lambda request, result: seen.append(request.batch_operation_id),
        max_concurrent=1,
    )
    second = LifecycleRequest(batch_operation_id="b-2", tenant_env_id="t2", operation=UPSERT)
    try:
        submitter.submit(
            LifecycleRequest(batch_operation_id="b-1", tenant_env_id="t1", operation=UPSERT)
        )
        with pytest.raises(EngineBusyError, match="running 1 operations") as refused:
            submitter.submit(second)
        assert "--max-concurrent" in str(refused.value.hint)
        release.set()
        first = submitter.submission("b-1")
        assert first is not None
        first.result(timeout=10)
        _wait_until(lambda: not submitter.active())
        assert submitter.submit(second).status == "submitted"  # the redelivery is taken
        second_run = submitter.submission("b-2")
        assert second_run is not None
        second_run.result(timeout=10)
    finally:
        release.set()
        submitter.close()
    assert seen == ["b-1", "b-2"]


def _wait_until(condition: Callable[[], object]) -> None:
    for _ in range(1000):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition not met")


def _wait_launched(launcher: FakeBridgeLauncher, count: int) -> None:
    """Until ``count`` fake bridges are running (their scripts are chosen by then)."""
    for _ in range(1000):
        if sum(1 for event in launcher.events if event[0] == "start") >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} bridge(s) were not launched")


def test_closing_with_a_drain_lets_short_operations_finish_and_cancels_the_rest() -> None:
    """SIGTERM with --drain-seconds: what ends within the drain succeeds, the rest is cancelled
    -- and every operation gets its result either way."""
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    short = threading.Event()
    launcher = FakeBridgeLauncher({"team-a/x": FakeJob(gate=lambda: short.wait(10))})
    seen: dict[str, str] = {}
    submitter = LocalSubmitter(
        engine_for(plan, launcher),
        on_result=lambda request, result: seen.update({request.tenant_env_id: result.status}),
    )
    submitter.submit(
        LifecycleRequest(batch_operation_id="b-1", tenant_env_id="t1", operation=UPSERT)
    )
    _wait_launched(launcher, 1)
    launcher.jobs["team-a/x"] = FakeJob(hang=True)  # the second tenant's run never ends
    submitter.submit(
        LifecycleRequest(batch_operation_id="b-2", tenant_env_id="t2", operation=UPSERT)
    )
    _wait_launched(launcher, 2)
    threading.Timer(0.2, short.set).start()  # t1's run ends during the drain
    try:
        submitter.close(cancel=True, drain_seconds=2.0)
    finally:
        short.set()
    assert seen == {"t1": "succeeded", "t2": "cancelled"}


def test_closing_without_a_drain_cancels_at_once() -> None:
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    launcher = FakeBridgeLauncher({"team-a/x": FakeJob(hang=True)})
    seen: list[str] = []
    submitter = LocalSubmitter(
        engine_for(plan, launcher), on_result=lambda request, result: seen.append(result.status)
    )
    submitter.submit(
        LifecycleRequest(batch_operation_id="b-1", tenant_env_id="t1", operation=UPSERT)
    )
    _wait_launched(launcher, 1)
    submitter.close(cancel=True)
    assert seen == ["cancelled"]


def test_parallelism_below_one_is_a_usage_error() -> None:
    from bridge.errors import UsageError

    with pytest.raises(UsageError, match="--parallelism"):
        EngineSettings(parallelism=0)


def test_an_infrastructure_exit_is_retried_like_argo_does() -> None:
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"), ("team-b/y", 1, "abort"))
    launcher = FakeBridgeLauncher({"team-a/x": FakeJob(status="error", exit_code=75)})
    engine = LocalEngine(
        plan_source=FakePlanSource(plan),
        launcher=launcher,
        settings=EngineSettings(infra_retries=2, infra_backoff_seconds=0.01, poll_seconds=0.01),
    )
    result = engine.run(RunRequest(UPSERT, "t1"))

    assert [s.job.key for s in launcher.launched] == ["team-a/x"] * 3
    assert result.job("team-a/x").exit_code == 75
    assert result.status == "failed"
    # Given up: the pod the bridge kept for a rerun is deleted, never left running unwatched.
    assert launcher.cleaned == ["team-a/x"]
    assert "gave up after 2 rerun(s)" in result.job("team-a/x").message


def test_a_job_whose_own_container_exits_75_is_not_rerun() -> None:
    # Only the bridge's own infrastructure error (status "error") is retried: rerunning a job
    # that failed by itself with 75 would run it twice.
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    launcher = FakeBridgeLauncher({"team-a/x": FakeJob(status="failed", exit_code=75)})
    engine = LocalEngine(
        plan_source=FakePlanSource(plan),
        launcher=launcher,
        settings=EngineSettings(infra_retries=2, infra_backoff_seconds=0.01, poll_seconds=0.01),
    )
    result = engine.run(RunRequest(UPSERT, "t1"))

    assert [s.job.key for s in launcher.launched] == ["team-a/x"]
    assert result.status == "failed"
    assert launcher.cleaned == []  # its bridge deleted the pod itself


def test_a_bridge_killed_by_a_signal_we_did_not_send_is_rerun() -> None:
    # Its pod runs on; without a rerun nobody would watch it after the tenant lock is released.
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    launcher = FakeBridgeLauncher(
        {"team-a/x": FakeJob(status="error", exit_code=-9, reason="NoResult")}
    )
    lines: list[str] = []

    class Recorder(RunObserver):
        def on_job_line(self, job: object, line: str, stream: str) -> None:
            lines.append(line)
            launcher.jobs["team-a/x"] = FakeJob()  # the rerun bridge attaches and finishes

    engine = LocalEngine(
        plan_source=FakePlanSource(plan),
        launcher=launcher,
        settings=EngineSettings(infra_backoff_seconds=0.01, poll_seconds=0.01),
    )
    result = engine.run(RunRequest(UPSERT, "t1"), observer=Recorder())

    assert result.succeeded
    assert len(launcher.launched) == 2
    assert any("exited -9 (NoResult)" in line for line in lines)


def test_an_infrastructure_exit_that_recovers_succeeds() -> None:
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    launcher = FakeBridgeLauncher({"team-a/x": FakeJob(status="error", exit_code=75)})
    lines: list[str] = []

    class Recorder(RunObserver):
        def on_job_line(self, job: object, line: str, stream: str) -> None:
            lines.append(line)
            launcher.jobs["team-a/x"] = FakeJob()  # the API is back

    engine = LocalEngine(
        plan_source=FakePlanSource(plan),
        launcher=launcher,
        settings=EngineSettings(infra_backoff_seconds=0.01, poll_seconds=0.01),
    )
    result = engine.run(RunRequest(UPSERT, "t1"), observer=Recorder())

    assert result.succeeded
    assert len(launcher.launched) == 2
    assert any("retry 1 of 4" in line for line in lines)


def test_an_abort_failure_in_the_last_wave_aborts_nothing() -> None:
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    launcher = FakeBridgeLauncher({"team-a/x": FakeJob(status="failed", exit_code=1)})
    result = engine_for(plan, launcher).run(RunRequest(UPSERT, "t1"))
    assert result.status == "failed"
    assert result.aborted_by is None
    assert "later waves" not in "\n".join(summary_lines(result))


def test_the_tty_view_keeps_a_status_block_with_attempts_and_clears_it() -> None:
    started = threading.Event()
    release = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"), ("team-b/y", 0, "abort"))
    launcher = FakeBridgeLauncher({"team-a/x": FakeJob(gate=hold)})
    out = io.StringIO()
    view = LiveView(out, logs="all", tty=True, refresh_seconds=0.01)
    runner = threading.Thread(
        target=engine_for(plan, launcher).run, args=(RunRequest(UPSERT, "t1"),),
        kwargs={"observer": view},
    )  # fmt: skip
    runner.start()
    assert started.wait(10)
    view.on_job_line(PlannedJob("team-a", "x"), "bridge: created pod p-2 (attempt 2)", "stderr")
    deadline = threading.Event()
    while "attempt 2" not in out.getvalue() and not deadline.wait(0.01):
        pass
    release.set()
    runner.join(10)
    text = out.getvalue()
    assert "  | wave   0  team-a/x" in text
    assert "running" in text
    assert ", attempt 2" in text
    assert "\x1b[J" in text  # the block is redrawn in place
    # After the run the block is gone: nothing follows the last clear but finished lines.
    assert "  | wave" not in text.rsplit("\x1b[J", 1)[-1]


def test_a_cancel_after_every_job_ended_changes_nothing() -> None:
    cancel = threading.Event()

    class CancelAtTheEnd(RunObserver):
        def on_wave_finish(self, wave: object, results: object) -> None:
            cancel.set()

    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    result = engine_for(plan, FakeBridgeLauncher()).run(
        RunRequest(UPSERT, "t1"), cancel=cancel, observer=CancelAtTheEnd()
    )
    assert result.status == "succeeded"


class _InterleavingLock:
    """A lock that, the first time it is released, lets ``interleave`` run right then: the
    moment another handler thread could get in between two of the owner's steps."""

    def __init__(self, interleave: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._interleave: Callable[[], None] | None = interleave

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
        interleave, self._interleave = self._interleave, None
        if interleave is not None:
            interleave()


def test_two_deliveries_of_one_request_run_it_once_however_they_interleave() -> None:
    launcher = FakeBridgeLauncher()
    submitter = LocalSubmitter(engine_for(plan_of(UPSERT, ("team-a/x", 0, "abort")), launcher))
    request = LifecycleRequest(batch_operation_id="b-1", tenant_env_id="t1", operation=UPSERT)

    def second_delivery() -> None:
        # Pub/Sub redelivers the same request to another handler thread, whose run is over
        # before the first handler goes on.
        if not submitter.submit(request).duplicate:
            submission = submitter.submission("b-1")
            assert submission is not None
            submission.result(timeout=10)

    submitter._lock = _InterleavingLock(second_delivery)  # type: ignore[assignment]
    try:
        submitter.submit(request)
    finally:
        submitter.close()
    assert len(launcher.launched) == 1


def test_a_failing_result_callback_is_logged_not_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def on_result(request: object, result: object) -> None:
        raise RuntimeError("results topic misconfigured")

    submitter = LocalSubmitter(
        engine_for(plan_of(UPSERT, ("team-a/x", 0, "abort")), FakeBridgeLauncher()),
        on_result=on_result,
    )
    submitter.submit(
        LifecycleRequest(batch_operation_id="b-1", tenant_env_id="t1", operation=UPSERT)
    )
    submitter.close()
    assert "results topic misconfigured" in caplog.text
    assert "b-1" in caplog.text


def test_a_cancel_while_waiting_to_rerun_an_infrastructure_exit_deletes_the_kept_pod() -> None:
    # A bridge that exits 75 leaves its pod running on purpose (the rerun resumes it); when the
    # run is cancelled before that rerun, nobody else would ever delete that pod.
    plan = plan_of(UPSERT, ("team-a/x", 0, "abort"))
    launcher = FakeBridgeLauncher({"team-a/x": FakeJob(status="error", exit_code=75)})
    cancel = threading.Event()

    class CancelOnRetry(RunObserver):
        def on_job_line(self, job: object, line: str, stream: str) -> None:
            if "retry 1 of" in line:
                cancel.set()

    engine = LocalEngine(
        plan_source=FakePlanSource(plan),
        launcher=launcher,
        settings=EngineSettings(infra_backoff_seconds=30, poll_seconds=0.01),
    )
    result = engine.run(RunRequest(UPSERT, "t1"), cancel=cancel, observer=CancelOnRetry())

    assert [s.job.key for s in launcher.launched] == ["team-a/x"]
    assert launcher.cleaned == ["team-a/x"]
    assert result.job("team-a/x").status == "cancelled"
    assert result.status == "cancelled"
