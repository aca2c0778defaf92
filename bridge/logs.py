"""Following a container's log across dropped streams: no lost and no duplicated line.

Every line is asked for with its timestamp. When a follow stream drops we reconnect with
``sinceTime`` = the last printed line's timestamp (full precision) and skip what we already
printed: lines older than the last timestamp, and the first ``n`` lines carrying exactly the last
timestamp (``n`` = how many of those we printed -- several lines can share one timestamp). That
works whether the server honours sub-second ``sinceTime`` or truncates it to the second (a real
API server does when it proxies the request to the kubelet), as long as ``sinceTime`` is
inclusive, which it is in Kubernetes.

A line without its newline at the end of a follow stream is a stream cut mid-line: it is not
printed and comes back whole after the reconnect. After the container terminates we read once
more without ``follow``, which catches whatever the last follow stream missed; that read is
retried if it breaks, and a last line without newline is printed only when two reads in a row
end with it (a container's genuine last words, not a cut).
"""

from __future__ import annotations

import calendar
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.attempts import container_started, container_terminated
from bridge.errors import APIError, ForbiddenError, NotFoundError

log = logging.getLogger(__name__)

# Final reads in a row that may break or make no progress before we give up.
_FINAL_READ_ATTEMPTS = 3

_TS_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC3339(Nano) timestamp, or None when it is not one."""
    match = _TS_RE.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = (match.group(7) or "").ljust(9, "0")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    zone = match.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + int(fraction)


def since_time(nanos: int) -> str:
    """``sinceTime`` for a reconnect: RFC3339 with nanoseconds, in UTC."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def split_line(line: str) -> tuple[int | None, str]:
    """(timestamp nanos or None, text) of a ``timestamps=true`` log line."""
    stamp, sep, text = line.partition(" ")
    nanos = parse_timestamp(stamp)
    if nanos is None:
        return None, line
    return nanos, text if sep else ""


@dataclass
class Dedupe:
    """Which lines were printed already: the last timestamp and how many lines carried it."""

    last: int | None = None
    at_last: int = 0
    _seen_in_stream: int = 0  # lines at ``last`` seen in the current stream

    def new_stream(self) -> None:
        self._seen_in_stream = 0

    def is_new(self, nanos: int | None) -> bool:
        """Whether the line with this timestamp is new; records it when it is."""
        if nanos is None:  # no timestamp (should not happen with timestamps=true): print it
            return True
        if self.last is not None and nanos < self.last:
            return False
        if self.last is not None and nanos == self.last:
            self._seen_in_stream += 1
            if self._seen_in_stream <= self.at_last:
                return False
            self.at_last += 1
            return True
        self.last = nanos
        self.at_last = 1
        self._seen_in_stream = 1
        return True


class LogSource(Protocol):
    """What the follower needs from the adapter (``bridge.kube.Kube`` satisfies it)."""

    def stream_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str,
        since_time: str | None = None,
        timestamps: bool = True,
        follow: bool = True,
        keep_ends: bool = False,
    ) -> Iterator[str]: ...


