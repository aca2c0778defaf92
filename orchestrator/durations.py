"""Human durations for command-line flags: ``30s``, ``30m``, ``12h``, ``7d``, ``2w``, ``1h30m``.

One parser so every command (``history --since``, ``history purge --older-than``, ``fleet``)
accepts the same spelling and rejects a typo with the same clear message.
"""

from __future__ import annotations

import re
from datetime import timedelta

from bridge.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")
_HINT = "write a whole number and a unit s, m, h, d or w, e.g. 30m, 12h, 7d or 1h30m"


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """Parse ``text`` into a positive :class:`timedelta`.

    ``what`` names the flag in the error message (``--since``), so the user sees which one is
    wrong. Raises :class:`UsageError` for anything that is not a sequence of ``<int><unit>``.
    """
    spelled = text.strip().lower()
    if not spelled:
        raise UsageError(f"{what}: empty duration", hint=_HINT)
    position = 0
    seconds = 0
    for match in _PART.finditer(spelled):
        if match.start() != position:
            break
        seconds += int(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(spelled):
        if spelled.isdigit():
            raise UsageError(f"{what}: {text!r} has no unit", hint=_HINT)
        raise UsageError(f"{what}: {text!r} is not a duration", hint=_HINT)
    if seconds <= 0:
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
