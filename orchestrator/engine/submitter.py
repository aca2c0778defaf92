"""``--engine local`` for the orchestrator: ``submit(request)`` runs the operation in-process.

The Argo path's ``submit`` (:class:`orchestrator.submit.Engine`) creates a Workflow and returns
a :class:`~orchestrator.submit.SubmitOutcome` at once; the result event is published later by the
workflow's exit handler. :class:`LocalSubmitter` keeps that shape: ``submit`` returns a
``SubmitOutcome`` (``engine="local"``, ``name`` = the batch operation id) at once -- or raises
:class:`TenantBusyError` at once, so the consumer can nack and the bus redeliver later -- the
operation runs on a background thread, and ``on_result`` is called with the request and the
:class:`OperationResult` when it ends: the orchestrator publishes ``result.to_event_data()`` from
there, exactly as it would for Argo.

Capacity: ``submit`` (the bus's path) refuses a request with :class:`EngineBusyError` while
``max_concurrent`` operations run, so the consumer nacks it and it waits on the bus rather than
in this process; ``start`` (a caller that waits, such as the fleet) queues it instead.

Idempotency: a batch id this submitter has already accepted is reported ``duplicate`` (within
the process's lifetime; the Argo path gets this from the Workflow name across restarts).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from orchestrator.events import LifecycleRequest
from orchestrator.submit import SubmitOutcome

from .engine import LocalEngine, RequestLike
from .locks import EngineBusyError, TenantBusyError
from .result import OperationResult

log = logging.getLogger(__name__)

# Batch ids remembered for duplicate detection.
MAX_REMEMBERED = 10_000

ResultCallback = Callable[[RequestLike, OperationResult], None]
ErrorCallback = Callable[[RequestLike, BaseException], None]


@dataclass
class LocalSubmission:
    """A running (or finished) local operation."""

    request: RequestLike
    future: Future[OperationResult]
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        """Stands where the Argo path puts the Workflow name: the batch operation id."""
        return self.request.batch_operation_id

    def cancel(self) -> None:
        """Terminate the run's bridges (each deletes its pod); the result is ``cancelled``."""
        self.cancel_event.set()

    def result(self, timeout: float | None = None) -> OperationResult:
        return self.future.result(timeout)


class LocalSubmitter:
    """Run submitted requests on at most ``max_concurrent`` background threads."""

    def __init__(
        self,
        engine: LocalEngine,
        *,
        on_result: ResultCallback | None = None,
        on_error: ErrorCallback | None = None,
        max_concurrent: int = 4,
    ) -> None:
        self.engine = engine
        self._on_result = on_result
        self._on_error = on_error
        self._max_concurrent = max_concurrent
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="local")
        self._lock = threading.Lock()
        self._active: dict[str, LocalSubmission] = {}
        self._seen: dict[str, LocalSubmission] = {}  # insertion-ordered: oldest first

    def submit(self, request: LifecycleRequest) -> SubmitOutcome:
        """The orchestrator's :class:`~orchestrator.submit.Engine` seam."""
        if self._start(request, from_bus=True) is None:
            return SubmitOutcome("duplicate", request.batch_operation_id, engine="local")
        return SubmitOutcome("submitted", request.batch_operation_id, engine="local")

    def submission(self, batch_operation_id: str) -> LocalSubmission | None:
        """The submission of a batch id accepted by this submitter (running or finished)."""
        with self._lock:
            return self._seen.get(batch_operation_id)

    def start(self, request: RequestLike) -> LocalSubmission:
        """Start ``request``; raises :class:`TenantBusyError` when its tenant is busy."""
        submission = self._start(request, from_bus=False)
        assert submission is not None
        return submission

    def _start(self, request: RequestLike, *, from_bus: bool) -> LocalSubmission | None:
        """A request ``from_bus`` is checked against the batch ids accepted before (None: a
        duplicate) and against capacity (it is better left on the bus). The duplicate check and
        the registration are one critical section: two deliveries of one request racing on
        two handler threads must not both pass the check (the first run may even be over
        before the second registers, so the tenant lock would not stop it)."""
        with self._lock:
            if from_bus and request.batch_operation_id in self._seen:
                return None
            busy = self._active.get(request.tenant_env_id)
            if busy is not None:
                raise TenantBusyError(
                    f"tenant {request.tenant_env_id} is busy: {busy.request.operation} "
                    f"(batch {busy.request.batch_operation_id}) is running",
                    hint="one operation per tenant at a time; retry when it has finished",
                )
            if from_bus and len(self._active) >= self._max_concurrent:
                # A request from the bus is acked once accepted: accepting more than can run
                # would hold it in this process only (lost if the process dies, started late
                # or cancelled unstarted on SIGTERM). Left on the bus, it waits durably.
                raise EngineBusyError(
                    f"the local engine is running {len(self._active)} operations, its limit",
                    hint="raise --max-concurrent, or let the request wait on the bus",
                )
            future: Future[OperationResult] = Future()
            submission = LocalSubmission(request=request, future=future)
            self._active[request.tenant_env_id] = submission
            self._seen[request.batch_operation_id] = submission
            while len(self._seen) > MAX_REMEMBERED:
                del self._seen[next(iter(self._seen))]
        self._pool.submit(self._run, submission)
        return submission

    def _run(self, submission: LocalSubmission) -> None:
        request = submission.request
        try:
            result = self.engine.run(request, cancel=submission.cancel_event)
        except BaseException as exc:
            self._finish(submission)
            submission.future.set_exception(exc)
            if self._on_error is not None:
                self._callback(self._on_error, request, exc)
            return
        self._finish(submission)
        submission.future.set_result(result)
        if self._on_result is not None:
            self._callback(self._on_result, request, result)

    @staticmethod
    def _callback(
        callback: Callable[[RequestLike, Any], None], request: RequestLike, value: Any
    ) -> None:
        # The pool would keep the exception in a future nobody reads: the result event would
        # be missing without a word.
        try:
            callback(request, value)
        except Exception:
            log.exception("publishing the outcome of batch %s failed", request.batch_operation_id)

    def _finish(self, submission: LocalSubmission) -> None:
        with self._lock:
            self._active.pop(submission.request.tenant_env_id, None)

    def active(self) -> list[LocalSubmission]:
        with self._lock:
            return list(self._active.values())

    def close(self, *, cancel: bool = False, drain_seconds: float = 0.0) -> None:
        """Wait for running operations. With ``cancel``, those still running after
        ``drain_seconds`` are cancelled first (a rolling restart lets short operations end
        rather than cancelling them all; each cancelled one still gets its result)."""
        if cancel:
            running = [s.future for s in self.active()]
            if running and drain_seconds > 0:
                log.info(
                    "draining %d running operation(s) for up to %gs", len(running), drain_seconds
                )
                _, left = wait(running, timeout=drain_seconds)
                if left:
                    log.info("cancelling %d operation(s) still running", len(left))
            for submission in self.active():
                submission.cancel()
        self._pool.shutdown(wait=True)
