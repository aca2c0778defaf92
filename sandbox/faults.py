"""Fault injection: the failures production throws at clients, on demand.

Knobs (each also reachable over HTTP at ``/_sandbox/faults``, so a client running in another
process — the bridge subprocess, a soak test — can be driven the same way):

* ``fail_next(n, status=429, retry_after=1, method=None, path=None)``: the next ``n`` matching
  requests fail with a Status body (429 TooManyRequests, 500 InternalError, 503
  ServiceUnavailable...) and a ``Retry-After`` header; ``path`` is a regex searched in the path.
* ``latency(seconds, method=None, path=None)``: matching requests wait first.
* ``cut_streams(after_bytes=None, after_seconds=None, kind="log"|"watch", times=None)``: streams
  of that kind (also ones already open) are dropped without a terminating chunk, as a broken
  connection looks; ``times`` bounds how many streams are cut (None: until cleared).
* ``unavailable(seconds)``: every request gets 503 and open streams are dropped for a while.
* ``evict_pod(ns, name)``: node-pressure eviction: processes killed, pod Failed with reason
  ``Evicted`` and condition DisruptionTarget (TerminationByKubelet).
* ``kill_pod(ns, name)``: the pod's node died: processes killed, containers terminated with exit
  code 137 and reason ``ContainerStatusUnknown``, pod Failed with condition DisruptionTarget
  (DeletionByPodGC), as the control plane reports pods of a lost node.
* ``compact()``: forget the watch history and list snapshots: old resourceVersions and continue
  tokens get 410 Expired.
* ``clear()``: remove every rule.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .status import ApiError

ADMIN_PREFIX = "/_sandbox/"


@dataclass
class _Fail:
    remaining: int
    status: int
    retry_after: float | None
    method: str | None
    path: re.Pattern[str] | None


@dataclass
class _Latency:
    seconds: float
    method: str | None
    path: re.Pattern[str] | None


@dataclass
class _Cut:
    kind: str
    after_bytes: int | None
    after_seconds: float | None
    remaining: int | None
    since: float = field(default_factory=time.monotonic)


def _matches(
    method: str | None, path: re.Pattern[str] | None, req_method: str, req_path: str
) -> bool:
    if method is not None and method.upper() != req_method.upper():
        return False
    return path is None or path.search(req_path) is not None


class StreamState:
    """What a stream reports each time it is about to write (or idles)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.started = time.monotonic()
        self.sent = 0


