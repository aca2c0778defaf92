"""What a pod's status means for the Job: finished or not, exit code, reason, and whether the
attempt counts against ``backoffLimit`` (``podFailurePolicy``), or whether the pod is stuck.

Pure functions over pod dicts, so the Job semantics are unit-tested without an API server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from bridge.contract import PodFailureRule
from bridge.timefmt import rfc3339

# Waiting reasons no amount of waiting fixes on its own (or only an operator does).
STUCK_WAITING_REASONS: Final = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "CreateContainerConfigError",
        "InvalidImageName",
        "CreateContainerError",
    }
)


class Verdict(StrEnum):
    """What to do after a failed attempt."""

    COUNT = "Count"  # counts against backoffLimit; retry while attempts remain
    IGNORE = "Ignore"  # does not count; retry
    FAIL_JOB = "FailJob"  # stop now


@dataclass(frozen=True)
class Outcome:
    """How one terminated pod ended."""

    succeeded: bool
    exit_code: int | None  # None when no container reported one (evicted, deleted)
    reason: str  # Completed, Error, OOMKilled, Evicted, DeadlineExceeded, ...
    container: str | None  # the failing container
    message: str = ""


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )


def is_finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def container_started(pod: Mapping[str, Any], container: str) -> bool:
    """Whether ``container`` has run (running now or terminated): its log can be read."""
    for status in _statuses(pod):
        if status.get("name") == container:
            state = status.get("state") or {}
            return "running" in state or "terminated" in state
    return False


def container_terminated(pod: Mapping[str, Any], container: str) -> bool:
    if is_finished(pod):
        return True
    for status in _statuses(pod):
        if status.get("name") == container:
            return "terminated" in (status.get("state") or {})
    return False


def outcome(pod: Mapping[str, Any]) -> Outcome:
    """The outcome of a finished pod; the first failing container, init containers first."""
    status = pod.get("status") or {}
    if status.get("phase") == "Succeeded":
        return Outcome(True, 0, "Completed", None)
    for container in _statuses(pod):
        terminated = (container.get("state") or {}).get("terminated") or {}
        code = terminated.get("exitCode")
        if isinstance(code, int) and code != 0:
            return Outcome(
                False,
                code,
                str(status.get("reason") or terminated.get("reason") or "Error"),
                str(container.get("name")),
                str(terminated.get("message") or status.get("message") or ""),
            )
    return Outcome(
        False,
        None,
        str(status.get("reason") or "Failed"),
        None,
        str(status.get("message") or ""),
    )


def verdict(
    pod: Mapping[str, Any], rules: Sequence[PodFailureRule]
) -> tuple[Verdict, PodFailureRule | None]:
    """Apply ``podFailurePolicy``: the first rule that matches decides; no match counts."""
    status = pod.get("status") or {}
    conditions = list(status.get("conditions") or [])
    exits = []
    for container in _statuses(pod):
        terminated = (container.get("state") or {}).get("terminated") or {}
        code = terminated.get("exitCode")
        if isinstance(code, int):
            exits.append((str(container.get("name")), code))
    for rule in rules:
        if rule.operator is not None:
            matched = any(rule.matches_exit(name, code) for name, code in exits)
        else:
            matched = bool(rule.on_pod_conditions) and all(
                _condition_matches(pattern, conditions) for pattern in rule.on_pod_conditions
            )
        if matched:
            action = {"Ignore": Verdict.IGNORE, "Count": Verdict.COUNT}.get(
                rule.action,
                Verdict.FAIL_JOB,  # FailJob, and FailIndex for a non-indexed Job
            )
            return action, rule
    return Verdict.COUNT, None


def _condition_matches(pattern: Mapping[str, Any], conditions: Sequence[Mapping[str, Any]]) -> bool:
    wanted_status = str(pattern.get("status") or "True")
    return any(
        c.get("type") == pattern.get("type") and str(c.get("status")) == wanted_status
        for c in conditions
    )


def stuck_reason(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) when the pod is stuck in a state that will not fix itself, else None."""
    status = pod.get("status") or {}
    if is_finished(pod):
        return None
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and str(condition.get("status")) == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return "Unschedulable", str(condition.get("message") or "")
    for container in _statuses(pod):
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in STUCK_WAITING_REASONS:
            name = container.get("name")
            return str(reason), f"container {name}: {waiting.get('message') or reason}"
    return None


def attempt_number(pod: Mapping[str, Any], label: str) -> int:
    value = ((pod.get("metadata") or {}).get("labels") or {}).get(label, "")
    return int(value) if str(value).isdigit() else 0


# -- times ---------------------------------------------------------------------------------------


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def created_at(pod: Mapping[str, Any]) -> float | None:
    """The pod's creationTimestamp as epoch seconds (where a Job's deadline starts)."""
    return _parse_time((pod.get("metadata") or {}).get("creationTimestamp"))


def started_at(pod: Mapping[str, Any]) -> str | None:
    status = pod.get("status") or {}
    value = status.get("startTime") or (pod.get("metadata") or {}).get("creationTimestamp")
    return str(value) if value else None


def finished_at(pod: Mapping[str, Any]) -> str:
    """When the last container ended (now, if none says so)."""
    times = [
        str(((c.get("state") or {}).get("terminated") or {}).get("finishedAt") or "")
        for c in _statuses(pod)
    ]
    times = [t for t in times if t]
    return max(times) if times else rfc3339()
