"""``tenantctl listen``: the consumer of lifecycle requests and the result tracker, in one process.

:class:`Consumer` decides what happens to one message (the whole policy, testable with
:class:`~orchestrator.bus.FakeBus`):

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

:class:`Service` wires the consumer, the tracker, the metrics endpoint and a clean shutdown:
on SIGTERM it stops pulling, lets the handlers in flight finish (their messages are acked or
nacked), returns the messages it had received but not started to the bus, waits for a result
being published, and exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.errors import BusError, ForbiddenError, InvalidError, LifecycleError
from bridge.kube import NAMESPACES, Kube

from .bus import Bus, Disposition, Handler, Message, Subscription
from .engine import BridgeSettings, EngineSettings, LocalSubmitter, local_engine
from .engine.journal import KubeRunJournal, NoJournal
from .events import InvalidEvent, parse_request, result_event, rfc3339, structured_message
from .history import open_store
from .history.recorder import HistoryRecorder
from .metrics import Metrics, MetricsServer
from .migration import MigrationHandler, bus_publisher, step_runners_for
from .pubsub import PubSubBus, PubSubSettings, ensure_topology, resolve_pull
from .regions import RegionalRuntime, build_regional_runtime, load_region_map
from .settings import ListenSettings
from .submit import ArgoEngine, Engine
from .tracker import ResultPublisher, Tracker

log = logging.getLogger(__name__)

# Attributes we put on a dead-lettered message (the original message's attributes are kept).
REASON_ATTRIBUTE = "reason"
REASON_CODE_ATTRIBUTE = "reasonCode"
MAX_RETRY_AFTER = 5.0
# A local run's result event: publish attempts after the first, and their backoff (1, 2, 4, ...
# capped): about five minutes of bus outage before the result is given up (and logged).
RESULT_PUBLISH_RETRIES = 10
RESULT_RETRY_DELAY = 1.0
MAX_RESULT_RETRY_DELAY = 60.0


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
        now = rfc3339(datetime.now(UTC))
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


class Service:
    """The running ``tenantctl listen``: build with settings, ``start()``, ``stop()``."""

    def __init__(
        self,
        settings: ListenSettings,
        *,
        bus: Bus | None = None,
        kube: Kube | None = None,
        engine: Engine | None = None,
        metrics: Metrics | None = None,
        retry_delay: float = 1.0,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._own_bus = bus is None
        if bus is None:
            bus = PubSubBus(
                PubSubSettings(
                    project=settings.project,
                    max_messages=settings.max_messages,
                    max_bytes=settings.max_bytes,
                    max_workers=settings.handler_threads,
                    lease_seconds=settings.lease_seconds,
                    pull=resolve_pull(settings.pull),
                )
            )
        self.bus: Bus = bus
        # Opened (and migrated) before anything is consumed: a wrong URL fails the start.
        self._history_store = open_store(settings.history_store) if settings.history_store else None
        self.history = HistoryRecorder(self._history_store)
        # --regions: one engine (and tracker) per region, from the region map; no single cluster.
        self.regional: RegionalRuntime | None = None
        if settings.regions and engine is None:
            self.regional = build_regional_runtime(
                load_region_map(settings.regions),
                settings,
                bus=self.bus,
                metrics=self.metrics,
                history=self.history,
            )
            engine = self.regional.router
        self._own_kube = kube is None and self.regional is None
        self.kube: Kube | None = (
            kube if self.regional is not None else kube or Kube(settings=settings.kube)
        )
        self._local: Any = None
        self.engine = engine or self._build_engine()
        self.consumer = Consumer(
            self.engine,
            self.bus,
            settings=ConsumerSettings(
                dead_letter_topic=settings.dead_letter_topic,
                subscription=settings.subscription,
                max_event_bytes=settings.max_event_bytes,
                retry_delay=retry_delay,
            ),
            metrics=self.metrics,
            history=self.history,
        )
        self.migrations: MigrationHandler | None = None
        if self.regional is not None:
            # Migrations are resumable from the history store (--store); without one, each
            # delivery runs both steps.
            self.migrations = MigrationHandler(
                step_runners_for(self.regional, poll_seconds=settings.migration_poll_seconds),
                dead_letter=self.consumer._dead_letter,
                store=self._history_store,
                publish=bus_publisher(self.bus, settings.results_topic),
                router=self.regional.router,
                max_concurrent=settings.max_migrations,
                retry_delay=retry_delay,
            )
        self.tracker: Tracker | None = None
        if settings.track and settings.engine == "argo" and self.kube is not None:
            publisher = ResultPublisher(
                self.kube,
                self.bus,
                namespace=settings.workflow_namespace,
                topic=settings.results_topic,
                owner=settings.owner,
                claim_ttl=settings.claim_ttl,
                metrics=self.metrics,
                history=self.history,
            )
            self.tracker = Tracker(
                self.kube,
                publisher,
                namespace=settings.workflow_namespace,
                watch_timeout=settings.watch_timeout,
            )
        self._tracker_thread: threading.Thread | None = None
        self._subscription: Subscription | None = None
        self.server: MetricsServer | None = None
        self._stopped = False

    def _build_engine(self) -> Engine:
        assert self.kube is not None  # only --regions has no single cluster
        if self.settings.engine == "argo":
            return ArgoEngine(
                self.kube,
                namespace=self.settings.workflow_namespace,
                template=self.settings.template,
                parallelism=self.settings.parallelism,
            )
        kube = self.settings.kube
        local = local_engine(
            BridgeSettings(kubeconfig=kube.kubeconfig, context=kube.context),
            settings=EngineSettings(parallelism=self.settings.parallelism),
        )
        results = LocalResultPublisher(
            self.bus, self.settings.results_topic, self.metrics, self.history
        )
        # The request is held until its result is published, and every finished job is
        # journaled: a consumer killed mid-run loses no request and runs no job twice
        # (docs/reliability.md, "A killed consumer").
        self._local = LocalSubmitter(
            local,
            on_result=results.on_result,
            on_error=results.on_error,
            max_concurrent=self.settings.max_concurrent,
            journal=KubeRunJournal(self.kube, self.settings.workflow_namespace),
            hold=True,
        )
        engine: Engine = self._local
        return engine

    def health(self) -> tuple[bool, str]:
        if self._stopped:
            return False, "stopping"
        if self.tracker is not None and not self.tracker.healthy:
            return False, f"tracker: {self.tracker.last_error}"
        if self.regional is not None:
            return self.regional.health()
        return True, "ok"

    def start(self) -> None:
        s = self.settings
        if s.create_topology:
            ensure_topology(
                s.project,
                topics=[s.request_topic, s.results_topic, s.dead_letter_topic],
                subscriptions={s.subscription: s.request_topic},
            )
        if s.metrics_port >= 0:
            self.server = MetricsServer(
                self.metrics, host=s.metrics_host, port=s.metrics_port, health=self.health
            )
            log.info("metrics on %s/metrics", self.server.url)
        if self.tracker is not None:
            self._tracker_thread = threading.Thread(
                target=self.tracker.run, name="tenantctl-tracker", daemon=True
            )
            self._tracker_thread.start()
        if self.regional is not None:
            self.regional.start()
        if self._local is not None:
            self._check_journal()
        handler: Handler = self.consumer.handle
        if self.migrations is not None:
            handler = self.migrations.wrap(handler)
        self._subscription = self.bus.subscribe(s.subscription, handler)
        log.info(
            "listening on %s (engine %s, workflows in %s)",
            s.subscription,
            s.engine,
            s.workflow_namespace,
        )

    def _check_journal(self) -> None:
        """The run journal lives in the workflow namespace: without it (or without access)
        runs still work, but a killed consumer's restarted runs repeat finished jobs."""
        journal = self._local.journal
        if not isinstance(journal, KubeRunJournal):
            return
        try:
            with contextlib.suppress(ForbiddenError):  # may not read namespaces: try anyway
                journal.kube.get(NAMESPACES, journal.namespace)
            pruned = journal.prune()
        except LifecycleError as exc:
            log.warning(
                "run journal unavailable in namespace %s (%s): a consumer killed mid-run will "
                "run the finished jobs of its requests again",
                journal.namespace,
                exc,
            )
            self._local.journal = NoJournal()
            return
        if pruned:
            log.info("run journal: deleted %d journals of answered requests", pruned)

    def wait(self, stop: threading.Event, *, poll: float = 0.5) -> None:
        """Block until ``stop`` is set; raises BusError when the subscription dies."""
        assert self._subscription is not None, "start() first"
        while not stop.is_set():
            if self._subscription.wait(poll):
                raise BusError(
                    f"the subscription {self.settings.subscription} stopped",
                    hint="check that it exists and the credentials may pull from it",
                )

    def stop(self) -> None:
        """Stop pulling, finish the messages in flight, flush results; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.migrations is not None:
            # Migrations in flight stop following their steps and are nacked; the next
            # listener resumes them from the history.
            self.migrations.cancel.set()
        closer: threading.Thread | None = None
        timeout = self.settings.shutdown_timeout
        if self._local is not None:
            # Running local operations may finish for --drain-seconds; then the rest are
            # cancelled (each bridge deletes its pod) and their ``cancelled`` results published.
            # Their messages are held by handlers until then: close beside the subscription.
            closer = threading.Thread(
                target=self._local.close,
                kwargs={"cancel": True, "drain_seconds": self.settings.drain_seconds},
                name="tenantctl-local-close",
                daemon=True,
            )
            closer.start()
            timeout += self.settings.drain_seconds
        if self._subscription is not None:
            self._subscription.stop(timeout=timeout)
        if self.tracker is not None:
            self.tracker.stop()
        if self._tracker_thread is not None:
            self._tracker_thread.join(timeout=self.settings.shutdown_timeout)
        if closer is not None:
            closer.join()
        if self.regional is not None:
            self.regional.stop(timeout=self.settings.shutdown_timeout)

    def close(self) -> None:
        self.stop()
        if self.server is not None:
            self.server.close()
        if self._own_bus:
            self.bus.close()
        if self._own_kube and self.kube is not None:
            self.kube.close()
        if self.regional is not None:
            self.regional.close()
        if self._history_store is not None:
            self._history_store.close()