class Faults:
    def __init__(
        self,
        *,
        on_evict: Callable[[str, str], None] | None = None,
        on_kill: Callable[[str, str], None] | None = None,
        on_compact: Callable[[], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._fails: list[_Fail] = []
        self._latencies: list[_Latency] = []
        self._cuts: list[_Cut] = []
        self._unavailable_until = 0.0
        self._on_evict = on_evict
        self._on_kill = on_kill
        self._on_compact = on_compact

    # knobs -----------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 429,
        retry_after: float | None = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        with self._lock:
            self._fails.append(
                _Fail(n, status, retry_after, method, re.compile(path) if path else None)
            )

    def latency(self, seconds: float, method: str | None = None, path: str | None = None) -> None:
        with self._lock:
            self._latencies.append(_Latency(seconds, method, re.compile(path) if path else None))

    def cut_streams(
        self,
        after_bytes: int | None = None,
        after_seconds: float | None = None,
        kind: str = "log",
        times: int | None = None,
    ) -> None:
        if kind not in ("log", "watch"):
            raise ValueError('kind must be "log" or "watch"')
        with self._lock:
            self._cuts.append(_Cut(kind, after_bytes, after_seconds, times))

    def unavailable(self, seconds: float) -> None:
        with self._lock:
            self._unavailable_until = time.monotonic() + seconds

    def evict_pod(self, namespace: str, name: str) -> None:
        if self._on_evict is not None:
            self._on_evict(namespace, name)

    def kill_pod(self, namespace: str, name: str) -> None:
        if self._on_kill is not None:
            self._on_kill(namespace, name)

    def compact(self) -> None:
        if self._on_compact is not None:
            self._on_compact()

    def clear(self) -> None:
        with self._lock:
            self._fails.clear()
            self._latencies.clear()
            self._cuts.clear()
            self._unavailable_until = 0.0

    # the server's side -----------------------------------------------------------------------

    def is_unavailable(self) -> bool:
        return time.monotonic() < self._unavailable_until

    def before_request(self, method: str, path: str) -> None:
        """Sleep for matching latency rules, then raise the fault this request gets, if any."""
        if path.startswith(ADMIN_PREFIX):
            return
        with self._lock:
            delay = sum(
                r.seconds for r in self._latencies if _matches(r.method, r.path, method, path)
            )
        if delay > 0:
            time.sleep(delay)
        if self.is_unavailable():
            remaining = max(1, int(self._unavailable_until - time.monotonic() + 0.999))
            raise ApiError(
                503,
                "the sandbox API server is unavailable (fault injection)",
                reason="ServiceUnavailable",
                headers={"Retry-After": str(remaining)},
                details={"retryAfterSeconds": remaining},
            )
        with self._lock:
            for rule in self._fails:
                if rule.remaining > 0 and _matches(rule.method, rule.path, method, path):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._fails.remove(rule)
                    break
            else:
                return
        headers: dict[str, str] = {}
        details: dict[str, Any] = {}
        if rule.retry_after is not None:
            seconds = max(0, int(rule.retry_after + 0.999))
            headers["Retry-After"] = str(seconds)
            details["retryAfterSeconds"] = seconds
        messages = {
            429: "the server has received too many requests and has asked us to try again later",
            500: 'an error on the server ("injected by the sandbox") has prevented the request '
            "from succeeding",
            503: "the server is currently unable to handle the request",
        }
        raise ApiError(
            rule.status,
            messages.get(rule.status, f"injected fault {rule.status}"),
            headers=headers,
            details=details or None,
        )

    def cut_point(self, stream: StreamState, size: int) -> int | None:
        """How many of the next ``size`` bytes to send before dropping the stream.

        None: send them all and carry on. A byte budget cuts mid-write, so the client gets a
        partial line, as it would from a connection that broke.
        """
        if self.is_unavailable():
            return 0
        now = time.monotonic()
        with self._lock:
            for rule in self._cuts:
                if rule.kind != stream.kind or rule.remaining == 0:
                    continue
                start = max(stream.started, rule.since)
                point: int | None = None
                if rule.after_seconds is not None and now - start >= rule.after_seconds:
                    point = 0
                elif rule.after_bytes is not None and stream.sent + size > rule.after_bytes:
                    point = max(0, rule.after_bytes - stream.sent)
                if point is not None:
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return point
        return None

    def should_cut(self, stream: StreamState) -> bool:
        """Whether an idle stream is to be dropped now (time-based cuts, unavailability)."""
        if self.is_unavailable():
            return True
        now = time.monotonic()
        with self._lock:
            for rule in self._cuts:
                if rule.kind != stream.kind or rule.remaining == 0:
                    continue
                start = max(stream.started, rule.since)
                hit = rule.after_seconds is not None and now - start >= rule.after_seconds
                if hit:
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return True
        return False

    # the admin endpoint ----------------------------------------------------------------------

    def apply_json(self, body: dict[str, Any]) -> None:
        """``{"action": "fail_next", "n": 2, "status": 503}`` and the like."""
        action = body.get("action")
        params = {k: v for k, v in body.items() if k != "action"}
        knobs: dict[str, Callable[..., None]] = {
            "fail_next": self.fail_next,
            "latency": self.latency,
            "cut_streams": self.cut_streams,
            "unavailable": self.unavailable,
            "evict_pod": self.evict_pod,
            "kill_pod": self.kill_pod,
            "compact": self.compact,
            "clear": self.clear,
        }
        knob = knobs.get(str(action))
        if knob is None:
            raise ApiError(
                400, f"unknown fault action {action!r}; one of {', '.join(sorted(knobs))}"
            )
        try:
            knob(**params)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, f"bad parameters for fault {action}: {exc}") from exc
