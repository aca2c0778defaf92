"""The running regions of ``tenantctl listen``: one engine per region (built by
:mod:`orchestrator.regions.engines`), behind the region router, with (Argo) one result tracker
per region or (local) one in-process submitter whose results go to the bus.

A single-cluster listener has no region map and builds its one engine in
:class:`orchestrator.listen.service.Service` from the same builders.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.kube import Kube
from orchestrator.argo.submit import ArgoEngine
from orchestrator.argo.tracker import ResultPublisher, Tracker
from orchestrator.bus import Bus
from orchestrator.engine import LocalSubmitter
from orchestrator.history.recorder import HistoryRecorder
from orchestrator.listen.publisher import LocalResultPublisher
from orchestrator.metrics import Metrics
from orchestrator.migration import ArgoStepRunner, LocalStepRunner, StepRunner
from orchestrator.regions import CircuitSettings, Region, RegionMap, RegionRouter
from orchestrator.regions.engines import argo_engine, local_engine
from orchestrator.settings import ListenSettings
from orchestrator.submit import Engine


@dataclass
class RegionalRuntime:
    """What ``tenantctl listen --regions`` runs: the router, one Kubernetes client and (Argo)
    one result tracker per region, or (local) one in-process submitter per region.

    ``start()`` starts the trackers, ``stop()`` stops them and cancels local runs, ``close()``
    also closes the clients; ``health()`` is unhealthy only when every region's tracker is.
    """

    router: RegionRouter
    kubes: dict[str, Kube] = field(default_factory=dict)
    trackers: dict[str, Tracker] = field(default_factory=dict)
    local: dict[str, LocalSubmitter] = field(default_factory=dict)
    owned_kubes: tuple[str, ...] = ()
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for name, tracker in self.trackers.items():
            thread = threading.Thread(
                target=tracker.run, name=f"tenantctl-tracker-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def health(self) -> tuple[bool, str]:
        """Unhealthy only when *every* region's tracker is failing: one region's outage is
        that region's problem, and restarting the listener would not help the others."""
        failing = {
            name: tracker.last_error
            for name, tracker in self.trackers.items()
            if not tracker.healthy
        }
        detail = "; ".join(f"tracker of region {name}: {error}" for name, error in failing.items())
        if failing and len(failing) == len(self.trackers):
            return False, detail
        return True, f"ok ({detail})" if detail else "ok"

    def stop(self, *, timeout: float | None = None) -> None:
        for tracker in self.trackers.values():
            tracker.stop()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self._threads.clear()
        for submitter in self.local.values():
            # Running local operations are cancelled (each bridge deletes its pod); their
            # ``cancelled`` results are still published.
            submitter.close(cancel=True)

    def close(self, *, timeout: float | None = None) -> None:
        self.stop(timeout=timeout)
        for name in self.owned_kubes:
            self.kubes[name].close()


def build_regional_runtime(
    region_map: RegionMap,
    settings: ListenSettings,
    *,
    bus: Bus,
    metrics: Metrics,
    kubes: Mapping[str, Kube] | None = None,
    circuit: CircuitSettings | None = None,
    history: HistoryRecorder | None = None,
) -> RegionalRuntime:
    """Build every region's engine from ``settings`` (a :class:`~orchestrator.settings.
    ListenSettings`: template, parallelism, results topic, tracker and kube retry settings).

    ``kubes`` may supply a client per region (tests); the others are made from the region's
    cluster reference and closed by :meth:`RegionalRuntime.close`. ``history`` (a
    :class:`~orchestrator.history.recorder.HistoryRecorder`) records every region's results.
    """
    given = dict(kubes or {})
    built_kubes: dict[str, Kube] = {}
    trackers: dict[str, Tracker] = {}
    local: dict[str, LocalSubmitter] = {}
    engines: dict[str, Engine] = {}
    owned: list[str] = []
    try:
        for region in region_map:
            if region.engine == "argo":
                kube = given.get(region.name)
                if kube is None:
                    kube = Kube(settings=region.cluster.kube_settings(settings.kube))
                    owned.append(region.name)
                built_kubes[region.name] = kube
                engines[region.name] = argo_engine(
                    region, kube, template=settings.template, parallelism=settings.parallelism
                )
                if settings.track:
                    trackers[region.name] = region_tracker(
                        region, kube, settings, bus=bus, metrics=metrics, history=history
                    )
            else:
                results = LocalResultPublisher(bus, settings.results_topic, metrics, history)
                submitter = LocalSubmitter(
                    local_engine(region, parallelism=settings.parallelism),
                    on_result=results.on_result,
                    on_error=results.on_error,
                    max_concurrent=settings.max_concurrent,
                )
                local[region.name] = submitter
                engines[region.name] = submitter
        router = RegionRouter(region_map, engines, circuit=circuit)
    except BaseException:
        for name in owned:
            built_kubes[name].close()
        raise
    return RegionalRuntime(
        router=router, kubes=built_kubes, trackers=trackers, local=local, owned_kubes=tuple(owned)
    )


def region_tracker(
    region: Region,
    kube: Kube,
    settings: ListenSettings,
    *,
    bus: Bus,
    metrics: Metrics,
    history: HistoryRecorder | None,
) -> Tracker:
    """The result tracker of one Argo region (or of a single-cluster listener)."""
    publisher = ResultPublisher(
        kube,
        bus,
        namespace=region.workflow_namespace,
        topic=settings.results_topic,
        owner=settings.owner,
        claim_ttl=settings.claim_ttl,
        metrics=metrics,
        history=history,
    )
    return Tracker(
        kube, publisher, namespace=region.workflow_namespace, watch_timeout=settings.watch_timeout
    )


def step_runners_for(
    runtime: RegionalRuntime, *, poll_seconds: float = 5.0
) -> dict[str, StepRunner]:
    """Migration step runners that share the listener's running regions: its Argo engines and
    local engines."""
    runners: dict[str, StepRunner] = {}
    for name, lane in runtime.router.lanes.items():
        engine = lane.engine
        if isinstance(engine, LocalSubmitter):
            runners[name] = LocalStepRunner(engine.engine)
        elif isinstance(engine, ArgoEngine):
            # A listener shutting down leaves the step's Workflow running (detached): the
            # redelivered request follows the same Workflow again.
            runners[name] = ArgoStepRunner(engine, poll_seconds=poll_seconds, stop_on_cancel=False)
        else:
            # Said at start-up, not as "no runner" when a migration first reaches the region.
            raise TypeError(
                f"region {name}: no migration step runner for a {type(engine).__name__} engine"
            )
    return runners
