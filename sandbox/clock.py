"""Timestamps in the formats the API uses."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def rfc3339(ts: float | None = None) -> str:
    """Second precision, as metav1.Time serializes."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(ns: int) -> str:
    """Nanosecond precision with a fixed width, as the kubelet prints log timestamps."""
    seconds, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def parse_rfc3339_ns(text: str) -> int:
    """RFC 3339 (any fractional precision, ``Z`` or an offset) → nanoseconds since the epoch."""
    text = text.strip()
    frac_ns = 0
    main = text
    tz = ""
    if text.endswith(("Z", "z")):
        main, tz = text[:-1], "+00:00"
    else:
        for sign in ("+", "-"):
            idx = text.rfind(sign)
            if idx > 10:
                main, tz = text[:idx], text[idx:]
                break
    if "." in main:
        main, frac = main.split(".", 1)
        frac_ns = int((frac + "000000000")[:9])
    moment = datetime.fromisoformat(main + (tz or "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000 + frac_ns
