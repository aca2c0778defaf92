"""Regions: one orchestrator for several clusters, each request routed to its tenant's region.

The **region map** is a YAML file (``tenantctl listen --regions FILE``, ``tenantctl migrate
--regions FILE``)::

    defaultRegion: eu-west-1          # optional: where a request without data.region goes
    regions:
      eu-west-1:
        cluster:                      # a kubeconfig (and context) ...
          kubeconfig: /etc/tenantctl/clusters.kubeconfig
          context: eu-west-1
        workflowNamespace: argo       # default: argo
        engine: argo                  # argo (default) | local
        maxInFlight: 4                # submissions to this region at once (default 4)
      us-east-1:
        cluster: {inCluster: true}    # ... or the pod's own service account
        engine: local
        storageConfig: /etc/tenantctl/storage-us.yaml   # local engine: the bridges' storage file

It loads into frozen dataclasses (:class:`RegionMap`, :class:`Region`, :class:`ClusterRef`);
every mistake is a :class:`RegionMapError` naming the file, the region and the field.

The **router** (:class:`RegionRouter`) is an :class:`orchestrator.submit.Engine`: the consumer
calls ``submit(request)`` exactly as for one cluster, and the router

* picks the region from ``request.region`` (else the map's ``defaultRegion``); a request it
  cannot place raises :class:`UnroutableRequest` (an :class:`~orchestrator.events.InvalidEvent`
  with reason code ``unknown-region`` or ``missing-region``): the consumer dead-letters it;
* keeps one **lane** per region: a circuit breaker and a concurrency bound. When a region's API
  is unreachable (``UnavailableError``) its circuit opens for a backoff (1 s, doubling up to
  30 s); while open, that region's requests fail fast with :class:`RegionUnavailableError`
  (an ``UnavailableError``: the consumer nacks, the bus redelivers) without touching the
  network, so a dead region costs no API calls and no retry loops. After the backoff one
  request probes the region (half-open); its success closes the circuit. ``maxInFlight`` bounds
  the submissions to one region at once: a region whose API hangs can hold at most that many of
  the consumer's handler threads, the others keep serving the other regions.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from bridge.errors import LifecycleError, UnavailableError, UsageError
from bridge.kube import KubeSettings

from .events import InvalidEvent, LifecycleRequest
from .naming import DEFAULT_WORKFLOW_NAMESPACE
from .submit import Engine, SubmitOutcome

ENGINES: Final = ("argo", "local")
DEFAULT_MAX_IN_FLIGHT: Final = 4
UNKNOWN_REGION: Final = "unknown-region"
MISSING_REGION: Final = "missing-region"

_REGION_NAME_HINT = "lower-case letters, digits and '-', e.g. eu-west-1"
_NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


class RegionMapError(UsageError):
    """The region map file is unreadable or wrong; the message names file, region and field."""


class UnroutableRequest(InvalidEvent):
    """A valid request no configured region can take (reason code ``unknown-region`` or
    ``missing-region``)."""


class RegionUnavailableError(UnavailableError):
    """The region's API is unreachable (its circuit is open) or its submission slots are all
    busy: the request waits on the bus (nack) while other regions keep flowing."""

    def __init__(self, message: str, *, region: str, retry_after: float | None, hint: str) -> None:
        super().__init__(message, status=503, reason="RegionUnavailable", retry_after=retry_after)
        self.hint = hint
        self.region = region


# --------------------------------------------------------------------------------------------
# the map
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterRef:
    """How to reach one region's Kubernetes API."""

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False

    def kube_settings(self, base: KubeSettings | None = None) -> KubeSettings:
        """``base`` (timeouts, retries) pointed at this cluster."""
        return dataclasses.replace(
            base or KubeSettings(),
            kubeconfig=self.kubeconfig,
            context=self.context,
            in_cluster=self.in_cluster,
        )


@dataclass(frozen=True)
class Region:
    name: str
    cluster: ClusterRef
    workflow_namespace: str = DEFAULT_WORKFLOW_NAMESPACE
    engine: str = "argo"
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    storage_config: str | None = None


