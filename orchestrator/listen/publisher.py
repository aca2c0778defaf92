"""The local engine's results on the bus: :class:`LocalResultPublisher` publishes each finished
local run's result event (retrying while the bus is unavailable) and records it in the history.
Argo runs' results are published by :class:`orchestrator.argo.tracker.ResultPublisher`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator.bus import Bus, BusError
from orchestrator.events import (
    event_time,
    result_event,
    structured_message,
)
from orchestrator.history.recorder import HistoryRecorder
from orchestrator.metrics import Metrics

log = logging.getLogger(__name__)

# A local run's result event: publish attempts after the first, and their backoff (1, 2, 4, ...
# capped): about five minutes of bus outage before the result is given up (and logged).
RESULT_PUBLISH_RETRIES = 10
RESULT_RETRY_DELAY = 1.0
MAX_RESULT_RETRY_DELAY = 60.0


class LocalResultPublisher:
    """The local engine's callbacks: publish its result like the tracker does for Argo.

    ``on_result`` publishes the run's outcome; ``on_error`` -- the run could not even start
    (discovery failed, the tenant became busy) -- publishes a ``failed`` result with the reason,
    so every request that was acked still gets exactly one answer.
    """

    def __init__(
        self,
        bus: Bus,
        topic: str,
        metrics: Metrics,
        history: HistoryRecorder | None = None,
        *,
        retries: int = RESULT_PUBLISH_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bus = bus
        self.topic = topic
        self.metrics = metrics
        self.history = history
        self.retries = retries
        self._sleep = sleep

    def on_result(self, request: Any, result: Any) -> None:
        data: Mapping[str, Any] = result.to_event_data()
        event = result_event(
            batch_operation_id=request.batch_operation_id,
            tenant_env_id=request.tenant_env_id,
            operation=request.operation,
            status="succeeded" if data.get("status") == "succeeded" else "failed",
            jobs=data.get("jobs") or [],
            workflow=None,
            region=request.region,
            started_at=data.get("startedAt"),
            finished_at=data.get("finishedAt"),
        )
        event["data"].update({k: v for k, v in data.items() if k not in event["data"]})
        self._publish(request, event, phase=str(data.get("status")))

    def on_error(self, request: Any, error: BaseException) -> None:
        now = event_time(datetime.now(UTC))
        event = result_event(
            batch_operation_id=request.batch_operation_id,
            tenant_env_id=request.tenant_env_id,
            operation=request.operation,
            status="failed",
            jobs=[],
            workflow=None,
            region=request.region,
            started_at=now,
            finished_at=now,
        )
        event["data"].update(
            {"engine": "local", "reason": type(error).__name__, "message": str(error)}
        )
        self._publish(request, event, phase="Error")

    def _publish(self, request: Any, event: dict[str, Any], *, phase: str) -> None:
        # The request was acked when the run started and the run's outcome lives only in this
        # process: there is no marker to retry from later (unlike the Argo path), so a bus that
        # is briefly unreachable is waited out here rather than losing the answer.
        data, attributes = structured_message(event)
        attributes["tenant"] = request.tenant_env_id
        for attempt in range(self.retries + 1):
            try:
                self.bus.publish(self.topic, data, attributes)
                break
            except BusError as exc:
                if attempt == self.retries:
                    log.exception("result of %s could not be published", request.batch_operation_id)
                    raise  # the held request is nacked: its redelivery publishes it
                delay = min(RESULT_RETRY_DELAY * 2**attempt, MAX_RESULT_RETRY_DELAY)
                log.warning(
                    "result of %s not published yet (%s); retrying in %.0fs",
                    request.batch_operation_id,
                    exc,
                    delay,
                )
                self._sleep(delay)
        self.metrics.results_published.labels(event["data"]["status"]).inc()
        self.metrics.workflows_finished.labels(phase).inc()
        requested = getattr(request, "time", None)  # the request event's own time, when sent
        if isinstance(requested, datetime):
            latency = (datetime.now(UTC) - requested).total_seconds()
            self.metrics.end_to_end_latency.observe(max(latency, 0.0))
        if self.history is not None:
            self.history.result(request.batch_operation_id, event["data"])
