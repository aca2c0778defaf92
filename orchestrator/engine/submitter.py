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

``hold=True`` with a ``journal`` (``tenantctl listen --engine local``, docs/reliability.md): a
request from the bus is not answered until its result event is published -- ``submit`` blocks
that long, so the consumer acks only then, and a consumer killed mid-run leaves the request on
the bus. Each finished job is recorded in the journal (:mod:`orchestrator.engine.journal`); a
redelivered request resumes from it (finished jobs are not run again) and one whose result was
published is a duplicate, across restarts too. A result that could not be published makes
``submit`` raise (the message is nacked and the run resumed on its redelivery).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import UnavailableError
from orchestrator.events import LifecycleRequest
from orchestrator.submit import SubmitOutcome

from .engine import LocalEngine
from .journal import JournalObserver, JournalState, NoJournal, RunJournal
from .locks import EngineBusyError, TenantBusyError
from .observer import RunObserver
from .request import RequestLike
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
    # The journal's record of an earlier run of this request (jobs it finished).
    recorded: JournalState = field(default_factory=JournalState)
    # Set once the run's outcome was handed to the callbacks; ``answered``: they succeeded
    # (the result event was published).
    settled: threading.Event = field(default_factory=threading.Event)
    answered: bool = False

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
        journal: RunJournal | None = None,
        hold: bool = False,
    ) -> None:
        self.engine = engine
        self._on_result = on_result
        self._on_error = on_error
        self._max_concurrent = max_concurrent
        self.journal: RunJournal = journal or NoJournal()
        self._hold = hold
        self._closing = False
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="local")
        self._lock = threading.Lock()
        self._active: dict[str, LocalSubmission] = {}
        self._seen: dict[str, LocalSubmission] = {}  # insertion-ordered: oldest first

    def submit(self, request: LifecycleRequest) -> SubmitOutcome:
        """The orchestrator's :class:`~orchestrator.submit.Engine` seam; with ``hold``, returns
        only once the run's result was published (raises UnavailableError when it was not)."""
        submission = self._start(request, from_bus=True)
        if submission is None:
            if self._hold:
                # A second delivery of a request running here: answer it with the first one,
                # so that acking it never acks a request whose run is still in flight.
                running = self.submission(request.batch_operation_id)
                if running is not None:
                    running.settled.wait()
            return SubmitOutcome("duplicate", request.batch_operation_id, engine="local")
        if self._hold:
            submission.settled.wait()
            if not submission.answered:
                raise UnavailableError(
                    f"the result of {request.batch_operation_id} was not published",
                    hint="the request goes back to the bus; its redelivery resumes the run "
                    "from the journal",
                )
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
        recorded = JournalState()
        if from_bus:
            if self._closing:
                raise EngineBusyError(
                    "the local engine is shutting down", hint="another consumer takes it"
                )
            with self._lock:
                seen = request.batch_operation_id in self._seen
            if not seen:
                recorded = self.journal.load(request)  # an API call: outside the lock
                if recorded.published:
                    return None  # answered before a restart: a duplicate
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
            submission = LocalSubmission(request=request, future=future, recorded=recorded)
            self._active[request.tenant_env_id] = submission
            self._seen[request.batch_operation_id] = submission
            while len(self._seen) > MAX_REMEMBERED:
                del self._seen[next(iter(self._seen))]
        self._pool.submit(self._run, submission)
        return submission

    def _run(self, submission: LocalSubmission) -> None:
        request = submission.request
        recorded = submission.recorded.jobs
        observer: RunObserver | None = None
        if not isinstance(self.journal, NoJournal):
            observer = JournalObserver(self.journal, request, recorded)
        try:
            result = self.engine.run(
                request, cancel=submission.cancel_event, observer=observer, recorded=recorded
            )
        except BaseException as exc:
            self._finish(submission)
            submission.future.set_exception(exc)
            self._settle(submission, self._on_error, exc)
            return
        self._finish(submission)
        submission.future.set_result(result)
        self._settle(submission, self._on_result, result)

    def _settle(
        self,
        submission: LocalSubmission,
        callback: Callable[[RequestLike, Any], None] | None,
        value: Any,
    ) -> None:
        request = submission.request
        answered = callback is None or self._callback(callback, request, value)
        if answered and callback is not None:
            try:
                self.journal.mark_published(request)
            except Exception:
                # The result is out; without the mark a redelivery (only after a kill before
                # the ack) would publish it once more, with the same event id.
                log.exception("journal of %s: published not recorded", request.batch_operation_id)
        submission.answered = answered
        submission.settled.set()

    @staticmethod
    def _callback(
        callback: Callable[[RequestLike, Any], None], request: RequestLike, value: Any
    ) -> bool:
        # The pool would keep the exception in a future nobody reads: the result event would
        # be missing without a word.
        try:
            callback(request, value)
        except Exception:
            log.exception("publishing the outcome of batch %s failed", request.batch_operation_id)
            return False
        return True

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
        self._closing = True  # no new request from the bus: another consumer takes it
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
