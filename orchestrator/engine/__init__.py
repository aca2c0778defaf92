"""The local engine: the same plan as Argo (discovery, waves, bridges), run in one process.

Public API::

    engine = LocalEngine(
        plan_source=SubprocessDiscovery(settings),
        launcher=ThreadBridgeLauncher(settings),
        settings=EngineSettings(parallelism=4),
    )
    result = engine.run(RunRequest("lifecycle.upsert", "t1"), cancel=event, observer=view)
    result.status, result.exit_code, result.to_event_data()

``local_engine(...)`` builds the usual one; :class:`LocalSubmitter` gives the orchestrator a
``submit(request)`` for ``--engine local``.
"""

from __future__ import annotations

from .bridges import BridgeSettings, SubprocessBridgeLauncher
from .discovery import LibraryDiscovery, SubprocessDiscovery
from .engine import LocalEngine
from .launcher import BridgeHandle, BridgeLauncher, BridgeSpec, PlanSource
from .locks import EngineBusyError, TenantBusyError, TenantLocks
from .observer import RunObserver
from .plan import EnginePlan, PlannedJob, PlannedWave
from .request import RequestLike, RunRequest
from .result import JobResult, OperationResult
from .settings import EngineSettings
from .submitter import LocalSubmission, LocalSubmitter
from .threads import ThreadBridge, ThreadBridgeLauncher


def local_engine(
    bridge: BridgeSettings | None = None,
    *,
    settings: EngineSettings | None = None,
    locks: TenantLocks | None = None,
    discovery_in_process: bool = True,
) -> LocalEngine:
    """The usual engine: discovery in-process (``bridge.discovery``, the function
    ``python -m bridge discover`` runs; ``discovery_in_process=False`` runs that command
    instead), every bridge as a ``Runner`` in a thread of this process -- or, with
    ``EngineSettings(launcher="process")``, as a ``python -m bridge run`` subprocess."""
    bridge = bridge or BridgeSettings()
    settings = settings or EngineSettings()
    launcher: BridgeLauncher = ThreadBridgeLauncher(bridge)
    if settings.launcher == "process":
        launcher = SubprocessBridgeLauncher(bridge)
    plan_source: PlanSource = (
        LibraryDiscovery(bridge) if discovery_in_process else SubprocessDiscovery(bridge)
    )
    return LocalEngine(
        plan_source=plan_source,
        launcher=launcher,
        settings=settings,
        locks=locks,
    )


__all__ = [
    "BridgeHandle",
    "BridgeLauncher",
    "BridgeSettings",
    "BridgeSpec",
    "EngineBusyError",
    "EnginePlan",
    "EngineSettings",
    "JobResult",
    "LibraryDiscovery",
    "LocalEngine",
    "LocalSubmission",
    "LocalSubmitter",
    "OperationResult",
    "PlanSource",
    "PlannedJob",
    "PlannedWave",
    "RequestLike",
    "RunObserver",
    "RunRequest",
    "SubprocessBridgeLauncher",
    "SubprocessDiscovery",
    "TenantBusyError",
    "TenantLocks",
    "ThreadBridge",
    "ThreadBridgeLauncher",
    "local_engine",
]