@dataclass(frozen=True)
class RegionMap:
    regions: tuple[Region, ...]
    default_region: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        names = [r.name for r in self.regions]
        if not names:
            raise RegionMapError(
                f"{self.source or 'region map'}: regions: no region is configured",
                hint="add at least one region under regions:",
            )
        if len(set(names)) != len(names):
            raise RegionMapError(f"{self.source or 'region map'}: regions: a name is repeated")
        if self.default_region is not None and self.default_region not in names:
            raise RegionMapError(
                f"{self.source or 'region map'}: defaultRegion: {self.default_region!r} is not "
                "one of the regions",
                hint=f"use one of {', '.join(names)}, or leave defaultRegion out",
            )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    def __iter__(self) -> Iterator[Region]:
        return iter(self.regions)

    def get(self, name: str) -> Region:
        """The region called ``name``; :class:`RegionMapError` (a UsageError) otherwise."""
        for region in self.regions:
            if region.name == name:
                return region
        raise RegionMapError(
            f"region {name!r} is not in the region map {self.source}".rstrip(),
            hint=f"use one of {', '.join(self.names)}",
        )

    def resolve(self, region: str | None) -> Region:
        """The region a request goes to; :class:`UnroutableRequest` when there is none."""
        if region is None:
            if self.default_region is None:
                raise UnroutableRequest(
                    MISSING_REGION,
                    "data.region is missing and no default region is configured",
                    field="data.region",
                    hint=f"set data.region to one of {', '.join(self.names)}",
                )
            return self.get(self.default_region)
        for candidate in self.regions:
            if candidate.name == region:
                return candidate
        raise UnroutableRequest(
            UNKNOWN_REGION,
            f"data.region {region!r} is not a region this orchestrator serves",
            field="data.region",
            hint=f"use one of {', '.join(self.names)}",
        )


