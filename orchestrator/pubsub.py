"""Google Cloud Pub/Sub behind the :class:`orchestrator.bus.Bus` seam.

The only module that imports ``google.cloud.pubsub``. It adds what the consumer relies on:

- streaming pull with flow control (at most ``max_messages`` / ``max_bytes`` outstanding), so a
  burst of thousands of requests never floods the Kubernetes API or the process;
- the handler's :class:`~orchestrator.bus.Disposition` decides ack or nack, and the ack happens only
  after the handler returned (i.e. after the Workflow was created or the message dead-lettered);
  a handler that raises is nacked (redelivered), never acked;
- on stop, running handlers finish (``await_callbacks_on_shutdown``) and messages received but not
  yet handled are nacked by the client library, so they are redelivered at once;
- google.api_core exceptions become :class:`orchestrator.bus.BusError`.

``PubSubSettings.pull = "unary"`` swaps the stream for unary Pull calls
(:mod:`orchestrator.pubsub_pull`, the other half of this adapter): the Pub/Sub emulator keeps
routing messages to the stream of a consumer that has gone.

The emulator is used when ``PUBSUB_EMULATOR_HOST`` is set (the client library reads it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.auth import exceptions as gauth_exceptions
from google.cloud import pubsub_v1

from bridge.errors import UsageError
from orchestrator.bus import BusError, Disposition, Handler, Message
from orchestrator.pubsub_pull import UnaryPullSubscription

log = logging.getLogger(__name__)

PULL_MODES = ("streaming", "unary")
# Pub/Sub attribute values are limited to 1024 bytes.
MAX_ATTRIBUTE_BYTES = 1024


@dataclass(frozen=True)
class PubSubSettings:
    project: str
    max_messages: int = 100
    max_bytes: int = 10 * 1024 * 1024
    publish_timeout: float = 30.0
    # Threads running handlers concurrently (each blocks on one Kubernetes create).
    max_workers: int = 8
    # Longest lease the client asks for at a time (10..600 s). It is also how long messages
    # delivered to a consumer that vanished (crash, SIGKILL) stay invisible before Pub/Sub
    # redelivers them. Short: quick recovery, a few more lease extensions.
    lease_seconds: int = 10
    # "streaming" (StreamingPull, the client library's default) or "unary" (Pull calls, see
    # orchestrator/pubsub_pull.py: what the emulator needs once consumers restart).
    pull: str = "streaming"

    def __post_init__(self) -> None:
        if self.pull not in PULL_MODES:
            raise UsageError(
                f"unknown pull mode {self.pull!r}", hint=f"use one of: {', '.join(PULL_MODES)}"
            )


def resolve_pull(mode: str) -> str:
    """``auto`` is unary Pull on the emulator (it strands messages on the streams of consumers
    that have gone, see :mod:`orchestrator.pubsub_pull`) and StreamingPull on the service."""
    if mode != "auto":
        return mode
    return "unary" if os.environ.get("PUBSUB_EMULATOR_HOST") else "streaming"


def topic_path(project: str, topic: str) -> str:
    """Accept a short name or a full ``projects/P/topics/T`` path."""
    return topic if topic.startswith("projects/") else f"projects/{project}/topics/{topic}"


def subscription_path(project: str, subscription: str) -> str:
    if subscription.startswith("projects/"):
        return subscription
    return f"projects/{project}/subscriptions/{subscription}"


MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTES = 100
_RESERVED_PREFIX = "goog"


def publishable_attributes(attributes: Mapping[str, str] | None) -> dict[str, str]:
    """Attributes Pub/Sub will accept: no reserved ``goog*`` keys (a dead-lettered message may
    carry the client library's own), keys within 256 bytes, values clipped, at most 100."""
    result: dict[str, str] = {}
    for key, value in (attributes or {}).items():
        if key.startswith(_RESERVED_PREFIX) or len(key.encode("utf-8")) > MAX_ATTRIBUTE_KEY_BYTES:
            continue
        if len(result) >= MAX_ATTRIBUTES:
            break
        result[key] = clip_attribute(str(value))
    return result


def clip_attribute(value: str) -> str:
    """Shorten a value to fit a Pub/Sub attribute (1024 bytes of UTF-8)."""
    raw = value.encode("utf-8")
    if len(raw) <= MAX_ATTRIBUTE_BYTES:
        return value
    return raw[: MAX_ATTRIBUTE_BYTES - 3].decode("utf-8", errors="ignore") + "..."


def _bus_error(what: str, exc: BaseException) -> BusError:
    hint = None
    if isinstance(exc, gexc.NotFound):
        hint = "create the topic/subscription first (tenantctl listen --create-topology for dev)"
    elif isinstance(exc, gexc.PermissionDenied | gexc.Unauthenticated):
        hint = "grant the service account pubsub.publisher/subscriber on it"
    elif isinstance(
        exc, gexc.ServiceUnavailable | gexc.DeadlineExceeded | gexc.RetryError | TimeoutError
    ) and os.environ.get("PUBSUB_EMULATOR_HOST"):
        hint = f"is the emulator at {os.environ['PUBSUB_EMULATOR_HOST']} running?"
    return BusError(f"Pub/Sub {what} failed: {exc}", hint=hint)


class PubSubSubscription:
    """A running streaming pull."""

    def __init__(self, path: str) -> None:
        self._future: Any = None
        self.path = path
        # Set first thing on stop: a message whose callback starts after it is returned to the
        # bus unhandled (the client library keeps dispatching held messages while it shuts
        # down the stream, which can take a second or two).
        self.stopping = threading.Event()
        self._stopped = threading.Event()

    def stop(self, *, timeout: float | None = None) -> None:
        self.stopping.set()
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._future.cancel()
        try:
            self._future.result(timeout=timeout)
        except futures.TimeoutError:
            log.warning("subscription %s: handlers still running after %ss", self.path, timeout)
        except futures.CancelledError:
            pass
        except Exception as exc:  # the stream had already died; stop() must not raise
            log.debug("subscription %s ended with %r", self.path, exc)

    def wait(self, timeout: float) -> bool:
        try:
            self._future.result(timeout=timeout)
        except futures.TimeoutError:
            return False
        except futures.CancelledError:
            return True
        except Exception as exc:  # whatever ended the stream: the service must stop, not hang
            raise _bus_error(f"streaming pull on {self.path}", exc) from exc
        return True


class PubSubBus:
    """:class:`orchestrator.bus.Bus` over Google Cloud Pub/Sub."""

    def __init__(self, settings: PubSubSettings) -> None:
        self.settings = settings
        try:
            self._publisher = pubsub_v1.PublisherClient()
            self._subscriber = pubsub_v1.SubscriberClient()
        except gauth_exceptions.DefaultCredentialsError as exc:
            # No credentials is an operator's setup mistake: one line with the fix, not the
            # client library's traceback (seen in the exit handler on a real cluster).
            raise BusError(
                f"Pub/Sub client for project {settings.project}: no Google credentials found",
                hint="use Workload Identity for the pod's service account, set "
                "GOOGLE_APPLICATION_CREDENTIALS to a key file, or PUBSUB_EMULATOR_HOST for "
                "the emulator (docs/install.md, section 10)",
            ) from exc
        self._subscriptions: list[PubSubSubscription | UnaryPullSubscription] = []

    def subscribe(
        self, subscription: str, handler: Handler
    ) -> PubSubSubscription | UnaryPullSubscription:
        path = subscription_path(self.settings.project, subscription)

        def dispatch(message: Message) -> Disposition:
            try:
                return handler(message)
            except Exception:
                # A bug must not lose the request: nack, so it comes back.
                log.exception("handler failed on message %s; nacking", message.message_id)
                return Disposition.NACK

        if self.settings.pull == "unary":
            unary = UnaryPullSubscription(
                self._subscriber,
                path,
                dispatch,
                max_messages=self.settings.max_messages,
                max_workers=self.settings.max_workers,
                lease_seconds=self.settings.lease_seconds,
                error=_bus_error,
            )
            self._subscriptions.append(unary)
            return unary.start()

        running = PubSubSubscription(path)

        def callback(received: Any) -> None:
            if running.stopping.is_set():
                received.nack()
                return
            message = Message(
                data=bytes(received.data),
                attributes=dict(received.attributes),
                message_id=str(received.message_id),
                delivery_attempt=received.delivery_attempt,
            )
            if dispatch(message) is Disposition.ACK:
                received.ack()
            else:
                received.nack()

        flow = pubsub_v1.types.FlowControl(
            max_messages=self.settings.max_messages,
            max_bytes=self.settings.max_bytes,
            max_duration_per_lease_extension=self.settings.lease_seconds,
        )
        scheduler = pubsub_v1.subscriber.scheduler.ThreadScheduler(
            executor=futures.ThreadPoolExecutor(
                max_workers=self.settings.max_workers, thread_name_prefix="tenantctl-handler"
            )
        )
        try:
            future = self._subscriber.subscribe(
                path,
                callback,
                flow_control=flow,
                scheduler=scheduler,
                await_callbacks_on_shutdown=True,
            )
        except gexc.GoogleAPICallError as exc:
            raise _bus_error(f"subscribe to {path}", exc) from exc
        running._future = future
        self._subscriptions.append(running)
        return running

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        path = topic_path(self.settings.project, topic)
        attrs = publishable_attributes(attributes)
        try:
            future = self._publisher.publish(path, data, **attrs)
            return str(future.result(timeout=self.settings.publish_timeout))
        except (gexc.GoogleAPICallError, gexc.RetryError, futures.TimeoutError) as exc:
            raise _bus_error(f"publish to {path}", exc) from exc

    def publish_many(
        self, topic: str, items: Iterable[tuple[bytes, Mapping[str, str]]]
    ) -> list[str]:
        """Publish a batch concurrently (the client batches them) and wait for all."""
        path = topic_path(self.settings.project, topic)
        try:
            pending = [self._publisher.publish(path, data, **dict(attrs)) for data, attrs in items]
            return [str(f.result(timeout=self.settings.publish_timeout)) for f in pending]
        except (gexc.GoogleAPICallError, gexc.RetryError, futures.TimeoutError) as exc:
            raise _bus_error(f"publish to {path}", exc) from exc

    def close(self) -> None:
        for running in self._subscriptions:
            running.stop(timeout=30.0)
        self._subscriptions.clear()
        self._publisher.stop()  # flushes batches still in flight
        self._subscriber.close()
        _close_channel(self._publisher)


@contextlib.contextmanager
def emulator_host(host: str) -> Iterator[None]:
    """Point this process's Pub/Sub clients at the emulator on ``host`` for the block.

    The client reads ``PUBSUB_EMULATOR_HOST`` when it is created, so only clients made inside
    the block use the emulator; the previous value (or its absence) comes back afterwards.
    """
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous


def ensure_topology(
    project: str,
    *,
    topics: Iterable[str],
    subscriptions: Mapping[str, str],
    ack_deadline_seconds: int = 10,
) -> None:
    """Create topics and ``{subscription: topic}`` subscriptions that do not exist yet.

    For the emulator and development; production topology belongs to infrastructure code.
    """
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    try:
        for topic in topics:
            path = topic_path(project, topic)
            try:
                publisher.create_topic(request={"name": path})
            except gexc.AlreadyExists:
                pass
            except gexc.GoogleAPICallError as exc:
                raise _bus_error(f"create topic {path}", exc) from exc
        for subscription, topic in subscriptions.items():
            path = subscription_path(project, subscription)
            try:
                subscriber.create_subscription(
                    request={
                        "name": path,
                        "topic": topic_path(project, topic),
                        "ack_deadline_seconds": ack_deadline_seconds,
                    }
                )
            except gexc.AlreadyExists:
                pass
            except gexc.GoogleAPICallError as exc:
                raise _bus_error(f"create subscription {path}", exc) from exc
    finally:
        publisher.stop()
        subscriber.close()
        _close_channel(publisher)


def _close_channel(client: Any) -> None:
    """PublisherClient has no close(); its gRPC channel must still be closed (no leaked sockets
    under ``-W error``)."""
    transport = getattr(client, "transport", None) or getattr(client, "_transport", None)
    channel = getattr(transport, "grpc_channel", None) or getattr(transport, "_grpc_channel", None)
    if channel is not None:
        channel.close()


def pull_now(
    project: str, subscription: str, *, max_messages: int = 100, timeout: float = 2.0
) -> list[Message]:
    """Synchronously pull (and ack) what is available: for tests and ``tenantctl`` tools that
    read a results or dead-letter subscription. Returns [] when nothing arrives in ``timeout``."""
    subscriber = pubsub_v1.SubscriberClient()
    path = subscription_path(project, subscription)
    try:
        try:
            response = subscriber.pull(
                request={"subscription": path, "max_messages": max_messages}, timeout=timeout
            )
        except (gexc.DeadlineExceeded, gexc.RetryError):
            return []
        except gexc.GoogleAPICallError as exc:
            raise _bus_error(f"pull from {path}", exc) from exc
        received = list(response.received_messages)
        if received:
            subscriber.acknowledge(
                request={"subscription": path, "ack_ids": [r.ack_id for r in received]}
            )
        return [
            Message(
                data=bytes(r.message.data),
                attributes=dict(r.message.attributes),
                message_id=str(r.message.message_id),
            )
            for r in received
        ]
    finally:
        subscriber.close()
