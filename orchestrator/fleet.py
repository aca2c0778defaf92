"""Fleet operations: one lifecycle operation across many tenants, progressively and on record.

A fleet run has one *parent* batch id; each tenant gets one request (a child batch id derived
from the parent, the tenant and the attempt number, so a resumed run finds them again). The
run goes:

1. **Canary**: the first ``canary`` tenants of the list run first (at the concurrency bound) and
   the run waits for all their results. Any canary that does not succeed stops the run: no
   other tenant starts. That is the point of a canary.
2. **The rest**, never more than ``concurrency`` in flight. Each failure (``failed`` or
   ``error``) counts against the failure budget (``--max-failures 5`` or ``2%`` of the tenants
   selected); once the failures *exceed* the budget no new tenant starts. Tenants already in
   flight run to their end: stopping a half-done migration is worse than letting it finish.
3. **Interruption** (SIGINT / the ``cancel`` event): no new tenant starts and the tenants in
   flight are cancelled through the runner (the local engine terminates its bridges, which
   delete their pods); they are recorded ``cancelled``.

Every start and outcome is recorded in the history store (the fleet is the one recording it,
whatever the runner), which is what ``--resume PARENT`` reads: a tenant whose latest request
under that parent succeeded is skipped; one that failed or was cancelled runs again under a new
child id (attempt + 1); one whose request never finished (the process died) reuses the same
child id, so an engine that deduplicates by batch id (Argo's Workflow name) picks it up.

The per-tenant runner is a seam (:class:`TenantRunner`); the implementations live in
:mod:`orchestrator.fleet_runners`: the local engine, Argo (one Workflow per tenant) and, for
tests, a scripted fake.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from bridge.errors import LifecycleError, UsageError
from orchestrator.history import HistoryRecord, HistoryStore
from orchestrator.inventory import Tenant

SUCCEEDED, FAILED, CANCELLED, ERROR = "succeeded", "failed", "cancelled", "error"
FLEET_SOURCE = "tenantctl-fleet"

MAX_BATCH_ID = 63

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


# -- ids and budget ------------------------------------------------------------------------


def new_parent_batch_id(now: datetime | None = None) -> str:
    """``fleet-20261126t020000-3fa9c1``: sortable, lowercase, safe in labels and names."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"fleet-{moment:%Y%m%dt%H%M%S}-{secrets.token_hex(3)}"


def child_batch_id(parent: str, tenant: str, attempt: int = 1) -> str:
    """The child batch id of ``tenant`` in fleet ``parent``: the same inputs give the same id
    (a resumed run finds it), a new attempt gives a new one (so a re-run is a new operation,
    not a duplicate the engine would deduplicate away)."""
    digest = hashlib.sha256(f"{parent}\n{tenant}\n{attempt}".encode()).hexdigest()[:10]
    # Batch ids travel as label values (<= 63 characters): a long parent id is shortened;
    # the digest covers the whole of it, so the child stays unique.
    return f"{parent[: MAX_BATCH_ID - 11].rstrip('-_.')}-{digest}"


_BUDGET_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


@dataclass(frozen=True)
class FailureBudget:
    """How many failed tenants a run tolerates: an absolute count or a percentage of the
    tenants selected (rounded down: ``2%`` of 200 is 4, of 49 is 0)."""

    count: int | None = 0
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> FailureBudget:
        match = _BUDGET_RE.match(text)
        if match is None:
            raise UsageError(
                f"--max-failures {text!r} is neither a count nor a percentage",
                hint="write a whole number (5) or a percentage (2%)",
            )
        number, percent = match.groups()
        if percent:
            value = float(number)
            if value > 100:
                raise UsageError(f"--max-failures {text!r} is more than 100%")
            return cls(count=None, percent=value)
        if "." in number:
            raise UsageError(
                f"--max-failures {text!r}: a count must be a whole number",
                hint="write 5, or a percentage such as 2.5%",
            )
        return cls(count=int(number))

    def allowed(self, total: int) -> int:
        if self.percent is not None:
            return math.floor(total * self.percent / 100 + 1e-9)
        return self.count or 0

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else str(self.count)


