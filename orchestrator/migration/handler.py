"""Migrations from the bus (``tenantctl listen --regions``): :class:`MigrationHandler` runs
``migration.requested`` messages beside the consumer, and :func:`bus_publisher` publishes a
migration's events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.bus import Bus, Disposition, Handler, Message
from orchestrator.events import (
    BINARY,
    InvalidEvent,
    content_mode,
    decode_message,
    encode_event,
    structured_message,
)
from orchestrator.events.migration import (
    MIGRATION_TYPE,
    MigrationRequest,
    is_migration,
    parse_migration,
)
from orchestrator.history import HistoryStore
from orchestrator.migration.report import MigrationResult
from orchestrator.migration.saga import Migration, Publish, StepRunner
from orchestrator.outcome import CANCELLED
from orchestrator.regions import RegionRouter

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# migrations from the bus (`tenantctl listen --regions`)
# --------------------------------------------------------------------------------------------

DeadLetter = Callable[..., Disposition]  # (message, code, reason, *, field) -> Disposition


class MigrationHandler:
    """Runs ``migration.requested`` messages for ``tenantctl listen --regions``.

    A migration runs on the handler thread that received it, and its message is acked when the
    migration has ended (succeeded or failed: its result events are published either way).
    So a listener that dies mid-migration leaves the message unacked; the bus redelivers it and
    the history resumes it where it stopped. At most ``max_concurrent`` migrations run at once
    (each holds one handler thread for its whole duration); more wait on the bus.

    ``runners`` are the regions' step runners
    (:func:`orchestrator.listen.runtime.step_runners_for`); ``router`` (optional) is consulted
    so that a migration touching a region whose circuit is open waits on the bus like any other
    request of that region.
    """

    def __init__(
        self,
        runners: Mapping[str, StepRunner],
        *,
        dead_letter: DeadLetter,
        store: HistoryStore | None,
        publish: Publish | None,
        router: RegionRouter | None = None,
        max_concurrent: int = 2,
        retry_delay: float = 1.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.migration = Migration(runners, store=store, publish=publish)
        self.runners = runners
        self.dead_letter = dead_letter
        self.router = router
        self.retry_delay = retry_delay
        self._sleep = sleep or _sleep
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self.cancel = threading.Event()
        self.finished: list[MigrationResult] = []

    def wrap(self, handler: Handler) -> Handler:
        """The bus handler: migrations here, every other message to ``handler``."""

        def handle(message: Message) -> Disposition:
            data = message.data
            if content_mode(data, message.attributes) == BINARY:
                if message.attributes.get("ce-type") != MIGRATION_TYPE:
                    return handler(message)
                try:  # the binary-mode migration, read as the structured event it carries
                    data = encode_event(decode_message(data, message.attributes)[0])
                except InvalidEvent:
                    return handler(message)  # the consumer dead-letters it with the reason
            if is_migration(data):
                try:
                    parse_migration(data)
                except InvalidEvent as exc:
                    if exc.reason_code == "WrongType":  # it only mentioned the type somewhere
                        return handler(message)
                return self.handle(message, data=data)
            return handler(message)

        return handle

    def handle(self, message: Message, *, data: bytes | None = None) -> Disposition:
        """``data``: the structured event when the message came in binary mode (the message
        itself is what is dead-lettered, unchanged)."""
        try:
            request = parse_migration(message.data if data is None else data)
        except InvalidEvent as exc:
            return self.dead_letter(message, exc.reason_code, str(exc), field=exc.field)
        for key, region in (("from", request.from_region), ("to", request.to_region)):
            if region not in self.runners:
                return self.dead_letter(
                    message,
                    "unknown-region",
                    f"data.{key} {region!r} is not a region this orchestrator serves "
                    f"(use one of {', '.join(sorted(self.runners))})",
                    field=f"data.{key}",
                )
        parent = request.parent_batch_operation_id
        with self._lock:
            if parent in self._running:  # a redelivery while it runs here: it will finish
                log.info("migration %s: already running here; duplicate acked", parent)
                return Disposition.ACK
        wait = self._unavailable(request)
        if wait is not None:
            self._sleep(min(max(wait, self.retry_delay), 5.0))
            return Disposition.NACK
        if not self._slots.acquire(blocking=False):
            self._sleep(self.retry_delay)
            return Disposition.NACK
        with self._lock:
            self._running.add(parent)
        try:
            result = self.migration.run(request, cancel=self.cancel)
        finally:
            with self._lock:
                self._running.discard(parent)
            self._slots.release()
        self.finished.append(result)
        if result.status == CANCELLED:
            return Disposition.NACK  # stopped by a shutdown: the next listener resumes it
        log.info("migration %s: %s (%s)", parent, result.status, result.tenant_state)
        return Disposition.ACK

    def _unavailable(self, request: MigrationRequest) -> float | None:
        """Seconds to wait when a region of the migration has its circuit open."""
        if self.router is None:
            return None
        for region in (request.from_region, request.to_region):
            lane = self.router.lanes.get(region)
            if lane is not None and lane.circuit.state == "open":
                return float(lane.circuit.retry_in()) or self.retry_delay
        return None


def _sleep(seconds: float) -> None:
    threading.Event().wait(seconds)


def bus_publisher(bus: Bus, topic: str) -> Publish:
    """``publish`` for :class:`Migration`: each event on ``topic`` with the attributes the
    orchestrator's results carry (``ce-type``, ``ce-id``, ``tenant``)."""

    def publish(event: Mapping[str, Any]) -> None:
        data, attributes = structured_message(event)
        attributes["tenant"] = str(event.get("subject", ""))
        bus.publish(topic, data, attributes)

    return publish
