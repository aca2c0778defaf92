"""The fleet run itself (:class:`FleetRun`): plan from the history, canary, the rest under the
concurrency bound and the failure budget, interruption, and a record of every start and outcome."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from bridge.errors import LifecycleError, UsageError
from orchestrator import batch_ids
from orchestrator.batch_ids import child_batch_id
from orchestrator.fleet.inventory import Tenant
from orchestrator.fleet.progress import (
    Counts,
    FleetProgress,
    FleetSummary,
    NoProgress,
    TenantResult,
)
from orchestrator.fleet.request import (
    FLEET_SOURCE,
    FleetSettings,
    TenantOutcome,
    TenantRequest,
    TenantRunner,
)
from orchestrator.history import HistoryRecord, HistoryStore
from orchestrator.outcome import CANCELLED, ERROR, FAILED, SUCCEEDED


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
        self.parent_batch_id = parent_batch_id or batch_ids.new_parent_batch_id("fleet")
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