@dataclass(frozen=True)
class FleetSettings:
    concurrency: int = 10
    canary: int = 0
    max_failures: FailureBudget = field(default_factory=FailureBudget)
    # How often the dispatcher wakes up to notice an interruption while waiting.
    poll_seconds: float = 0.1

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError(f"--concurrency {self.concurrency}: must be at least 1")
        if self.canary < 0:
            raise UsageError(f"--canary {self.canary}: must be 0 or more")


# -- the runner seam -----------------------------------------------------------------------


@dataclass(frozen=True)
class TenantRequest:
    """One tenant's request in a fleet run; fits the local engine's ``RequestLike``."""

    batch_operation_id: str
    parent_batch_operation_id: str
    tenant: Tenant
    operation: str
    changeset: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1
    source_batch_operation_id: str | None = None

    @property
    def tenant_env_id(self) -> str:
        return self.tenant.id

    @property
    def region(self) -> str | None:
        return self.tenant.region

    @property
    def environment(self) -> Mapping[str, Any]:
        return self.tenant.environment()


@dataclass(frozen=True)
class TenantOutcome:
    status: str  # succeeded | failed | cancelled | error
    message: str = ""
    jobs: tuple[Mapping[str, Any], ...] = ()
    workflow: str | None = None


class TenantRunner(Protocol):
    """Runs one tenant's request to its end and says how it went. Must return promptly with
    ``cancelled`` once ``cancel`` is set. May raise: the fleet records the error."""

    def run(self, request: TenantRequest, *, cancel: threading.Event) -> TenantOutcome: ...


# -- progress ------------------------------------------------------------------------------


@dataclass
class Counts:
    total: int
    skipped: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def done(self) -> int:
        return self.skipped + self.succeeded + self.failed + self.cancelled


class FleetProgress(Protocol):
    """A live view of the run. Called from the dispatcher and the worker threads, but always
    with the run's lock held: never two calls at once, and ``counts`` is consistent."""

    def on_begin(self, run: FleetRun) -> None: ...
    def on_start(self, request: TenantRequest, *, canary: bool, counts: Counts) -> None: ...
    def on_finish(self, request: TenantRequest, outcome: TenantOutcome, counts: Counts) -> None: ...
    def on_stop(self, reason: str, counts: Counts) -> None: ...


class NoProgress:
    def on_begin(self, run: FleetRun) -> None: ...
    def on_start(self, request: TenantRequest, *, canary: bool, counts: Counts) -> None: ...
    def on_finish(self, request: TenantRequest, outcome: TenantOutcome, counts: Counts) -> None: ...
    def on_stop(self, reason: str, counts: Counts) -> None: ...


class LineProgress:
    """Progress as text. Not a TTY (CI, logs): one plain line per start and per outcome. A TTY:
    one status line rewritten in place, with a line of its own for every failure."""

    def __init__(self, write: Callable[[str], None], *, tty: bool = False) -> None:
        self._write = write
        self._tty = tty
        self._status_shown = False

    @staticmethod
    def _status(counts: Counts) -> str:
        return (
            f"[{counts.done}/{counts.total}] running {counts.running}, "
            f"succeeded {counts.succeeded}, failed {counts.failed}"
            + (f", cancelled {counts.cancelled}" if counts.cancelled else "")
            + (f", skipped {counts.skipped}" if counts.skipped else "")
        )

    def _line(self, text: str) -> None:
        if self._tty and self._status_shown:
            self._write("\r\x1b[2K")
            self._status_shown = False
        self._write(text + "\n")

    def _refresh(self, counts: Counts) -> None:
        if self._tty:
            self._write("\r\x1b[2K" + self._status(counts))
            self._status_shown = True

    def on_begin(self, run: FleetRun) -> None:
        resumed = ""
        if run.resumed and run.previous_requests:
            resumed = f", resuming ({run.counts.skipped} already succeeded)"
        elif run.resumed:
            resumed = ", nothing to resume: starting it"
        self._line(
            f"fleet {run.parent_batch_id}: {run.operation} on {run.counts.total} tenant(s), "
            f"concurrency {run.settings.concurrency}, "
            f"canary {min(run.settings.canary, run.counts.total)}, "
            f"max failures {run.settings.max_failures} "
            f"({run.allowed_failures} allowed){resumed}"
        )
        self._refresh(run.counts)

    def on_start(self, request: TenantRequest, *, canary: bool, counts: Counts) -> None:
        if not self._tty:
            kind = "canary " if canary else ""
            self._line(f"start {kind}{request.tenant.id} ({request.batch_operation_id})")
        self._refresh(counts)

    def on_finish(self, request: TenantRequest, outcome: TenantOutcome, counts: Counts) -> None:
        if not self._tty or outcome.status != SUCCEEDED:
            detail = (
                f": {outcome.message}" if outcome.status != SUCCEEDED and outcome.message else ""
            )
            self._line(f"{outcome.status} {request.tenant.id}{detail}  {self._status(counts)}")
        self._refresh(counts)

    def on_stop(self, reason: str, counts: Counts) -> None:
        self._line(f"stopping: {reason}; no new tenant will start")
        self._refresh(counts)

    def close(self) -> None:
        if self._tty and self._status_shown:
            self._write("\n")
            self._status_shown = False


