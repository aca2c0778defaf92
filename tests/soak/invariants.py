"""The soak's invariants, checked by code over what the soak observed (pure functions).

Each check returns an :class:`InvariantResult` (``ok``, how many things it checked, and what
broke); :func:`check_all` runs every one. The same checks serve the full soak
(``python -m tests.soak``) and the bounded one in ``make test``.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

LINE = re.compile(
    r"^soak (?P<batch>\S+) (?P<job>\S+) attempt=(?P<attempt>\d+) line (?P<i>\d+)/(?P<n>\d+)$"
)
SUCCEEDED_TYPE = "dev.tenant-lifecycle.operation.succeeded"
FAILED_TYPE = "dev.tenant-lifecycle.operation.failed"


@dataclass(frozen=True)
class BridgeOutput:
    """One ``python -m bridge run`` process: its arguments and its stdout lines, in order."""

    key: str  # "<pid>-<start ns>": start order
    argv: tuple[str, ...]
    lines: tuple[str, ...]

    def arg(self, name: str) -> str | None:
        args = list(self.argv)
        return (
            args[args.index(name) + 1]
            if name in args and args.index(name) + 1 < len(args)
            else None
        )

    @property
    def started_ns(self) -> int:
        return int(self.key.rsplit("-", 1)[1])

    @property
    def run(self) -> tuple[str, str, str]:
        return (
            self.arg("--batch-operation-id") or "",
            self.arg("--namespace") or "",
            self.arg("--job") or "",
        )


@dataclass
class Observations:
    requests: dict[str, str]  # valid request id -> tenant
    malformed: set[str]  # soak ids of malformed messages
    results: list[dict[str, Any]]  # result CloudEvents, as received (duplicates included)
    dead_letters: list[dict[str, str]]  # attributes of dead-lettered messages
    records: list[dict[str, Any]]  # the job program's records
    outputs: list[BridgeOutput]
    killed_batches: set[str]  # batches one of whose bridges got SIGKILL
    leftovers: list[str]  # bridge pods/Secrets still there after the sweep
    job_lines: int = 10


@dataclass
class InvariantResult:
    name: str
    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "checked": self.checked,
            "problems": self.problems[:50],
            "problemCount": len(self.problems),
            "notes": self.notes,
        }


def _result(name: str, checked: int, problems: list[str], **notes: Any) -> InvariantResult:
    return InvariantResult(name, not problems, checked, problems, dict(notes))


def one_result_per_request(obs: Observations) -> InvariantResult:
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in obs.results:
        by_id[str(event.get("id"))].append(event)
    problems = []
    for rid in sorted(obs.requests):
        events = by_id.get(rid, [])
        if not events:
            problems.append(f"request {rid} got no result event")
            continue
        verdicts = {(e.get("type"), (e.get("data") or {}).get("status")) for e in events}
        if len(verdicts) > 1:
            problems.append(f"request {rid} got conflicting results: {sorted(map(str, verdicts))}")
    for rid in sorted(set(by_id) - set(obs.requests)):
        problems.append(f"a result for {rid}, which is not a valid request of this soak")
    duplicates = sum(len(v) - 1 for v in by_id.values() if len(v) > 1)
    return _result(
        "every request got exactly one result (by id)",
        len(obs.requests),
        problems,
        duplicateDeliveries=duplicates,
    )


def no_job_ran_twice_at_once(obs: Observations) -> InvariantResult:
    starts = [r for r in obs.records if r["event"] == "start"]
    problems = [
        f"batch {r['batch']} job {r['job']} attempt {r['attempt']} started while another process "
        "of the same batch and job held the run lock"
        for r in obs.records
        if r["event"] == "overlap-run"
    ]
    return _result("no job ran twice at the same time for one batch", len(starts), problems)


def _time(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def one_operation_per_tenant(obs: Observations) -> InvariantResult:
    problems: list[str] = []
    # (a) As the orchestrator ran them: the operations' own intervals.
    intervals: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    seen: set[str] = set()
    for event in obs.results:
        rid = str(event.get("id"))
        data = event.get("data") or {}
        if rid in seen or rid not in obs.requests:
            continue
        seen.add(rid)
        start, end = _time(data.get("startedAt")), _time(data.get("finishedAt"))
        if start is not None and end is not None:
            intervals[obs.requests[rid]].append((start, end, rid))
    for tenant, spans in intervals.items():
        spans.sort()
        for (_, end_a, a), (start_b, _, b) in itertools.pairwise(spans):
            if start_b < end_a:
                problems.append(f"tenant {tenant}: operations {a} and {b} overlap")
    # (b) As the jobs ran: a job started while a job of another batch of the tenant ran.
    for record in obs.records:
        if record["event"] != "overlap-tenant":
            continue
        killed = {record["batch"], record["other"]} & obs.killed_batches
        problems.append(
            f"tenant {record['tenant']}: a job of {record['batch']} started while a job of "
            f"{record['other']} was running"
            + (f" (a bridge of {', '.join(sorted(killed))} was killed)" if killed else "")
        )
    return _result(
        "one tenant never had two operations at once",
        sum(len(v) for v in intervals.values()),
        problems,
    )


def nothing_left_after_sweep(obs: Observations) -> InvariantResult:
    return _result(
        "no orphan pod or Secret remains after python -m bridge sweep",
        len(obs.leftovers),
        [f"left after sweep: {name}" for name in obs.leftovers],
    )


def _attempt_sequences(output: BridgeOutput) -> tuple[dict[int, list[int]], list[str]]:
    batch, _, job = output.run
    sequences: dict[int, list[int]] = defaultdict(list)
    problems = []
    for line in output.lines:
        if not line.startswith("soak "):
            continue
        match = LINE.match(line)
        if match is None:
            problems.append(f"bridge {output.key}: garbled line {line!r}")
            continue
        if (match["batch"], match["job"]) != (batch, job):
            problems.append(
                f"bridge {output.key} ({batch} {job}) printed another run's line {line!r}"
            )
            continue
        sequences[int(match["attempt"])].append(int(match["i"]))
    return sequences, problems


def logs_complete_and_in_order(obs: Observations) -> InvariantResult:
    problems: list[str] = []
    by_run: dict[tuple[str, str, str], list[BridgeOutput]] = defaultdict(list)
    for output in obs.outputs:
        by_run[output.run].append(output)
        sequences, garbled = _attempt_sequences(output)
        problems += garbled
        for attempt, numbers in sequences.items():
            # Every bridge's copy of an attempt's log is 1..k: no gap, no duplicate, no reorder.
            if numbers != list(range(1, len(numbers) + 1)):
                problems.append(
                    f"bridge {output.key} {output.run}: attempt {attempt} lines "
                    f"{_short(numbers)} are not 1..k in order"
                )
    checked = 0
    seen: set[str] = set()
    for event in obs.results:
        rid = str(event.get("id"))
        if rid in seen:
            continue
        seen.add(rid)
        for job in (event.get("data") or {}).get("jobs") or []:
            if job.get("status") != "succeeded":
                continue
            checked += 1
            run = (rid, str(job.get("namespace")), str(job.get("job")))
            outputs = sorted(by_run.get(run, []), key=lambda o: o.started_ns)
            attempts = [a for a in job.get("attempts") or [] if a.get("exitCode") == 0]
            if not outputs:
                problems.append(f"{run}: succeeded, but no bridge output was captured")
                continue
            if not attempts:
                problems.append(f"{run}: succeeded without a successful attempt in its result")
                continue
            wanted = int(attempts[-1]["attempt"])
            sequences, _ = _attempt_sequences(outputs[-1])
            if sequences.get(wanted) != list(range(1, obs.job_lines + 1)):
                problems.append(
                    f"{run}: the reporting bridge's log of attempt {wanted} is "
                    f"{_short(sequences.get(wanted, []))}, not 1..{obs.job_lines}"
                )
    return _result(
        "succeeded jobs' logs reached the bridge's output complete and in order",
        checked,
        problems,
        bridgeProcesses=len(obs.outputs),
    )


def _short(numbers: list[int]) -> str:
    return str(numbers) if len(numbers) <= 12 else f"{numbers[:6]}...{numbers[-3:]}"


def dead_letters_are_the_malformed(obs: Observations) -> InvariantResult:
    ids = [a.get("soak-id", "") for a in obs.dead_letters]
    counts = Counter(ids)
    problems = []
    for sid in sorted(obs.malformed - set(counts)):
        problems.append(f"malformed message {sid} was not dead-lettered")
    for sid in sorted(set(counts) - obs.malformed):
        problems.append(f"message {sid or '(no soak-id)'} was dead-lettered but is not malformed")
    for attributes in obs.dead_letters:
        if not attributes.get("reasonCode") or not attributes.get("reason"):
            problems.append(f"dead letter {attributes.get('soak-id')} has no reason")
    reasons = Counter(a.get("reasonCode", "") for a in obs.dead_letters)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    return _result(
        "dead-lettered messages are exactly the malformed ones",
        len(obs.malformed),
        problems,
        reasonCodes=dict(reasons),
        duplicateDeliveries=duplicates,
    )


CHECKS = (
    one_result_per_request,
    no_job_ran_twice_at_once,
    one_operation_per_tenant,
    nothing_left_after_sweep,
    logs_complete_and_in_order,
    dead_letters_are_the_malformed,
)


def check_all(obs: Observations) -> list[InvariantResult]:
    return [check(obs) for check in CHECKS]


def outcome_counts(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Operations by final status (first result per id) and jobs by status."""
    seen: set[str] = set()
    operations: Counter[str] = Counter()
    jobs: Counter[str] = Counter()
    for event in results:
        rid = str(event.get("id"))
        if rid in seen:
            continue
        seen.add(rid)
        data = event.get("data") or {}
        operations["cancelled" if data.get("cancelled") else str(data.get("status"))] += 1
        for job in data.get("jobs") or []:
            jobs[str(job.get("status"))] += 1
    return {
        **{f"operations.{k}": v for k, v in operations.items()},
        **{f"jobs.{k}": v for k, v in jobs.items()},
    }
