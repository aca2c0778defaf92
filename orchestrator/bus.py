"""The message-bus seam: what the consumer needs from a transport, and nothing more.

:mod:`orchestrator.pubsub` implements it over Google Cloud Pub/Sub; another bus (Kafka, SQS,
NATS) is another module with the same three methods. The tests' in-memory stand-in is
``tests/support/bus.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from bridge.errors import LifecycleError


class BusError(LifecycleError):
    """The message bus failed (publish, pull, ack). Every bus adapter translates its client's
    exceptions into this, cause chained, so the consumer handles one error whatever the bus."""


class Disposition(Enum):
    """What the handler decided: ACK (done: submitted, duplicate or dead-lettered) or NACK
    (a transient failure: the bus must deliver the message again)."""

    ACK = "ack"
    NACK = "nack"


@dataclass(frozen=True)
class Message:
    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)
    message_id: str = ""
    delivery_attempt: int | None = None


Handler = Callable[[Message], Disposition]


class Subscription(Protocol):
    def stop(self, *, timeout: float | None = None) -> None:
        """Stop pulling and wait (up to ``timeout``) for the handlers already running; messages
        received but not handled are returned to the bus (redelivered later)."""

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True when the stream has ended. Raises BusError when
        it ended with an error (e.g. the subscription does not exist)."""


class Bus(Protocol):
    def subscribe(self, subscription: str, handler: Handler) -> Subscription: ...

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        """Publish and block until the bus has accepted the message; returns its id.
        Raises BusError."""
        ...

    def close(self) -> None: ...
