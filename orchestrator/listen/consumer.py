"""The consumer of lifecycle requests.

:class:`Consumer` decides what happens to one message (the whole policy, testable with
``tests/support``'s ``FakeBus``):

=========================================  ===============================  =========
message                                    action                           ack?
=========================================  ===============================  =========
valid, new                                 submit (Workflow created)        ack
valid, already submitted (409)             count a duplicate                ack
invalid (any :class:`InvalidEvent`)        publish to the dead-letter topic ack
valid but the API server rejects it (422)  dead-letter ``WorkflowRejected``  ack
Kubernetes / bus unavailable, tenant busy  nothing                          **nack**
dead-letter publish fails                  nothing                          **nack**
=========================================  ===============================  =========

So a message is acked only once its effect is durable (a Workflow exists, or the dead-letter
topic has it): no request is lost, and the Workflow name makes redeliveries harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bridge.errors import InvalidError, LifecycleError
from orchestrator.bus import Bus, BusError, Disposition, Message
from orchestrator.events import (
    InvalidEvent,
    parse_request,
)
from orchestrator.history.recorder import HistoryRecorder
from orchestrator.metrics import Metrics
from orchestrator.submit import Engine

log = logging.getLogger(__name__)


# Attributes we put on a dead-lettered message (the original message's attributes are kept).
REASON_ATTRIBUTE = "reason"
REASON_CODE_ATTRIBUTE = "reasonCode"
MAX_RETRY_AFTER = 5.0


@dataclass(frozen=True)
class ConsumerSettings:
    dead_letter_topic: str
    subscription: str = ""
    max_event_bytes: int = 256 * 1024
    # Pause before a nack, so an unreachable API server is not hammered by instant redeliveries.
    retry_delay: float = 1.0


class Consumer:
    """Turns one request message into a :class:`Disposition`."""

    def __init__(
        self,
        engine: Engine,
        bus: Bus,
        *,
        settings: ConsumerSettings,
        metrics: Metrics,
        sleep: Callable[[float], None] = time.sleep,
        history: HistoryRecorder | None = None,
    ) -> None:
        self.engine = engine
        self.history = history or HistoryRecorder(None)
        self.bus = bus
        self.settings = settings
        self.metrics = metrics
        self._sleep = sleep
        self.engine_name = str(getattr(engine, "name", type(engine).__name__))

    def handle(self, message: Message) -> Disposition:
        try:
            request = parse_request(
                message.data, message.attributes, max_bytes=self.settings.max_event_bytes
            )
        except InvalidEvent as exc:
            return self._dead_letter(message, exc.reason_code, str(exc), field=exc.field)
        self.history.request_received(request)
        try:
            outcome = self.engine.submit(request)
        except InvalidEvent as exc:
            # A valid request the engine cannot place: the region router's unknown-region /
            # missing-region. No redelivery can change that.
            return self._dead_letter(message, exc.reason_code, str(exc), field=exc.field)
        except InvalidError as exc:
            # The API server will never accept this Workflow: retrying cannot help.
            return self._dead_letter(message, "WorkflowRejected", str(exc), field="")
        except LifecycleError as exc:
            log.warning(
                "request %s not submitted yet (%s); it will be redelivered",
                request.batch_operation_id,
                exc,
            )
            return self._retry(getattr(exc, "retry_after", None))
        self.history.request_submitted(request, workflow=outcome.name)
        if outcome.duplicate:
            self.metrics.duplicates.inc()
            self.metrics.events_received.labels("duplicate").inc()
            log.info("request %s: duplicate of %s", request.batch_operation_id, outcome.name)
        else:
            self.metrics.submissions.labels(outcome.engine).inc()
            self.metrics.events_received.labels("submitted").inc()
            log.info("request %s: submitted %s", request.batch_operation_id, outcome.name)
        return Disposition.ACK

    def _retry(self, retry_after: float | None = None) -> Disposition:
        self.metrics.events_received.labels("retried").inc()
        # Honour the server's Retry-After (bounded): holding the handler thread is the
        # backpressure that keeps a struggling API server from a redelivery storm.
        delay = max(self.settings.retry_delay, min(retry_after or 0.0, MAX_RETRY_AFTER))
        self._sleep(delay)
        return Disposition.NACK

    def _dead_letter(self, message: Message, code: str, reason: str, *, field: str) -> Disposition:
        # Ours go first: they must survive any limit on the number of attributes.
        attributes: dict[str, str] = {}
        attributes.update(
            {
                REASON_ATTRIBUTE: reason,
                REASON_CODE_ATTRIBUTE: code,
                "originalMessageId": message.message_id,
            }
        )
        if field:
            attributes["field"] = field
        if self.settings.subscription:
            attributes["subscription"] = self.settings.subscription
        for key, value in message.attributes.items():
            attributes.setdefault(key, value)
        try:
            self.bus.publish(self.settings.dead_letter_topic, message.data, attributes)
        except BusError as exc:
            log.warning("dead-lettering message %s failed: %s", message.message_id, exc)
            return self._retry()
        outcome = "rejected" if code == "WorkflowRejected" else "invalid"
        self.metrics.events_received.labels(outcome).inc()
        self.metrics.dead_letters.labels(code).inc()
        log.warning("message %s dead-lettered: %s: %s", message.message_id, code, reason)
        return Disposition.ACK
