"""The region router (:class:`RegionRouter`), an :class:`orchestrator.submit.Engine`: one lane
per region (a circuit breaker and a concurrency bound), each request submitted to its
tenant's region; a region that is down or busy fails fast with
:class:`RegionUnavailableError` (the consumer nacks) while the others keep flowing.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import LifecycleError, UnavailableError, UsageError
from orchestrator.events import LifecycleRequest
from orchestrator.regions.circuit import Circuit, CircuitSettings
from orchestrator.regions.map import Region, RegionMap
from orchestrator.submit import Engine, SubmitOutcome


class RegionUnavailableError(UnavailableError):
    """The region's API is unreachable (its circuit is open) or its submission slots are all
    busy: the request waits on the bus (nack) while other regions keep flowing."""

    def __init__(self, message: str, *, region: str, retry_after: float | None, hint: str) -> None:
        super().__init__(message, status=503, reason="RegionUnavailable", retry_after=retry_after)
        self.hint = hint
        self.region = region


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