def load_region_map(path: str | Path) -> RegionMap:
    """Read and check the region map file (relative paths in it are relative to the file)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RegionMapError(
            f"cannot read the region map {source}: {exc.strerror or exc}",
            hint="pass --regions with a YAML file (docs/regions.md)",
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RegionMapError(f"{source}{where}: invalid YAML", hint="see docs/regions.md") from exc
    return parse_region_map(data, source=source, base_dir=Path(path).resolve().parent)


def parse_region_map(data: Any, *, source: str = "", base_dir: Path | None = None) -> RegionMap:
    """Check the decoded YAML document and build the :class:`RegionMap`."""
    where = source or "region map"
    if not isinstance(data, Mapping):
        raise RegionMapError(
            f"{where}: expected a mapping with regions:, got {_type(data)}",
            hint="see docs/regions.md",
        )
    unknown = sorted(set(data) - {"regions", "defaultRegion"})
    if unknown:
        raise RegionMapError(
            f"{where}: unknown key {unknown[0]!r}", hint="the keys are regions and defaultRegion"
        )
    raw_regions = data.get("regions")
    if not isinstance(raw_regions, Mapping) or not raw_regions:
        raise RegionMapError(
            f"{where}: regions: expected a mapping of region name to settings, got "
            f"{_type(raw_regions)}",
            hint="regions: {eu-west-1: {cluster: {context: eu-west-1}}}",
        )
    regions = tuple(
        _parse_region(name, body, where=where, base_dir=base_dir)
        for name, body in raw_regions.items()
    )
    default = data.get("defaultRegion")
    if default is not None and not isinstance(default, str):
        raise RegionMapError(
            f"{where}: defaultRegion: expected a region name, got {_type(default)}"
        )
    return RegionMap(regions=regions, default_region=default, source=source)


_REGION_KEYS = frozenset({"cluster", "workflowNamespace", "engine", "maxInFlight", "storageConfig"})
_CLUSTER_KEYS = frozenset({"kubeconfig", "context", "inCluster"})


def _parse_region(name: Any, body: Any, *, where: str, base_dir: Path | None) -> Region:
    if not isinstance(name, str) or not _valid_region_name(name):
        raise RegionMapError(
            f"{where}: regions: {name!r} is not a region name", hint=_REGION_NAME_HINT
        )
    at = f"{where}: regions.{name}"
    if not isinstance(body, Mapping):
        raise RegionMapError(f"{at}: expected a mapping, got {_type(body)}", hint="cluster: ...")
    unknown = sorted(set(body) - _REGION_KEYS)
    if unknown:
        raise RegionMapError(
            f"{at}: unknown key {unknown[0]!r}",
            hint=f"the keys are {', '.join(sorted(_REGION_KEYS))}",
        )
    cluster = _parse_cluster(body.get("cluster"), at=f"{at}.cluster", base_dir=base_dir)
    namespace = body.get("workflowNamespace", DEFAULT_WORKFLOW_NAMESPACE)
    if not isinstance(namespace, str) or not _valid_namespace(namespace):
        raise RegionMapError(
            f"{at}.workflowNamespace: {namespace!r} is not a namespace name",
            hint="lower-case letters, digits and '-', e.g. argo",
        )
    engine = body.get("engine", "argo")
    if engine not in ENGINES:
        raise RegionMapError(
            f"{at}.engine: {engine!r} is not an engine", hint=f"use one of {', '.join(ENGINES)}"
        )
    limit = body.get("maxInFlight", DEFAULT_MAX_IN_FLIGHT)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise RegionMapError(f"{at}.maxInFlight: {limit!r} must be a whole number, 1 or more")
    storage = _optional_path(body.get("storageConfig"), at=f"{at}.storageConfig", base=base_dir)
    return Region(
        name=name,
        cluster=cluster,
        workflow_namespace=namespace,
        engine=str(engine),
        max_in_flight=limit,
        storage_config=storage,
    )


def _parse_cluster(body: Any, *, at: str, base_dir: Path | None) -> ClusterRef:
    if body is None:
        raise RegionMapError(
            f"{at}: missing",
            hint="give cluster: {kubeconfig: FILE, context: NAME} or {inCluster: true}",
        )
    if not isinstance(body, Mapping):
        raise RegionMapError(f"{at}: expected a mapping, got {_type(body)}")
    unknown = sorted(set(body) - _CLUSTER_KEYS)
    if unknown:
        raise RegionMapError(
            f"{at}: unknown key {unknown[0]!r}", hint="the keys are kubeconfig, context, inCluster"
        )
    in_cluster = body.get("inCluster", False)
    if not isinstance(in_cluster, bool):
        raise RegionMapError(f"{at}.inCluster: expected true or false, got {in_cluster!r}")
    kubeconfig = _optional_path(body.get("kubeconfig"), at=f"{at}.kubeconfig", base=base_dir)
    context = body.get("context")
    if context is not None and (not isinstance(context, str) or not context):
        raise RegionMapError(f"{at}.context: expected a context name, got {context!r}")
    if in_cluster and (kubeconfig or context):
        raise RegionMapError(
            f"{at}: inCluster cannot be combined with kubeconfig/context",
            hint="the pod's own cluster is inCluster, every other one is reached by kubeconfig",
        )
    if not in_cluster and not kubeconfig and not context:
        raise RegionMapError(
            f"{at}: says neither kubeconfig, context nor inCluster",
            hint="give kubeconfig: FILE and/or context: NAME, or inCluster: true",
        )
    return ClusterRef(kubeconfig=kubeconfig, context=context, in_cluster=in_cluster)


def _optional_path(value: Any, *, at: str, base: Path | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RegionMapError(f"{at}: expected a file path, got {value!r}")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path)


def _valid_region_name(name: str) -> bool:
    return (
        0 < len(name) <= 63 and set(name) <= _NAMESPACE_CHARS and name[0] != "-" and name[-1] != "-"
    )


def _valid_namespace(name: str) -> bool:
    return _valid_region_name(name)


def _type(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


# --------------------------------------------------------------------------------------------
# the circuit breaker of one region
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CircuitSettings:
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    multiplier: float = 2.0


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Circuit:
    """Closed (calls go through) -> open after a failure (calls fail fast for the backoff) ->
    half-open (one probe goes through; success closes, failure reopens with a longer backoff).
    Thread-safe; the clock is injectable for tests."""

    def __init__(
        self, settings: CircuitSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self.state = CLOSED
        self.failures = 0
        self._open_until = 0.0
        self._probing = False

    def admit(self) -> float | None:
        """``None``: go ahead (report :meth:`success`/:meth:`failure`/:meth:`release`);
        a number: refused, retry in that many seconds."""
        with self._lock:
            if self.state == CLOSED:
                return None
            now = self._clock()
            if now < self._open_until:
                return self._open_until - now
            if self._probing:  # someone is already probing: everybody else waits a little
                return min(self.settings.initial_backoff, self._backoff())
            self.state = HALF_OPEN
            self._probing = True
            return None

    def success(self) -> None:
        with self._lock:
            self.state = CLOSED
            self.failures = 0
            self._probing = False

    def failure(self, retry_after: float | None = None) -> float:
        """Open (again); returns the backoff chosen. A server's ``Retry-After`` lengthens it,
        never beyond ``max_backoff`` (a region must be probed again within that)."""
        with self._lock:
            self.failures += 1
            self._probing = False
            backoff = self._backoff()
            if retry_after:
                backoff = max(backoff, min(float(retry_after), self.settings.max_backoff))
            self.state = OPEN
            self._open_until = self._clock() + backoff
            return backoff

    def release(self) -> None:
        """The call ended without telling anything about reachability (e.g. a 409): a probe
        that got an answer proves the API is reachable."""
        with self._lock:
            if self._probing:
                self.state = CLOSED
                self.failures = 0
                self._probing = False

    def abandon(self) -> None:
        """The admitted call was not made (no slot) or ended in a bug: it proves nothing, so a
        probe it held goes to the next caller."""
        with self._lock:
            self._probing = False

    def retry_in(self) -> float:
        with self._lock:
            return max(0.0, self._open_until - self._clock()) if self.state == OPEN else 0.0

    def _backoff(self) -> float:
        s = self.settings
        exponent = max(0, self.failures - 1)
        return float(min(s.max_backoff, s.initial_backoff * s.multiplier**exponent))


# --------------------------------------------------------------------------------------------
# the router
# --------------------------------------------------------------------------------------------


@dataclass
class Lane:
    """One region's engine, circuit and submission slots."""

    region: Region
    engine: Engine
    circuit: Circuit
    slots: threading.BoundedSemaphore
    in_flight: int = 0
    submitted: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class RegionRouter:
    """An :class:`~orchestrator.submit.Engine` that submits each request in its region."""

    name = "regions"

    def __init__(
        self,
        region_map: RegionMap,
        engines: Mapping[str, Engine],
        *,
        circuit: CircuitSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        busy_retry_after: float = 0.5,
    ) -> None:
        missing = [name for name in region_map.names if name not in engines]
        if missing:
            raise UsageError(f"no engine was built for region(s) {', '.join(missing)}")
        self.region_map = region_map
        self.busy_retry_after = busy_retry_after
        settings = circuit or CircuitSettings()
        self.lanes: dict[str, Lane] = {
            region.name: Lane(
                region=region,
                engine=engines[region.name],
                circuit=Circuit(settings, clock=clock),
                slots=threading.BoundedSemaphore(region.max_in_flight),
            )
            for region in region_map
        }

    def route(self, request: LifecycleRequest) -> Region:
        """The region of ``request`` (raises :class:`UnroutableRequest`)."""
        return self.region_map.resolve(request.region)

    def submit(self, request: LifecycleRequest) -> SubmitOutcome:
        region = self.route(request)
        if request.region != region.name:  # the default region: say so on the Workflow
            request = dataclasses.replace(request, region=region.name)
        lane = self.lanes[region.name]
        wait = lane.circuit.admit()
        if wait is not None:
            self._count_refused(lane)
            raise RegionUnavailableError(
                f"region {region.name} is unavailable (its API failed; retrying in {wait:.1f}s): "
                f"request {request.batch_operation_id} waits on the bus",
                region=region.name,
                retry_after=wait,
                hint="the message is redelivered; other regions keep flowing",
            )
        if not lane.slots.acquire(blocking=False):
            lane.circuit.abandon()
            self._count_refused(lane)
            raise RegionUnavailableError(
                f"region {region.name} has {region.max_in_flight} submissions in flight: "
                f"request {request.batch_operation_id} waits on the bus",
                region=region.name,
                retry_after=self.busy_retry_after,
                hint=f"raise maxInFlight of region {region.name} if its API is healthy",
            )
        with lane.lock:
            lane.in_flight += 1
        try:
            outcome = lane.engine.submit(request)
        except UnavailableError as exc:
            backoff = lane.circuit.failure(exc.retry_after)
            raise RegionUnavailableError(
                f"region {region.name}: {exc.message} (circuit open for {backoff:g}s)",
                region=region.name,
                # Our backoff, not the server's raw Retry-After: the consumer holds a handler
                # thread for this long before the nack, and the circuit already honours it.
                retry_after=backoff,
                hint="the message is redelivered; other regions keep flowing",
            ) from exc
        except LifecycleError:
            lane.circuit.release()  # the API answered: it is reachable
            raise
        except BaseException:
            lane.circuit.abandon()
            raise
        finally:
            with lane.lock:
                lane.in_flight -= 1
            lane.slots.release()
        lane.circuit.success()
        with lane.lock:
            lane.submitted += 1
        return outcome

    def _count_refused(self, lane: Lane) -> None:
        with lane.lock:
            lane.refused += 1

    def status(self) -> dict[str, dict[str, Any]]:
        """Per region: circuit state, failures in a row, seconds until the next probe,
        submissions in flight, submitted and refused counts (for /healthz and logs)."""
        out: dict[str, dict[str, Any]] = {}
        for name, lane in self.lanes.items():
            with lane.lock:
                out[name] = {
                    "circuit": lane.circuit.state,
                    "failures": lane.circuit.failures,
                    "retryIn": round(lane.circuit.retry_in(), 3),
                    "inFlight": lane.in_flight,
                    "submitted": lane.submitted,
                    "refused": lane.refused,
                }
        return out