# -- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantResult:
    tenant: str
    batch_id: str
    status: str
    message: str = ""


@dataclass
class FleetSummary:
    parent_batch_id: str
    operation: str
    total: int
    allowed_failures: int
    succeeded: list[TenantResult] = field(default_factory=list)
    failed: list[TenantResult] = field(default_factory=list)
    cancelled: list[TenantResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # succeeded in an earlier run (resume)
    not_started: list[str] = field(default_factory=list)
    stopped: str | None = None  # why no more tenants were started, when it stopped early
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.failed or self.not_started or self.cancelled:
            return EXIT_FAILED
        return EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "parentBatchOperationId": self.parent_batch_id,
            "operation": self.operation,
            "total": self.total,
            "allowedFailures": self.allowed_failures,
            "stopped": self.stopped,
            "interrupted": self.interrupted,
            "succeeded": [
                {"tenant": r.tenant, "batchOperationId": r.batch_id} for r in self.succeeded
            ],
            "failed": [
                {
                    "tenant": r.tenant,
                    "batchOperationId": r.batch_id,
                    "status": r.status,
                    "reason": r.message,
                }
                for r in self.failed
            ],
            "cancelled": [
                {"tenant": r.tenant, "batchOperationId": r.batch_id} for r in self.cancelled
            ],
            "skipped": list(self.skipped),
            "notStarted": list(self.not_started),
        }

    def render(self) -> str:
        lines = [
            f"fleet {self.parent_batch_id}: {self.operation} on {self.total} tenant(s)",
            f"  succeeded:   {len(self.succeeded)}"
            + (f" (+{len(self.skipped)} already succeeded earlier)" if self.skipped else ""),
            f"  failed:      {len(self.failed)} (budget {self.allowed_failures})",
        ]
        lines += [f"    {r.tenant}: {r.status}: {r.message}" for r in self.failed]
        if self.cancelled:
            lines.append(f"  cancelled:   {len(self.cancelled)}")
            lines += [f"    {r.tenant}" for r in self.cancelled]
        lines.append(f"  not started: {len(self.not_started)}")
        if self.not_started:
            shown = ", ".join(self.not_started[:50])
            more = f" … and {len(self.not_started) - 50} more" if len(self.not_started) > 50 else ""
            lines.append(f"    {shown}{more}")
        if self.stopped:
            lines.append(f"  stopped: {self.stopped}")
        if self.interrupted or self.failed or self.not_started or self.cancelled:
            lines.append(
                f"  resume with: tenantctl fleet {self.operation} <same selection> "
                f"--resume {self.parent_batch_id}"
            )
        return "\n".join(lines)


@dataclass
class _Planned:
    request: TenantRequest
    canary: bool


