"""The circuit breaker of one region: closed (calls go through) -> open after a failure (calls
fail fast for a backoff) -> half-open (one probe; success closes, failure reopens longer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# the circuit breaker of one region
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CircuitSettings:
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    multiplier: float = 2.0


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Circuit:
    """Closed (calls go through) -> open after a failure (calls fail fast for the backoff) ->
    half-open (one probe goes through; success closes, failure reopens with a longer backoff).
    Thread-safe; the clock is injectable for tests."""

    def __init__(
        self, settings: CircuitSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self.state = CLOSED
        self.failures = 0
        self._open_until = 0.0
        self._probing = False

    def admit(self) -> float | None:
        """``None``: go ahead (report :meth:`success`/:meth:`failure`/:meth:`release`);
        a number: refused, retry in that many seconds."""
        with self._lock:
            if self.state == CLOSED:
                return None
            now = self._clock()
            if now < self._open_until:
                return self._open_until - now
            if self._probing:  # someone is already probing: everybody else waits a little
                return min(self.settings.initial_backoff, self._backoff())
            self.state = HALF_OPEN
            self._probing = True
            return None

    def success(self) -> None:
        with self._lock:
            self.state = CLOSED
            self.failures = 0
            self._probing = False

    def failure(self, retry_after: float | None = None) -> float:
        """Open (again); returns the backoff chosen. A server's ``Retry-After`` lengthens it,
        never beyond ``max_backoff`` (a region must be probed again within that)."""
        with self._lock:
            self.failures += 1
            self._probing = False
            backoff = self._backoff()
            if retry_after:
                backoff = max(backoff, min(float(retry_after), self.settings.max_backoff))
            self.state = OPEN
            self._open_until = self._clock() + backoff
            return backoff

    def release(self) -> None:
        """The call ended without telling anything about reachability (e.g. a 409): a probe
        that got an answer proves the API is reachable."""
        with self._lock:
            if self._probing:
                self.state = CLOSED
                self.failures = 0
                self._probing = False

    def abandon(self) -> None:
        """The admitted call was not made (no slot) or ended in a bug: it proves nothing, so a
        probe it held goes to the next caller."""
        with self._lock:
            self._probing = False

    def retry_in(self) -> float:
        with self._lock:
            return max(0.0, self._open_until - self._clock()) if self.state == OPEN else 0.0

    def _backoff(self) -> float:
        s = self.settings
        exponent = max(0, self.failures - 1)
        return float(min(s.max_backoff, s.initial_backoff * s.multiplier**exponent))
