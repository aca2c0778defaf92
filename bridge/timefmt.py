"""How the product spells time: RFC 3339 timestamps and human durations.

One implementation of each for every room above the bridge (the bridge's result JSON, the
local engine's result, the request and result events, ``tenantctl`` flags, the sweeper's
``--older-than``), so a timestamp or a duration reads the same wherever an operator meets it.
The sandbox keeps its own clock on purpose: a stand-in for Kubernetes must not share code with
the client it tests (docs/architecture.md, rule 3).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

from bridge.errors import UsageError

# "seconds": Kubernetes' metav1.Time (the bridge's result JSON); "microseconds": always six
# digits (the local engine's results, which order jobs finishing within one second); "auto":
# seconds unless the moment has microseconds (the events: a request's own time, as it was given).
Precision = Literal["seconds", "microseconds", "auto"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime | None = None, *, precision: Precision = "seconds") -> str:
    """``2026-11-22T10:00:00Z`` for ``moment`` (default: now) in UTC."""
    moment = (moment or utc_now()).astimezone(UTC)
    if precision == "microseconds" or (precision == "auto" and moment.microsecond):
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")
_HINT = "write a whole number and a unit s, m, h, d or w, e.g. 30m, 12h, 7d or 1h30m"


def parse_duration(
    text: str,
    *,
    what: str = "duration",
    bare_seconds: bool = False,
    allow_zero: bool = False,
) -> timedelta:
    """``30s``, ``30m``, ``12h``, ``7d``, ``2w``, ``1h30m`` as a :class:`timedelta`.

    ``what`` names the flag in the error message (``--since``), so the user sees which one is
    wrong. ``bare_seconds`` accepts a plain number as seconds (the sweeper's ``--older-than
    90``); elsewhere a number without a unit is refused rather than guessed. ``allow_zero``
    accepts ``0s`` (a sweep of everything finished). Raises :class:`UsageError` otherwise.
    """
    spelled = text.strip().lower()
    if not spelled:
        raise UsageError(f"{what}: empty duration", hint=_HINT)
    if spelled.isdigit():
        if not bare_seconds:
            raise UsageError(f"{what}: {text!r} has no unit", hint=_HINT)
        spelled += "s"
    position = 0
    seconds = 0
    for match in _PART.finditer(spelled):
        if match.start() != position:
            break
        seconds += int(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(spelled):
        raise UsageError(f"{what}: {text!r} is not a duration", hint=_HINT)
    if seconds <= 0 and not allow_zero:
        raise UsageError(f"{what}: {text!r} must be longer than zero", hint=_HINT)
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration` for display: ``1d2h``, ``45s``."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
