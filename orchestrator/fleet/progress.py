"""What a fleet run reports: running counts, progress lines as tenants start and end, and the
summary at the end (its table, its JSON and its exit code).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.fleet.request import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    FleetSettings,
    TenantOutcome,
    TenantRequest,
)
from orchestrator.outcome import SUCCEEDED

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


class RunView(Protocol):
    """What a progress view reads of the run (:class:`~orchestrator.fleet.run.FleetRun`) when it
    begins."""

    @property
    def operation(self) -> str: ...
    @property
    def parent_batch_id(self) -> str: ...
    @property
    def resumed(self) -> bool: ...
    @property
    def previous_requests(self) -> int: ...
    @property
    def counts(self) -> Counts: ...
    @property
    def settings(self) -> FleetSettings: ...
    @property
    def allowed_failures(self) -> int: ...


class FleetProgress(Protocol):
    """A live view of the run. Called from the dispatcher and the worker threads, but always
    with the run's lock held: never two calls at once, and ``counts`` is consistent."""

    def on_begin(self, run: RunView) -> None: ...
    def on_start(self, request: TenantRequest, *, canary: bool, counts: Counts) -> None: ...
    def on_finish(self, request: TenantRequest, outcome: TenantOutcome, counts: Counts) -> None: ...
    def on_stop(self, reason: str, counts: Counts) -> None: ...


class NoProgress:
    def on_begin(self, run: RunView) -> None: ...
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

    def on_begin(self, run: RunView) -> None:
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