class ContainerLog:
    """Follows one container's log to ``emit``, reconnecting until told the container ended.

    ``terminated()`` says whether the container (or its pod) has finished; the runner's watch
    keeps it current. ``stop()`` (another thread) interrupts a blocked follow; the follower then
    does its final read and returns.
    """

    def __init__(
        self,
        source: LogSource,
        *,
        namespace: str,
        pod: str,
        container: str,
        emit: Callable[[str], None],
        terminated: Callable[[], bool],
        gone: Callable[[], bool] = lambda: False,
        reconnect_delay: float = 0.5,
    ) -> None:
        self._source = source
        self._gone = gone
        self._namespace = namespace
        self._pod = pod
        self._container = container
        self._emit = emit
        self._terminated = terminated
        self._reconnect_delay = reconnect_delay
        self._dedupe = Dedupe()
        self._stopping = threading.Event()
        self._poked = threading.Event()
        self._lock = threading.Lock()
        self._stream: Iterator[str] | None = None
        self.lines = 0
        self.reconnects = 0

    def poke(self) -> None:
        """The pod changed: re-check ``terminated()`` now instead of after the reconnect delay
        (a follow stream usually ends a moment before the watch says the container ended)."""
        self._poked.set()

    def stop(self) -> None:
        """Stop following (the pod ended or is gone); the final read still happens."""
        self._stopping.set()
        self._poked.set()
        with self._lock:
            stream = self._stream
        interrupt = getattr(stream, "interrupt", None)
        if interrupt is not None:
            interrupt()  # the reading thread closes it

    def run(self) -> None:
        """Follow, reconnect, then read once more after termination."""
        while not self._stopping.is_set() and not self._terminated():
            try:
                self._read(follow=True)
            except NotFoundError as exc:
                # A 404 is not proof that the pod is gone: a node can answer it for a container
                # it has only just started (seen on a real node: the first log request after the
                # watch said Running). Only the watch says gone; until then, reconnect.
                if self._gone():
                    return
                log.info("log of %s/%s: %s; reconnecting", self._pod, self._container, exc)
            except ForbiddenError as exc:
                self._forbidden(exc)
                return
            except APIError as exc:
                log.info("log of %s/%s: %s; reconnecting", self._pod, self._container, exc)
            if self._terminated() or self._stopping.is_set():
                break
            self.reconnects += 1
            self._poked.wait(self._reconnect_delay)
            self._poked.clear()
        self._final_read()

    def _final_read(self) -> None:
        confirm: str | None = None
        idle = 0
        while idle < _FINAL_READ_ATTEMPTS:
            before = self.lines
            try:
                partial = self._read(follow=False)
            except NotFoundError as exc:
                if self._gone():
                    return  # the pod is gone: nothing more to read
                log.info("final log read of %s/%s: %s", self._pod, self._container, exc)
                idle += 1
                time.sleep(self._reconnect_delay)
                continue
            except ForbiddenError as exc:
                self._forbidden(exc)
                return
            except APIError as exc:
                log.info("final log read of %s/%s: %s", self._pod, self._container, exc)
                idle += 1
                time.sleep(self._reconnect_delay)
                continue
            if partial is None:
                return
            if partial == confirm and self.lines == before:
                # Two reads in a row ended with it and nothing new came: genuine last words.
                nanos, text = split_line(partial)
                if self._dedupe.is_new(nanos):
                    self.lines += 1
                    self._emit(text)
                return
            confirm = partial
            if self.lines == before:
                idle += 1

    def _forbidden(self, exc: ForbiddenError) -> None:
        # A permission problem does not fix itself: say so once, never reconnect in a storm
        # (the adapter already retried once, for a rotated token). The job runs on regardless.
        log.warning("cannot read the log of %s/%s: %s", self._pod, self._container, exc)

    def _read(self, *, follow: bool) -> str | None:
        """One stream: print its new complete lines; return a trailing partial line, if any."""
        since = None if self._dedupe.last is None else since_time(self._dedupe.last)
        stream = self._source.stream_log(
            self._namespace,
            self._pod,
            container=self._container,
            since_time=since,
            timestamps=True,
            follow=follow,
            keep_ends=True,
        )
        with self._lock:
            self._stream = stream
        if follow and self._stopping.is_set():
            # stop() came while the stream was opening and found nothing to interrupt.
            interrupt = getattr(stream, "interrupt", None)
            if interrupt is not None:
                interrupt()
        self._dedupe.new_stream()
        try:
            for raw in stream:
                if not raw.endswith("\n"):
                    return raw  # only ever the last item
                nanos, text = split_line(raw[:-1])
                if self._dedupe.is_new(nanos):
                    self.lines += 1
                    self._emit(text)
        finally:
            with self._lock:
                self._stream = None
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return None


class PodLogs:
    """The logs of one pod: a follower thread per container, started once the container has
    started, all writing whole lines to ``emit`` (prefixed ``[container]`` when the pod has
    more than one). Init containers run first, so their lines come first.

    Feed it every pod state (:meth:`update`; None once the pod is gone) and :meth:`drain` it
    when the pod has ended.
    """

    def __init__(
        self,
        source: LogSource,
        pod: Mapping[str, Any],
        *,
        emit: Callable[[str], None],
        reconnect_delay: float = 0.5,
    ) -> None:
        self._source = source
        self._emit = emit
        self._reconnect_delay = reconnect_delay
        meta = pod.get("metadata") or {}
        self._namespace = str(meta.get("namespace"))
        self._name = str(meta.get("name"))
        spec = pod.get("spec") or {}
        self._containers = [
            str(c["name"])
            for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or [])
        ]
        self._prefix = len(self._containers) > 1
        self._pod: Mapping[str, Any] = pod
        self._gone = False
        self._followers: dict[str, tuple[ContainerLog, threading.Thread]] = {}

    def update(self, pod: Mapping[str, Any] | None) -> None:
        if pod is None:
            self._gone = True
        else:
            self._pod = pod
            for container in self._containers:
                if container not in self._followers and container_started(pod, container):
                    self._start(container)
        for container, (follower, _) in self._followers.items():
            if self._gone or container_terminated(self._pod, container):
                # The watch says it ended: stop following now and do the final read, instead of
                # waiting for the follow stream to notice (a kubelet's log reader checks a
                # finished container once a second). The final read catches every line.
                follower.stop()
            else:
                follower.poke()

    def _start(self, container: str) -> None:
        def terminated() -> bool:
            return self._gone or container_terminated(self._pod, container)

        prefix = f"[{container}] " if self._prefix else ""
        follower = ContainerLog(
            self._source,
            namespace=self._namespace,
            pod=self._name,
            container=container,
            emit=lambda text: self._emit(prefix + text),
            terminated=terminated,
            gone=lambda: self._gone,
            reconnect_delay=self._reconnect_delay,
        )
        thread = threading.Thread(
            target=follower.run, name=f"log-{self._name}-{container}", daemon=True
        )
        self._followers[container] = (follower, thread)
        thread.start()

    def drain(self, timeout: float) -> None:
        """Wait for every follower's final read; interrupt the ones still blocked after timeout."""
        deadline = time.monotonic() + timeout
        for follower, thread in self._followers.values():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                follower.stop()
        for _, thread in self._followers.values():
            thread.join(timeout)