# --------------------------------------------------------------------------------------------
# the running regions of `tenantctl listen`
# --------------------------------------------------------------------------------------------


@dataclass
class RegionalRuntime:
    """What ``tenantctl listen --regions`` runs: the router, one Kubernetes client and (Argo)
    one result tracker per region, or (local) one in-process submitter per region.

    ``start()`` starts the trackers, ``stop()`` stops them and cancels local runs, ``close()``
    also closes the clients; ``health()`` is unhealthy only when every region's tracker is.
    """

    router: RegionRouter
    kubes: dict[str, Any] = field(default_factory=dict)
    trackers: dict[str, Any] = field(default_factory=dict)
    local: dict[str, Any] = field(default_factory=dict)
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
    settings: Any,
    *,
    bus: Any,
    metrics: Any,
    kubes: Mapping[str, Any] | None = None,
    circuit: CircuitSettings | None = None,
    history: Any = None,
) -> RegionalRuntime:
    """Build every region's engine from ``settings`` (a :class:`~orchestrator.settings.
    ListenSettings`: template, parallelism, results topic, tracker and kube retry settings).

    ``kubes`` may supply a client per region (tests); the others are made from the region's
    cluster reference and closed by :meth:`RegionalRuntime.close`. ``history`` (a
    :class:`~orchestrator.history.recorder.HistoryRecorder`) records every region's results.
    """
    # Imported here: the service module imports this one lazily, and the engine is heavy.
    from bridge.kube import Kube  # noqa: PLC0415

    from .engine import BridgeSettings, EngineSettings, LocalSubmitter, local_engine  # noqa: PLC0415
    from .service import LocalResultPublisher  # noqa: PLC0415
    from .submit import ArgoEngine  # noqa: PLC0415
    from .tracker import ResultPublisher, Tracker  # noqa: PLC0415

    given = dict(kubes or {})
    runtime_kubes: dict[str, Any] = {}
    owned: list[str] = []
    engines: dict[str, Engine] = {}
    trackers: dict[str, Any] = {}
    local: dict[str, Any] = {}
    try:
        for region in region_map:
            if region.engine == "argo":
                kube = given.get(region.name)
                if kube is None:
                    kube = Kube(settings=region.cluster.kube_settings(settings.kube))
                    owned.append(region.name)
                runtime_kubes[region.name] = kube
                engines[region.name] = ArgoEngine(
                    kube,
                    namespace=region.workflow_namespace,
                    template=settings.template,
                    parallelism=settings.parallelism,
                )
                if settings.track:
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
                    trackers[region.name] = Tracker(
                        kube,
                        publisher,
                        namespace=region.workflow_namespace,
                        watch_timeout=settings.watch_timeout,
                    )
            else:
                env = (
                    {"BRIDGE_STORAGE_CONFIG": region.storage_config}
                    if region.storage_config
                    else {}
                )
                bridge = BridgeSettings(
                    kubeconfig=region.cluster.kubeconfig, context=region.cluster.context, env=env
                )
                results = LocalResultPublisher(bus, settings.results_topic, metrics, history)
                submitter = LocalSubmitter(
                    local_engine(bridge, settings=EngineSettings(parallelism=settings.parallelism)),
                    on_result=results.on_result,
                    on_error=results.on_error,
                    max_concurrent=settings.max_concurrent,
                )
                local[region.name] = submitter
                engines[region.name] = submitter
        router = RegionRouter(region_map, engines, circuit=circuit)
    except BaseException:
        for name in owned:
            runtime_kubes[name].close()
        raise
    return RegionalRuntime(
        router=router,
        kubes=runtime_kubes,
        trackers=trackers,
        local=local,
        owned_kubes=tuple(owned),
    )
