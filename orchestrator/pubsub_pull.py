"""A subscription that pulls with unary ``Pull`` calls instead of a StreamingPull stream.

Why it exists: the Pub/Sub emulator does not notice that a StreamingPull stream's client has
gone (a consumer restarted, crashed or scaled down). It keeps routing new and redelivered
messages to the dead stream, each of which then waits out the stream's ack deadline before it
is tried again -- possibly on another dead stream. Measured on this project's emulator: after
three consumer restarts, a minute later, 20 messages published to one live consumer took
0-40 s each instead of milliseconds (docs/reliability.md, finding 3). With unary ``Pull`` the
server hands messages only to a call that is waiting for them, so a consumer that is gone
receives nothing, and the few messages it held come back after their ack deadline (at once
when it stopped cleanly: they are nacked). Networks that cut long-lived HTTP/2 streams are the
other reason to choose it (``tenantctl listen --pull unary``).

What it keeps from the streaming subscription (:mod:`orchestrator.pubsub`):

- flow control: it pulls only as many messages as it has free handler threads, so a replica
  never hoards messages another replica could start now;
- leases: a message is leased for ``lease_seconds`` when it arrives and the lease is extended
  while its handler runs, so a slow handler never sees its message redelivered elsewhere;
- ack after the handler returned, nack (deadline 0) otherwise; on stop, pulling ends, running
  handlers finish (up to the timeout) and messages not yet started are nacked;
- transient errors (unavailable, deadline, throttled) are retried with a capped backoff; an
  error that will not go away (no such subscription, permission denied) ends the subscription
  and :meth:`wait` raises :class:`~orchestrator.bus.BusError`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

from google.api_core import exceptions as gexc

from orchestrator.bus import BusError, Disposition, Message

log = logging.getLogger(__name__)

# How long one Pull call may wait for messages. It bounds how long stop() waits for the pulling
# thread and how soon a nacked message is offered again (a call already waiting does not get
# it). The emulator answers an empty pull about a second before this deadline, so the call is
# never abandoned with a message on its way (that message would wait out its ack deadline).
PULL_TIMEOUT_SECONDS = 2.0
BACKOFF_START, BACKOFF_MAX = 0.2, 10.0
RETRYABLE = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.TooManyRequests,
    gexc.ResourceExhausted,
    gexc.Aborted,
    gexc.InternalServerError,
    gexc.Unknown,
    gexc.RetryError,
)

Dispatch = Callable[[Message], Disposition]
ErrorFactory = Callable[[str, BaseException], BusError]


class UnaryPullSubscription:
    """Pulls ``path`` with unary calls and runs ``dispatch`` on each message; see the module."""

    def __init__(
        self,
        client: Any,
        path: str,
        dispatch: Dispatch,
        *,
        max_messages: int,
        max_workers: int,
        lease_seconds: int,
        error: ErrorFactory,
    ) -> None:
        self.path = path
        self._client = client
        self._dispatch = dispatch
        self._error = error
        self._lease_seconds = lease_seconds
        # At most this many messages are held at once: one per handler thread.
        self._capacity = max(1, min(max_messages, max_workers))
        self._slots = threading.Semaphore(self._capacity)
        self._pool = futures.ThreadPoolExecutor(
            max_workers=self._capacity, thread_name_prefix="tenantctl-handler"
        )
        self._lock = threading.Lock()
        self._leased: set[str] = set()
        self._pending: set[futures.Future[None]] = set()
        self.stopping = threading.Event()
        self._ended = threading.Event()
        self._failure: BusError | None = None
        self._puller = threading.Thread(target=self._pull_loop, name="tenantctl-pull", daemon=True)
        self._leaser = threading.Thread(
            target=self._lease_loop, name="tenantctl-lease", daemon=True
        )

    def start(self) -> UnaryPullSubscription:
        self._puller.start()
        self._leaser.start()
        return self

    # -- the Subscription protocol --------------------------------------------------------------

    def stop(self, *, timeout: float | None = None) -> None:
        self.stopping.set()
        self._puller.join(timeout=PULL_TIMEOUT_SECONDS + 1)
        with self._lock:
            pending = set(self._pending)
        _, still_running = futures.wait(pending, timeout=timeout)
        if still_running:
            log.warning(
                "subscription %s: %d handler(s) still running after %ss",
                self.path,
                len(still_running),
                timeout,
            )
        self._pool.shutdown(wait=False, cancel_futures=False)
        self._ended.set()
        self._leaser.join(timeout=1.0)

    def wait(self, timeout: float) -> bool:
        ended = self._ended.wait(timeout)
        if self._failure is not None:
            raise self._failure
        return ended

    # -- pulling --------------------------------------------------------------------------------

    def _pull_loop(self) -> None:
        backoff = BACKOFF_START
        while not self.stopping.is_set():
            free = self._take_slots()
            if not free:
                continue
            if self.stopping.is_set():
                self._give_back(free)
                break
            try:
                response = self._client.pull(
                    request={"subscription": self.path, "max_messages": free},
                    timeout=PULL_TIMEOUT_SECONDS,
                    retry=None,
                )
            except gexc.DeadlineExceeded:
                self._give_back(free)  # nothing arrived in time: the normal idle case
                continue
            except RETRYABLE as exc:
                self._give_back(free)
                log.warning("pull from %s failed (%s); retrying in %.1fs", self.path, exc, backoff)
                self.stopping.wait(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)
                continue
            except gexc.GoogleAPICallError as exc:
                self._give_back(free)
                self._failure = self._error(f"pull from {self.path}", exc)
                log.error("%s", self._failure)
                self._ended.set()
                return
            backoff = BACKOFF_START
            received = list(response.received_messages)
            self._give_back(free - len(received))
            if received and self.stopping.is_set():
                # Arrived as stop() began: hand them back now rather than after their deadline.
                for item in received:
                    self._settle(item.ack_id, ack=False)
                self._give_back(len(received))
                break
            if received:
                self._lease([r.ack_id for r in received])
            for item in received:
                future = self._pool.submit(self._handle, item)
                with self._lock:
                    self._pending.add(future)
                future.add_done_callback(self._forget)

    def _take_slots(self) -> int:
        """Wait (briefly, so a stop is seen) for a free handler; take every free one."""
        if not self._slots.acquire(timeout=0.5):
            return 0
        taken = 1
        while taken < self._capacity and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _give_back(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    def _forget(self, future: futures.Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    # -- one message ----------------------------------------------------------------------------

    def _handle(self, item: Any) -> None:
        disposition = Disposition.NACK  # whatever goes wrong here, the message goes back
        try:
            message = Message(
                data=bytes(item.message.data),
                attributes=dict(item.message.attributes),
                message_id=str(item.message.message_id),
                # 0 without a dead-letter policy; the streaming client reports None then.
                delivery_attempt=item.delivery_attempt or None,
            )
            # Stopping: return the message unhandled, as the streaming subscription does.
            if not self.stopping.is_set():
                disposition = self._dispatch(message)
        finally:
            with self._lock:
                self._leased.discard(item.ack_id)  # settled now: no more extensions
            try:
                self._settle(item.ack_id, ack=disposition is Disposition.ACK)
            finally:
                self._slots.release()

    def _settle(self, ack_id: str, *, ack: bool) -> None:
        try:
            if ack:
                self._client.acknowledge(
                    request={"subscription": self.path, "ack_ids": [ack_id]}, retry=None
                )
            else:
                self._client.modify_ack_deadline(
                    request={
                        "subscription": self.path,
                        "ack_ids": [ack_id],
                        "ack_deadline_seconds": 0,
                    },
                    retry=None,
                )
        except gexc.GoogleAPICallError as exc:
            # At least once: the message comes back after its lease and is handled again
            # (a submitted request is then a harmless duplicate).
            log.warning("%s on %s failed: %s", "ack" if ack else "nack", self.path, exc)

    # -- leases ---------------------------------------------------------------------------------

    def _lease(self, ack_ids: list[str]) -> None:
        with self._lock:
            self._leased.update(ack_ids)
        self._extend(ack_ids)

    def _extend(self, ack_ids: list[str]) -> None:
        try:
            self._client.modify_ack_deadline(
                request={
                    "subscription": self.path,
                    "ack_ids": ack_ids,
                    "ack_deadline_seconds": self._lease_seconds,
                },
                retry=None,
            )
        except gexc.GoogleAPICallError as exc:
            log.warning("lease extension on %s failed: %s", self.path, exc)

    def _lease_loop(self) -> None:
        # A third of the lease: two extensions can fail before a message is redelivered.
        period = max(1.0, self._lease_seconds / 3)
        while not self._ended.wait(period):
            with self._lock:
                ack_ids = sorted(self._leased)
            if ack_ids:
                self._extend(ack_ids)
