"""Container logs: lines timestamped when read from the process, served like the kubelet does.

Each run of a container (a restart is a new run) has a :class:`LogBuffer`. Timestamps are taken
the moment a line is read from the process's pipe and kept at nanosecond precision, so a client
that reconnects with ``sinceTime`` set to the last timestamp it saw gets no gaps. ``sinceTime``
is inclusive (the kubelet drops only lines strictly before it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass

from .clock import rfc3339_nano


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    timestamps: bool = False
    since_ns: int | None = None
    tail_lines: int | None = None
    limit_bytes: int | None = None


class LogBuffer:
    def __init__(self) -> None:
        self._lines: list[tuple[int, bytes]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._last_ns = 0

    def append(self, line: bytes) -> None:
        with self._cond:
            # Strictly increasing timestamps keep sinceTime-based resumption unambiguous.
            ts = max(time.time_ns(), self._last_ns + 1)
            self._last_ns = ts
            self._lines.append((ts, line))
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def text(self) -> str:
        with self._cond:
            return b"".join(line for _, line in self._lines).decode(errors="replace")

    def read(self, options: LogOptions, stop: threading.Event) -> Generator[bytes, None, None]:
        """The lines to send, following new ones until the run ends when ``follow`` is set.

        Yields ``b""`` on idle ticks so the caller can check faults and shutdown.
        """
        with self._cond:
            start = 0
            if options.since_ns is not None:
                start = next(
                    (i for i, (ts, _) in enumerate(self._lines) if ts >= options.since_ns),
                    len(self._lines),
                )
            if options.tail_lines is not None:
                start = max(start, len(self._lines) - max(options.tail_lines, 0))
        sent = 0
        index = start
        while True:
            with self._cond:
                batch = self._lines[index:]
                index = len(self._lines)
                if not batch:
                    if not options.follow or self._closed or stop.is_set():
                        return
                    self._cond.wait(0.25)
                    idle = True
                else:
                    idle = False
            if idle:
                yield b""
                continue
            for ts, line in batch:
                chunk = f"{rfc3339_nano(ts)} ".encode() + line if options.timestamps else line
                if options.limit_bytes is not None:
                    room = options.limit_bytes - sent
                    if room <= 0:
                        return
                    chunk = chunk[:room]
                sent += len(chunk)
                yield chunk
