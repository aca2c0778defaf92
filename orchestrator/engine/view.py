"""The live view of a local run: progress lines, job logs prefixed ``[namespace/job]``, a summary.

Two renderings of the same events:

* line-oriented (not a TTY, e.g. CI logs or a pipe): one line per event, never rewritten, so the
  output reads the same in a file as it did live;
* TTY: the same lines scroll, and a status block at the bottom (the current wave's jobs, their
  state and running time) is redrawn in place twice a second.

``logs`` chooses which job logs are shown: ``all`` (as they arrive), ``failed`` (held back, shown
only for jobs that did not succeed) or ``none``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from typing import TextIO

from .observer import RunObserver
from .plan import EnginePlan, PlannedJob, PlannedWave
from .request import RequestLike
from .result import SUCCEEDED, JobResult, OperationResult

_CLEAR_TO_END = "\x1b[J"
# The bridge says "created pod <name> (attempt N)" on stderr for every attempt it starts.
_ATTEMPT = re.compile(r"\(attempt (\d+)\)")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def describe_result(result: JobResult) -> str:
    """``succeeded (2 attempts, 3.1s)`` / ``failed: exit 3 BackoffLimitExceeded ...``."""
    parts = [_plural(result.attempts, "attempt"), format_seconds(result.duration_seconds)]
    head = result.status
    if not result.succeeded:
        detail = []
        if result.exit_code is not None:
            detail.append(f"exit {result.exit_code}")
        if result.reason:
            detail.append(result.reason)
        if detail:
            head += ": " + " ".join(detail)
    text = f"{head} ({', '.join(parts)})"
    if not result.succeeded and result.message:
        text += f" - {result.message}"
    return text


class LiveView(RunObserver):
    """Render a run to ``out`` (a text stream); thread-safe."""

    def __init__(
        self,
        out: TextIO,
        *,
        logs: str = "all",
        tty: bool = False,
        parallelism: int | None = None,
        refresh_seconds: float = 0.5,
    ) -> None:
        self.out = out
        self.logs = logs
        self.tty = tty
        self.parallelism = parallelism
        self.refresh_seconds = refresh_seconds
        self._lock = threading.RLock()
        self._held: dict[str, list[str]] = {}
        self._started: dict[str, float] = {}
        self._states: dict[str, str] = {}
        self._attempts: dict[str, int] = {}
        self._wave: PlannedWave | None = None
        self._footer_lines = 0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- output primitives ---------------------------------------------------------------------

    def _emit(self, *lines: str) -> None:
        with self._lock:
            self._clear_footer()
            for line in lines:
                self.out.write(line + "\n")
            self._draw_footer()
            self.out.flush()

    def _clear_footer(self) -> None:
        if self.tty and self._footer_lines:
            self.out.write(f"\x1b[{self._footer_lines}F{_CLEAR_TO_END}")
            self._footer_lines = 0

    def _draw_footer(self) -> None:
        if not self.tty or self._wave is None:
            return
        now = time.monotonic()
        lines = []
        for job in self._wave.jobs:
            state = self._states.get(job.key, "pending")
            since = self._started.get(job.key)
            detail = ""
            if state == "running" and since:
                attempt = self._attempts.get(job.key)
                detail = f" {format_seconds(now - since)}"
                detail += f", attempt {attempt}" if attempt else ""
            lines.append(f"  | wave {job.wave:>3}  {job.key:<40} {state}{detail}")
        for line in lines:
            self.out.write(line + "\n")
        self._footer_lines = len(lines)

    def _tick(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            with self._lock:
                if self._footer_lines:
                    self._clear_footer()
                    self._draw_footer()
                    self.out.flush()

    def close(self) -> None:
        """Stop the TTY refresher and remove the status block (the summary follows it)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        with self._lock:
            self._wave = None
            self._clear_footer()
            self.out.flush()

    # -- RunObserver ---------------------------------------------------------------------------

    def on_plan(self, plan: EnginePlan, request: RequestLike) -> None:
        jobs = len(plan.jobs)
        waves = ", ".join(str(w.wave) for w in plan.waves)
        lines = [
            f"{request.operation} for tenant {request.tenant_env_id} "
            f"(batch {request.batch_operation_id}): {_plural(jobs, 'job')} in "
            f"{_plural(len(plan.waves), 'wave')}" + (f" ({waves})" if waves else "")
        ]
        if not jobs:
            lines.append("  nothing to do: no opted-in Job takes part in this operation")
        lines += [f"  rejected {r.key}: {'; '.join(r.errors)}" for r in plan.rejected]
        lines += [f"  not for this tenant {f.key}: {f.reason}" for f in plan.filtered]
        self._emit(*lines)
        if self.tty and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="live-view", daemon=True)
            self._ticker.start()

    def on_wave_start(self, wave: PlannedWave) -> None:
        limit = f", up to {self.parallelism} at a time" if self.parallelism else ""
        with self._lock:
            self._wave = wave
            self._emit(f"wave {wave.wave}: {_plural(len(wave.jobs), 'job')}{limit}")

    def on_job_start(self, job: PlannedJob) -> None:
        with self._lock:
            self._states[job.key] = "running"
            self._started[job.key] = time.monotonic()
            self._emit(f"  {job.key}: running")

    def on_job_line(self, job: PlannedJob, line: str, stream: str) -> None:
        if stream == "stderr":
            match = _ATTEMPT.search(line)
            if match:
                with self._lock:
                    self._attempts[job.key] = int(match.group(1))
        if self.logs == "none":
            return
        text = f"[{job.key}] {line}"
        with self._lock:
            if self.logs == "failed":
                self._held.setdefault(job.key, []).append(text)
                return
            self._emit(text)

    def on_job_finish(self, result: JobResult) -> None:
        key = result.job.key
        with self._lock:
            self._states[key] = result.status
            held = self._held.pop(key, [])
            lines = held if not result.succeeded else []
            self._emit(*lines, f"  {key}: {describe_result(result)}")

    def on_wave_finish(self, wave: PlannedWave, results: tuple[JobResult, ...]) -> None:
        counts: dict[str, int] = {}
        for result in results:
            counts[result.status] = counts.get(result.status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        with self._lock:
            self._wave = None
            self._emit(f"wave {wave.wave} done: {summary or 'no jobs'}")

    def on_skipped(self, result: JobResult) -> None:
        self._emit(f"  {result.job.key} (wave {result.job.wave}): skipped - {result.message}")

    def on_cancel(self) -> None:
        self._emit("cancelling: every running bridge deletes its pod ...")

    def on_finish(self, result: OperationResult) -> None:
        self.close()


def summary_lines(result: OperationResult) -> list[str]:
    """The table printed after a run, then one verdict line."""
    header = ("WAVE", "JOB", "STATUS", "ATTEMPTS", "DURATION", "EXIT", "REASON")
    rows: list[Sequence[str]] = [header]
    for job in result.jobs:
        rows.append(
            (
                str(job.job.wave),
                job.job.key,
                job.status,
                str(job.attempts),
                format_seconds(job.duration_seconds) if job.status != "skipped" else "-",
                "-" if job.exit_code is None else str(job.exit_code),
                job.reason or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    counts: dict[str, int] = {}
    for job in result.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no jobs"
    verdict = (
        f"{result.operation} for tenant {result.tenant_env_id}: {result.status.upper()} "
        f"in {format_seconds(result.duration_seconds)} ({tally})"
    )
    if result.aborted_by:
        verdict += (
            f"; later waves not started because {result.aborted_by} failed (on-failure abort)"
        )
    if result.status != SUCCEEDED:
        lines.append("")
    return [*lines, verdict, f"batch operation id: {result.batch_operation_id}"]
