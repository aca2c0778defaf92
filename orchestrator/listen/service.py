"""The running ``tenantctl listen``: the composition root that wires a service.

:class:`Service` wires the consumer, the tracker, the metrics endpoint and a clean shutdown:
on SIGTERM it stops pulling, lets the handlers in flight finish (their messages are acked or
nacked), returns the messages it had received but not started to the bus, waits for a result
being published, and exits 0.

It is the one place that wires the pieces: the bus, the history, one engine per region (from
the region map, or one cluster's) with its result tracker, the consumer and the migration
handler (:mod:`orchestrator.listen.runtime` holds the running regions).
"""

from __future__ import annotations

import contextlib
import logging
import threading

from bridge.errors import ForbiddenError, LifecycleError
from bridge.kube import NAMESPACES, Kube
from orchestrator.argo.tracker import Tracker
from orchestrator.bus import Bus, BusError, Handler, Subscription
from orchestrator.engine import LocalSubmitter
from orchestrator.engine.journal import KubeRunJournal, NoJournal
from orchestrator.history import open_store
from orchestrator.history.recorder import HistoryRecorder
from orchestrator.listen.consumer import Consumer, ConsumerSettings
from orchestrator.listen.publisher import LocalResultPublisher
from orchestrator.listen.runtime import (
    RegionalRuntime,
    build_regional_runtime,
    region_tracker,
    step_runners_for,
)
from orchestrator.metrics import Metrics, MetricsServer
from orchestrator.migration import MigrationHandler, bus_publisher
from orchestrator.pubsub import PubSubBus, PubSubSettings, ensure_topology, resolve_pull
from orchestrator.regions import ClusterRef, Region, load_region_map
from orchestrator.regions.engines import argo_engine, local_engine
from orchestrator.settings import ListenSettings
from orchestrator.submit import Engine

log = logging.getLogger(__name__)


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
        self.bus: Bus = bus or _pubsub_bus(settings)
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
        self._local: LocalSubmitter | None = None
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
        self.migrations = self._migration_handler(retry_delay)
        self.tracker: Tracker | None = None
        if settings.track and settings.engine == "argo" and self.kube is not None:
            self.tracker = region_tracker(
                _single_region(settings),
                self.kube,
                settings,
                bus=self.bus,
                metrics=self.metrics,
                history=self.history,
            )
        self._tracker_thread: threading.Thread | None = None
        self._subscription: Subscription | None = None
        self.server: MetricsServer | None = None
        self._stopped = False

    def _build_engine(self) -> Engine:
        """One cluster's engine: the cluster is a region of its own (the same builders as a
        region map's)."""
        assert self.kube is not None  # only --regions has no single cluster
        region = _single_region(self.settings)
        if self.settings.engine == "argo":
            return argo_engine(
                region,
                self.kube,
                template=self.settings.template,
                parallelism=self.settings.parallelism,
            )
        results = LocalResultPublisher(
            self.bus, self.settings.results_topic, self.metrics, self.history
        )
        # The request is held until its result is published, and every finished job is
        # journaled: a consumer killed mid-run loses no request and runs no job twice
        # (docs/reliability.md, "A killed consumer").
        self._local = LocalSubmitter(
            local_engine(region, parallelism=self.settings.parallelism),
            on_result=results.on_result,
            on_error=results.on_error,
            max_concurrent=self.settings.max_concurrent,
            journal=KubeRunJournal(self.kube, self.settings.workflow_namespace),
            hold=True,
        )
        return self._local

    def _migration_handler(self, retry_delay: float) -> MigrationHandler | None:
        """Migrations run only across a region map. They are resumable from the history store
        (--store); without one, each delivery runs both steps."""
        if self.regional is None:
            return None
        return MigrationHandler(
            step_runners_for(self.regional, poll_seconds=self.settings.migration_poll_seconds),
            dead_letter=self.consumer._dead_letter,
            store=self._history_store,
            publish=bus_publisher(self.bus, self.settings.results_topic),
            router=self.regional.router,
            max_concurrent=self.settings.max_migrations,
            retry_delay=retry_delay,
        )

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
            _check_journal(self._local)
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


def _pubsub_bus(settings: ListenSettings) -> PubSubBus:
    return PubSubBus(
        PubSubSettings(
            project=settings.project,
            max_messages=settings.max_messages,
            max_bytes=settings.max_bytes,
            max_workers=settings.handler_threads,
            lease_seconds=settings.lease_seconds,
            pull=resolve_pull(settings.pull),
        )
    )


def _single_region(settings: ListenSettings) -> Region:
    """A single-cluster listener's cluster, as a region (no region map, no router)."""
    return Region(
        name="default",
        cluster=ClusterRef(kubeconfig=settings.kube.kubeconfig, context=settings.kube.context),
        workflow_namespace=settings.workflow_namespace,
        engine=settings.engine,
    )


def _check_journal(local: LocalSubmitter) -> None:
    """The run journal lives in the workflow namespace: without it (or without access)
    runs still work, but a killed consumer's restarted runs repeat finished jobs."""
    journal = local.journal
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
        local.journal = NoJournal()
        return
    if pruned:
        log.info("run journal: deleted %d journals of answered requests", pruned)
