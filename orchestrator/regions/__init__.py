"""Regions: one orchestrator for several clusters, each request routed to its tenant's region.

The **region map** (:mod:`.map`, the file's format is in its docstring) loads into frozen
dataclasses (:class:`RegionMap`, :class:`Region`, :class:`ClusterRef`); every mistake is a
:class:`RegionMapError` naming the file, the region and the field.

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

One module per part: :mod:`.map` (the file and its dataclasses), :mod:`.circuit`, :mod:`.router`
and :mod:`.engines` (the one place that builds a region's engine, for ``tenantctl listen`` and
``tenantctl migrate`` alike).
"""

from orchestrator.regions.circuit import CLOSED, HALF_OPEN, OPEN, Circuit, CircuitSettings
from orchestrator.regions.map import (
    DEFAULT_MAX_IN_FLIGHT,
    ENGINES,
    MISSING_REGION,
    UNKNOWN_REGION,
    ClusterRef,
    Region,
    RegionMap,
    RegionMapError,
    UnroutableRequest,
    load_region_map,
    parse_region_map,
)
from orchestrator.regions.router import Lane, RegionRouter, RegionUnavailableError

__all__ = [
    "CLOSED",
    "DEFAULT_MAX_IN_FLIGHT",
    "ENGINES",
    "HALF_OPEN",
    "MISSING_REGION",
    "OPEN",
    "UNKNOWN_REGION",
    "Circuit",
    "CircuitSettings",
    "ClusterRef",
    "Lane",
    "Region",
    "RegionMap",
    "RegionMapError",
    "RegionRouter",
    "RegionUnavailableError",
    "UnroutableRequest",
    "load_region_map",
    "parse_region_map",
]
