"""Ctrl-C and SIGTERM in a long-running command: cancel cleanly instead of raising.

``tenantctl run`` and ``tenantctl fleet`` end what they started (the bridges delete their pods,
the result says cancelled) rather than dying with a KeyboardInterrupt traceback.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def cancel_on_signals(
    cancel: threading.Event, *, on_repeat: Callable[[], None] | None = None
) -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set ``cancel`` instead of raising, for the duration of the block.

    The engine then terminates the bridges (each deletes its pod) and returns a cancelled
    result; a second signal only reminds the user that the pods are being deleted.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        if cancel.is_set():
            if on_repeat is not None:
                on_repeat()
            return
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield cancel
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
