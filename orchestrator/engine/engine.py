"""The local engine: one plan, walked wave by wave, bridges run as local processes.

Semantics (the same as the Argo WorkflowTemplate's, so what works locally works in Argo):

* Waves run in ascending order; a wave starts only when every job of the previous one ended.
* The jobs of one wave run concurrently, at most ``parallelism`` at a time.
* A wave always runs to its end, even when one of its jobs fails (Argo lets the siblings of a
  failed fan-out node finish too). After the wave, if any job that failed has
  ``on-failure: abort`` (the default), later waves do not start: their jobs are reported as
  ``skipped`` (reason ``WaveAborted``). A failed ``continue`` job lets later waves run.
* The operation failed if any job did not succeed.
* Cancelling (``cancel`` event set, or Ctrl-C in the calling thread) terminates every running
  bridge (SIGTERM: each deletes its pod and exits 143, its result is ``cancelled``), starts no new
  one, and reports the operation ``cancelled``.
* A bridge that exits 75 (infrastructure error) is rerun with backoff, as Argo's retryStrategy
  does; every other outcome is final.
* One operation per tenant at a time (:mod:`orchestrator.engine.locks`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

from bridge.errors import LifecycleError
from bridge.result import EXIT_INFRASTRUCTURE
from bridge.timefmt import utc_now

from .launcher import BridgeHandle, BridgeLauncher, BridgeSpec, PlanSource
from .locks import TenantLocks
from .observer import RunObserver
from .plan import ABORT, PlannedJob, PlannedWave
from .request import RequestLike
from .result import (
    CANCELLED,
    ERROR,
    FAILED,
    SUCCEEDED,
    JobResult,
    OperationResult,
)
from .settings import EngineSettings


class LocalEngine:
    """Run lifecycle operations in this process: ``LocalEngine(...).run(request)``."""

    def __init__(
        self,
        *,
        plan_source: PlanSource,
        launcher: BridgeLauncher,
        settings: EngineSettings | None = None,
        locks: TenantLocks | None = None,
    ) -> None:
        self.plan_source = plan_source
        self.launcher = launcher
        self.settings = settings or EngineSettings()
        self.locks = locks or TenantLocks()

    def run(
        self,
        request: RequestLike,
        *,
        cancel: threading.Event | None = None,
        observer: RunObserver | None = None,
        recorded: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> OperationResult:
        """Discover, then run the waves; blocks until the operation ended (or was cancelled).

        ``recorded``: results (bridge result JSON by ``namespace/job``) of jobs an earlier run
        of the same request finished (the run journal, :mod:`orchestrator.engine.journal`):
        they are reported as recorded and not run again.

        Raises :class:`~orchestrator.engine.locks.TenantBusyError` when the tenant is busy, and
        discovery's errors (:class:`~bridge.errors.LifecycleError`) when there is no plan.
        """
        with self.locks.hold(
            request.tenant_env_id,
            operation=request.operation,
            batch_operation_id=request.batch_operation_id,
            wait_seconds=self.settings.lock_wait_seconds,
        ):
            return _Run(
                self,
                request,
                cancel or threading.Event(),
                observer or RunObserver(),
                recorded=recorded or {},
            ).execute()


class _Run:
    """The state of one run; lives for one :meth:`LocalEngine.run` call."""

    def __init__(
        self,
        engine: LocalEngine,
        request: RequestLike,
        cancel: threading.Event,
        observer: RunObserver,
        *,
        recorded: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self.engine = engine
        self.request = request
        self.cancel = cancel
        self.observer = observer
        self.recorded = recorded
        self._lock = threading.Lock()  # guards _running and the cancel-vs-launch race
        self._running: dict[str, BridgeHandle] = {}
        self._terminated = False
        self._signalled: set[str] = set()  # jobs whose bridge was already told to stop

    def execute(self) -> OperationResult:
        started = utc_now()
        request = self.request
        plan = self.engine.plan_source.discover(
            operation=request.operation,
            tenant_env_id=request.tenant_env_id,
            environment=request.environment,
        )
        self.observer.on_plan(plan, request)
        results: list[JobResult] = []
        aborted_by: str | None = None
        for index, wave in enumerate(plan.waves):
            if self.cancel.is_set() or aborted_by is not None:
                why = "Cancelled" if self.cancel.is_set() else "WaveAborted"
                for job in wave.jobs:
                    skipped = JobResult.skipped(
                        job,
                        operation=request.operation,
                        tenant_env_id=request.tenant_env_id,
                        batch=request.batch_operation_id,
                        why=why,
                    )
                    results.append(skipped)
                    self.observer.on_skipped(skipped)
                continue
            self.observer.on_wave_start(wave)
            wave_results = self._run_wave(wave)
            results.extend(wave_results)
            self.observer.on_wave_finish(wave, wave_results)
            later_waves = index + 1 < len(plan.waves)
            for result in wave_results:
                if later_waves and not result.succeeded and result.job.on_failure == ABORT:
                    aborted_by = result.job.key  # the reason later waves do not start
                    break
        # A cancel that came after every job had ended changed nothing: report what happened.
        if self.cancel.is_set() and not all(result.succeeded for result in results):
            status = CANCELLED
        elif all(result.succeeded for result in results):
            status = SUCCEEDED
        else:
            status = FAILED
        outcome = OperationResult(
            operation=request.operation,
            tenant_env_id=request.tenant_env_id,
            batch_operation_id=request.batch_operation_id,
            region=request.region,
            status=status,
            jobs=tuple(results),
            started_at=started,
            finished_at=utc_now(),
            rejected=plan.rejected,
            aborted_by=aborted_by if status != CANCELLED else None,
        )
        self.observer.on_finish(outcome)
        return outcome

    # -- one wave ------------------------------------------------------------------------------

    def _run_wave(self, wave: PlannedWave) -> tuple[JobResult, ...]:
        if not wave.jobs:
            return ()
        workers = min(self.engine.settings.parallelism, len(wave.jobs))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"wave{wave.wave}")
        try:
            futures: list[Future[JobResult]] = [
                pool.submit(self._run_job, job) for job in wave.jobs
            ]
            pending = set(futures)
            while pending:
                try:
                    if self.cancel.is_set():
                        self._terminate_running()
                    _, pending = wait(
                        pending,
                        timeout=self.engine.settings.poll_seconds,
                        return_when=FIRST_COMPLETED,
                    )
                except KeyboardInterrupt:
                    # Ctrl-C in the calling thread: cancel, and keep waiting for the bridges to
                    # delete their pods -- leaving now would orphan them.
                    self.request_cancel()
            return tuple(future.result() for future in futures)
        finally:
            pool.shutdown(wait=True)

    def request_cancel(self) -> None:
        if not self.cancel.is_set():
            self.cancel.set()
        self._terminate_running()

    def _terminate_running(self) -> None:
        with self._lock:
            first = not self._terminated
            self._terminated = True
            handles = [h for key, h in self._running.items() if key not in self._signalled]
            self._signalled.update(self._running)
        if first:
            self.observer.on_cancel()
        for handle in handles:
            handle.terminate()

    def _run_job(self, job: PlannedJob) -> JobResult:
        """Run one job's bridge; rerun it when it exits 75, as Argo's retryStrategy does."""
        request = self.request
        settings = self.engine.settings
        if job.key in self.recorded:  # finished by an earlier run of this request
            return self._report_recorded(job)
        spec = self._spec(job)
        data: Mapping[str, Any] | None = None
        retry = 0
        cancelled_rerun = False
        while True:
            started = utc_now()
            with self._lock:
                # Checked under the lock that _terminate_running takes: a bridge is either
                # launched before the cancel (and then terminated by it) or not at all.
                if self.cancel.is_set():
                    if data is not None:  # cancelled while waiting to retry
                        cancelled_rerun = True
                        break
                    skipped = JobResult.skipped(
                        job,
                        operation=request.operation,
                        tenant_env_id=request.tenant_env_id,
                        batch=request.batch_operation_id,
                        why="Cancelled",
                    )
                    self.observer.on_skipped(skipped)
                    return skipped
                if retry == 0:
                    self.observer.on_job_start(job)
                try:
                    handle = self.engine.launcher.launch(spec, on_line=self.observer.on_job_line)
                except Exception as exc:  # an OSError starting python, a full disk, ...
                    data = _launch_error(spec, exc, started)
                    break
                self._running[job.key] = handle
                self._signalled.discard(job.key)
            try:
                data = handle.wait()
            except Exception as exc:
                data = _launch_error(spec, exc, started)
            finally:
                with self._lock:
                    self._running.pop(job.key, None)
            # Like Argo's retryStrategy: rerun only what the infrastructure broke (_rerunnable).
            if not _rerunnable(data) or retry >= settings.infra_retries:
                break
            retry += 1
            delay = min(
                settings.infra_backoff_seconds * 2 ** (retry - 1), settings.infra_backoff_cap
            )
            self.observer.on_job_line(
                job,
                f"engine: the bridge exited {data.get('exitCode')} ({data.get('reason')}); "
                f"retry {retry} of {settings.infra_retries} in {delay:g}s",
                "engine",
            )
            if self.cancel.wait(delay):
                cancelled_rerun = True
                break
        # Outside the lock: the cleanups call the API server.
        if cancelled_rerun:
            data = self._cleanup_after_cancel(spec, data)
        elif _rerunnable(data):  # the reruns are used up
            data = self._cleanup_after_giving_up(spec, data, reruns=retry)
        result = JobResult(job, data)
        self.observer.on_job_finish(result)
        return result

    def _report_recorded(self, job: PlannedJob) -> JobResult:
        """A job an earlier run of this request finished: its recorded result, not a rerun."""
        self.observer.on_job_start(job)
        self.observer.on_job_line(
            job, "engine: finished before a restart; its recorded result stands", "engine"
        )
        recorded = JobResult(job, self.recorded[job.key])
        self.observer.on_job_finish(recorded)
        return recorded

    def _spec(self, job: PlannedJob) -> BridgeSpec:
        """The request's identity and documents, for one job's bridge."""
        request = self.request
        return BridgeSpec(
            job=job,
            operation=request.operation,
            tenant_env_id=request.tenant_env_id,
            batch_operation_id=request.batch_operation_id,
            environment=request.environment,
            changeset=request.changeset,
            source_batch_operation_id=request.source_batch_operation_id,
        )

    def _delete_pods(self, spec: BridgeSpec, note: str) -> str:
        """The bridge kept its pod for a rerun to resume, and no bridge is left to delete it --
        the launcher does, so it never runs on unwatched after the tenant's lock is released."""
        cleanup = getattr(self.engine.launcher, "cleanup", None)
        if cleanup is not None:
            try:
                deleted = cleanup(spec)
                note += f"; the engine deleted its pods: {', '.join(deleted) or 'none left'}"
            except LifecycleError as exc:
                note += f"; deleting its pods failed: {exc} (python -m bridge sweep removes them)"
        self.observer.on_job_line(spec.job, f"engine: {note}", "engine")
        return note

    def _cleanup_after_giving_up(
        self, spec: BridgeSpec, data: Mapping[str, Any], *, reruns: int
    ) -> Mapping[str, Any]:
        """The infrastructure broke the bridge once more than the engine reruns it."""
        note = self._delete_pods(spec, f"gave up after {reruns} rerun(s) of the bridge")
        return {**data, "message": f"{data.get('message') or data.get('reason')} ({note})"}

    def _cleanup_after_cancel(self, spec: BridgeSpec, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """Cancelled between an infrastructure exit and its rerun."""
        note = self._delete_pods(spec, "cancelled before the bridge was rerun")
        return {
            **data,
            "status": CANCELLED,
            "reason": "Cancelled",
            "message": f"{note} (after {data.get('reason')}: {data.get('message') or ''})",
        }


def _launch_error(spec: BridgeSpec, exc: Exception, started: datetime) -> dict[str, Any]:
    return spec.unreported_result(
        status=ERROR,
        exit_code=None,
        reason="BridgeNotStarted",
        message=f"could not run the bridge: {exc}",
        started_at=started,
    )


def _rerunnable(data: Mapping[str, Any]) -> bool:
    """Whether a bridge's outcome is the infrastructure's fault, so running it again is safe.

    Exit 75 is the bridge's own "infrastructure error" (the API unreachable after its
    retries). A bridge killed by a signal we did not send (the OOM killer, a node going away)
    wrote no result at all. Either way its pod, if any, is still there: the rerun bridge finds it
    by name and resumes instead of running the job twice -- and without the rerun that pod would
    run on unwatched after the tenant's lock is released. A job whose own container exited 75
    is a failed job (status "failed"), never rerun.
    """
    if data.get("status") != "error":
        return False
    code = data.get("exitCode")
    killed = data.get("reason") == "NoResult" and isinstance(code, int) and code < 0
    return code == EXIT_INFRASTRUCTURE or killed
