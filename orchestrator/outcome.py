"""The outcome of one operation run to its end, whatever ran it.

A fleet's tenant, a migration's step and a followed Workflow all end the same way: a status, one
line saying why, the jobs the bridges reported and (Argo) the Workflow's name. One record for all
of them, so a fleet and a migration report exactly what the result event says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from orchestrator.engine.result import OperationResult

SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
ERROR: Final = "error"
# A run left going when this process stopped following it (a listener shutting down): not
# finished, so not recorded as finished; the next run follows the same batch id again.
DETACHED: Final = "detached"


@dataclass(frozen=True)
class RunOutcome:
    status: str  # succeeded | failed | cancelled | error | detached
    message: str = ""
    jobs: tuple[Mapping[str, Any], ...] = ()
    workflow: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


def outcome_message(
    status: str, jobs: Sequence[Mapping[str, Any]], errors: Iterable[str] = ()
) -> str:
    """One line for the summary: which jobs failed and why."""
    problems = [str(e) for e in errors]
    for job in jobs:
        if job.get("status") not in (SUCCEEDED, "skipped"):
            where = f"{job.get('namespace', '?')}/{job.get('job', job.get('name', '?'))}"
            reason = job.get("reason") or job.get("status")
            exit_code = job.get("exitCode")
            detail = f"{where} {reason}" + (f" (exit {exit_code})" if exit_code else "")
            problems.append(detail)
    if not problems:
        return f"{len(jobs)} job(s) {status}" if jobs else status
    return "; ".join(problems)


def local_outcome(result: OperationResult, *, timed: bool = True) -> RunOutcome:
    """The outcome of a run of the local engine (``timed``: with its start and end)."""
    jobs = tuple(job.to_json() for job in result.jobs)
    return RunOutcome(
        status=result.status,
        message=outcome_message(result.status, jobs, result.errors),
        jobs=jobs,
        workflow=result.workflow,
        started_at=result.started_at if timed else None,
        finished_at=result.finished_at if timed else None,
    )
