"""Following one pod by watching (never polling), in a way SIGTERM can interrupt.

:func:`pod_updates` yields the pod's latest state from a list, then from a watch resumed across
drops, 410s and timeouts, and once more at the end of every watch window so the caller can
check its clocks (stuck grace, deadline). :class:`Cancellation` is the flag a signal handler
sets; it interrupts the watch being read at that moment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from bridge.errors import GoneError, UnavailableError
from bridge.kube import PODS, Kube

log = logging.getLogger(__name__)

JSON = dict[str, Any]


class Interruptible(Protocol):
    def interrupt(self) -> None: ...


class Cancellation:
    """SIGTERM/SIGINT as a flag, plus the open streams a cancel must interrupt.

    :meth:`cancel` runs in a signal handler: it takes no lock and does no output (the
    interrupted thread may hold either). A stream is registered *before* the flag is checked
    (:meth:`registered`), so a cancel that lands while a stream is opening is never lost.
    """

    def __init__(self) -> None:
        self.requested = False
        self._streams: list[Interruptible] = []
        self._lock = threading.Lock()  # between reading threads only; never in cancel()

    def cancel(self) -> None:
        self.requested = True
        for stream in tuple(self._streams):  # a tuple copy is atomic under the GIL
            stream.interrupt()

    def register(self, stream: Interruptible, *, honour: bool = True) -> None:
        with self._lock:
            self._streams.append(stream)
        if honour and self.requested:
            stream.interrupt()

    def unregister(self, stream: Interruptible) -> None:
        with self._lock:
            self._streams.remove(stream)

    def sleep(self, seconds: float) -> None:
        """A short sleep that a cancel cuts short."""
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def pod_updates(
    kube: Kube,
    namespace: str,
    name: str,
    *,
    until: Callable[[], float],
    clock: Callable[[], float],
    cancellation: Cancellation,
    ignore_cancel: bool = False,
    retry_delay: float = 0.5,
) -> Iterator[JSON | None]:
    """The pod's latest state (None once deleted), for as long as the caller iterates.

    Yields after the first list, on every watch event, and at the end of every watch window
    (at ``until()`` at the latest, or when a cancel interrupts the stream). With
    ``ignore_cancel`` (deleting a pod after a cancel, waiting for it to go) a cancel neither
    ends windows early nor is reported.
    """
    selector = f"metadata.name={name}"
    version: str | None = None
    latest: JSON | None = None
    while True:
        if version is None:
            items, version = kube.list_with_version(
                PODS, namespace=namespace, field_selector=selector
            )
            latest = items[0] if items else None
            yield latest
        if cancellation.requested and not ignore_cancel:
            yield latest
        wait = max(1, int(until() - clock() + 0.999))
        opened = time.monotonic()
        try:
            stream = kube.watch(
                PODS,
                namespace=namespace,
                field_selector=selector,
                resource_version=version or None,
                timeout_seconds=wait,
            )
        except GoneError:
            version = None
            continue
        # The server ends the window at timeoutSeconds; the timer makes sure of it.
        timer = threading.Timer(wait, stream.interrupt)
        timer.daemon = True
        timer.start()
        cancellation.register(stream, honour=not ignore_cancel)
        events = 0
        try:
            for kind, obj in stream:
                events += 1
                latest = None if kind == "DELETED" else obj
                yield latest
            version = stream.resource_version or version
        except GoneError:
            version = None
        except UnavailableError as exc:
            log.info("watch of pod %s/%s broke: %s; resuming", namespace, name, exc)
            version = None
        finally:
            timer.cancel()
            stream.close()
            cancellation.unregister(stream)
        if not events and time.monotonic() - opened < 0.1:
            cancellation.sleep(retry_delay)  # never spin on a server that closes at once
        yield latest
