"""Running one migration step in one region: through the local engine in this process
(:class:`LocalStepRunner`) or as a Workflow followed to its end (:class:`ArgoStepRunner`).
:func:`region_runners` builds them from a region map (``tenantctl migrate``);
``tenantctl listen --regions`` builds them on its running regions
(:func:`orchestrator.listen.runtime.step_runners_for`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from bridge.kube import Kube, KubeSettings
from orchestrator.argo.follow import run_workflow
from orchestrator.argo.submit import ArgoEngine
from orchestrator.engine import LocalEngine
from orchestrator.events import LifecycleRequest
from orchestrator.migration.saga import StepRunner
from orchestrator.outcome import RunOutcome, local_outcome
from orchestrator.regions import RegionMap
from orchestrator.regions.engines import argo_engine, local_engine


class LocalStepRunner:
    """A step through the local engine (discovery, waves, bridges) in this process."""

    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine

    def run(self, request: LifecycleRequest, *, cancel: threading.Event) -> RunOutcome:
        return local_outcome(self.engine.run(request, cancel=cancel))


class ArgoStepRunner:
    """A step as a Workflow from the WorkflowTemplate in the region's cluster, followed until it
    ends (the same submission ``tenantctl listen`` makes; the name comes from the step id)."""

    def __init__(
        self, engine: ArgoEngine, *, poll_seconds: float = 5.0, stop_on_cancel: bool = True
    ) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        # True (tenantctl migrate, Ctrl-C): stop the Workflow. False (a listener shutting
        # down): leave it running and report the step detached; the next run follows it.
        self.stop_on_cancel = stop_on_cancel

    def run(self, request: LifecycleRequest, *, cancel: threading.Event) -> RunOutcome:
        return run_workflow(
            self.engine,
            request,
            cancel=cancel,
            poll_seconds=self.poll_seconds,
            stop_on_cancel=self.stop_on_cancel,
        )


@contextmanager
def region_runners(
    region_map: RegionMap,
    names: Sequence[str],
    *,
    kube: KubeSettings | None = None,
    parallelism: int = 10,
    poll_seconds: float = 5.0,
) -> Iterator[dict[str, StepRunner]]:
    """A :class:`StepRunner` for each region in ``names`` (its engine from the map); the
    Kubernetes clients are closed at the end."""
    runners: dict[str, StepRunner] = {}
    with ExitStack() as stack:
        for name in names:
            region = region_map.get(name)
            if region.engine == "local":
                runners[name] = LocalStepRunner(local_engine(region, parallelism=parallelism))
            else:
                client = stack.enter_context(Kube(settings=region.cluster.kube_settings(kube)))
                runners[name] = ArgoStepRunner(
                    argo_engine(region, client, parallelism=parallelism),
                    poll_seconds=poll_seconds,
                )
        yield runners
