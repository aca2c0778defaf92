"""An in-memory :class:`orchestrator.bus.Bus` for unit tests of the consumer logic."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from orchestrator.bus import Disposition, Handler, Message, Subscription


class _FakeSubscription:
    def __init__(self) -> None:
        self.stopped = False

    def stop(self, *, timeout: float | None = None) -> None:
        self.stopped = True

    def wait(self, timeout: float) -> bool:
        return self.stopped


class FakeBus:
    """In-memory bus for unit tests: ``deliver`` hands a message to the subscribed handler and
    returns its disposition; ``published`` records every publish per topic."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.published: dict[str, list[Message]] = {}
        self.fail_publish: Exception | None = None
        self._lock = threading.Lock()
        self._ids = 0

    def subscribe(self, subscription: str, handler: Handler) -> Subscription:
        self.handlers[subscription] = handler
        return _FakeSubscription()

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        if self.fail_publish is not None:
            raise self.fail_publish
        with self._lock:
            self._ids += 1
            message = Message(data, dict(attributes or {}), str(self._ids))
            self.published.setdefault(topic, []).append(message)
        return message.message_id

    def deliver(
        self, subscription: str, data: bytes, attributes: Mapping[str, str] | None = None
    ) -> Disposition:
        return self.handlers[subscription](Message(data, dict(attributes or {}), "fake"))

    def close(self) -> None:
        self.handlers.clear()