class FleetRun:
    """One fleet run; :meth:`execute` blocks until every started tenant has ended."""

    def __init__(
        self,
        *,
        operation: str,
        tenants: Sequence[Tenant],
        runner: TenantRunner,
        store: HistoryStore,
        settings: FleetSettings,
        parent_batch_id: str | None = None,
        resume: bool = False,
        changeset: Mapping[str, Any] | None = None,
        progress: FleetProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        if not tenants:
            raise UsageError(
                "the fleet selection matched no tenant", hint="check the selection flags"
            )
        ids = [t.id for t in tenants]
        if len(set(ids)) != len(ids):
            raise UsageError("a tenant is selected twice", hint="list each tenant id once")
        if resume and not parent_batch_id:
            raise UsageError(
                "resuming needs the parent batch id", hint="pass --resume PARENT_BATCH"
            )
        self.operation = operation
        self.tenants = list(tenants)
        self.runner = runner
        self.store = store
        self.settings = settings
        self.parent_batch_id = parent_batch_id or new_parent_batch_id()
        self.resumed = resume
        self.changeset = dict(changeset or {})
        self.progress: FleetProgress = progress or NoProgress()
        self.cancel = cancel or threading.Event()
        self.counts = Counts(total=len(self.tenants))
        self.allowed_failures = settings.max_failures.allowed(len(self.tenants))
        self.summary = FleetSummary(
            parent_batch_id=self.parent_batch_id,
            operation=operation,
            total=len(self.tenants),
            allowed_failures=self.allowed_failures,
        )
        self._lock = threading.Lock()
        self._plan = self._make_plan()

    # -- planning (resume) ---------------------------------------------------------------

    def _previous(self) -> dict[str, list[HistoryRecord]]:
        """This parent's earlier child records per tenant, newest first."""
        by_tenant: dict[str, list[HistoryRecord]] = {}
        for record in self.store.query(parent=self.parent_batch_id, limit=None):
            if record.operation != self.operation:
                raise UsageError(
                    f"fleet {self.parent_batch_id} ran {record.operation}, not {self.operation}",
                    hint=f"resume it with: tenantctl fleet {record.operation} "
                    f"--resume {self.parent_batch_id}",
                )
            by_tenant.setdefault(record.tenant, []).append(record)
        return by_tenant

    def plan(self) -> list[tuple[TenantRequest, bool]]:
        """What :meth:`execute` would start, in order: (request, is canary). Tenants that
        already succeeded (on resume) are not in it; they are in ``summary.skipped``."""
        ordered = [p for p in self._plan if p.canary] + [p for p in self._plan if not p.canary]
        return [(p.request, p.canary) for p in ordered]

    def _make_plan(self) -> list[_Planned]:
        if not self.resumed and self.store.query(parent=self.parent_batch_id, limit=1):
            raise UsageError(
                f"fleet {self.parent_batch_id} already has history",
                hint=f"continue it with --resume {self.parent_batch_id}, or use a new id",
            )
        previous = self._previous() if self.resumed else {}
        self.previous_requests = sum(len(records) for records in previous.values())
        canaries = {t.id for t in self.tenants[: self.settings.canary]}
        plan: list[_Planned] = []
        for tenant in self.tenants:
            records = previous.get(tenant.id, [])
            latest = records[0] if records else None
            if latest is not None and latest.outcome == SUCCEEDED:
                self.summary.skipped.append(tenant.id)
                self.counts.skipped += 1
                continue
            if latest is not None and latest.outcome is None:
                # Never finished (the process died): the same id, so an engine that
                # deduplicates by batch id resumes it instead of running it twice.
                batch_id, attempt = latest.batch_id, len(records)
            else:
                attempt = len(records) + 1
                batch_id = child_batch_id(self.parent_batch_id, tenant.id, attempt)
            request = TenantRequest(
                batch_operation_id=batch_id,
                parent_batch_operation_id=self.parent_batch_id,
                tenant=tenant,
                operation=self.operation,
                changeset=self.changeset,
                attempt=attempt,
            )
            plan.append(_Planned(request, canary=tenant.id in canaries))
        return plan

    # -- running -------------------------------------------------------------------------

    # Decisions and timestamps are taken under one lock: a tenant's start is recorded only
    # while the run is not stopped, and a failure is recorded together with the stop it causes.
    # So the history proves the rules exactly: no start is later than the failure that
    # exhausted the budget, and never more than ``concurrency`` intervals overlap.

    def _start(self, planned: _Planned) -> bool:
        """In the dispatcher: record the start unless the run has been stopped."""
        request = planned.request
        batch = request.batch_operation_id
        with self._lock:
            self._notice_interruption()
            if self.summary.stopped is not None:
                return False
            self.store.record_request(
                batch,
                tenant=request.tenant.id,
                operation=request.operation,
                region=request.tenant.region,
                parent_batch_id=request.parent_batch_operation_id,
                source=FLEET_SOURCE,
            )
            self.store.record_submitted(batch)
            self.store.record_started(batch)
            self.counts.running += 1
            self.progress.on_start(request, canary=planned.canary, counts=self.counts)
            return True

    def _run_one(self, planned: _Planned) -> TenantOutcome:
        """In a worker thread: run, then record the outcome (before the slot is released)."""
        request = planned.request
        try:
            outcome = self.runner.run(request, cancel=self.cancel)
        except LifecycleError as exc:
            outcome = TenantOutcome(ERROR, str(exc))
        except Exception as exc:  # a runner bug must not take the fleet down with it
            outcome = TenantOutcome(ERROR, f"{type(exc).__name__}: {exc}")
        if outcome.status not in (SUCCEEDED, FAILED, CANCELLED, ERROR):
            outcome = TenantOutcome(ERROR, f"runner returned unknown status {outcome.status!r}")
        with self._lock:
            self.store.record_finished(
                request.batch_operation_id, outcome.status, outcome.jobs, message=outcome.message
            )
            self._record(planned, outcome)
        return outcome

    def _notice_interruption(self) -> None:
        if self.cancel.is_set() and not self.summary.interrupted:
            self.summary.interrupted = True
            self._stop("interrupted")

    def _stop(self, reason: str) -> None:
        if self.summary.stopped is None:
            self.summary.stopped = reason
            self.progress.on_stop(reason, self.counts)

    def _record(self, planned: _Planned, outcome: TenantOutcome) -> None:
        request = planned.request
        result = TenantResult(
            request.tenant.id, request.batch_operation_id, outcome.status, outcome.message
        )
        self.counts.running -= 1
        if outcome.status == SUCCEEDED:
            self.counts.succeeded += 1
            self.summary.succeeded.append(result)
        elif outcome.status == CANCELLED:
            self.counts.cancelled += 1
            self.summary.cancelled.append(result)
        else:
            self.counts.failed += 1
            self.summary.failed.append(result)
        self.progress.on_finish(request, outcome, self.counts)
        if outcome.status in (FAILED, ERROR):
            if planned.canary:
                self._stop(f"canary {request.tenant.id} {outcome.status}")
            elif self.counts.failed > self.allowed_failures:
                self._stop(
                    f"failure budget exceeded: {self.counts.failed} failed, "
                    f"{self.allowed_failures} allowed (--max-failures {self.settings.max_failures})"
                )

    def _dispatch(self, pool: ThreadPoolExecutor, queue: list[_Planned]) -> None:
        """Start from ``queue`` while under the bound and not stopped; wait for all started."""
        in_flight: set[Future[TenantOutcome]] = set()
        position = 0
        while True:
            with self._lock:
                self._notice_interruption()
            while position < len(queue) and len(in_flight) < self.settings.concurrency:
                if not self._start(queue[position]):
                    break
                in_flight.add(pool.submit(self._run_one, queue[position]))
                position += 1
            if not in_flight:
                break
            done, _ = wait(
                in_flight, timeout=self.settings.poll_seconds, return_when=FIRST_COMPLETED
            )
            for future in done:
                in_flight.discard(future)
                future.result()  # a history failure while recording surfaces here
        self.summary.not_started.extend(p.request.tenant.id for p in queue[position:])

    def execute(self) -> FleetSummary:
        self.progress.on_begin(self)
        canaries = [p for p in self._plan if p.canary]
        rest = [p for p in self._plan if not p.canary]
        with ThreadPoolExecutor(
            max_workers=self.settings.concurrency, thread_name_prefix="fleet"
        ) as pool:
            self._dispatch(pool, canaries)
            self._dispatch(pool, rest)
        # Keep the summary in the fleet's order, whatever order the tenants finished in.
        order = {t.id: n for n, t in enumerate(self.tenants)}
        for results in (self.summary.succeeded, self.summary.failed, self.summary.cancelled):
            results.sort(key=lambda r: order[r.tenant])
        self.summary.not_started.sort(key=order.__getitem__)
        return self.summary
