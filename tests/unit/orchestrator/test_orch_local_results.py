"""The local engine's result publisher: an acked request always gets its one result event."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from bridge.errors import RefusedError
from orchestrator.bus import BusError
from orchestrator.events import LifecycleRequest
from orchestrator.listen import LocalResultPublisher
from orchestrator.metrics import Metrics
from tests.support.bus import FakeBus

RESULTS = "results"


class FlakyBus(FakeBus):
    """Refuses the first ``failures`` publishes, like a bus that is briefly unreachable."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise BusError("Pub/Sub publish failed: 503 unavailable")
        return super().publish(topic, data, attributes)


def test_a_result_is_published_once_after_the_bus_comes_back() -> None:
    bus, metrics, pauses = FlakyBus(failures=3), Metrics(), []
    publisher = LocalResultPublisher(bus, RESULTS, metrics, sleep=pauses.append)
    request = LifecycleRequest("batch-1", "tenant-1", "lifecycle.upsert")
    publisher.on_error(request, RefusedError("tenant tenant-1 is busy"))
    published = bus.published[RESULTS]
    assert len(published) == 1
    event = json.loads(published[0].data)
    assert (event["id"], event["data"]["status"]) == ("batch-1", "failed")
    assert len(pauses) == 3
    assert metrics.value("tenantctl_results_published_total", status="failed") == 1


def test_a_local_result_observes_the_end_to_end_latency_like_the_argo_path() -> None:
    bus, metrics = FakeBus(), Metrics()
    publisher = LocalResultPublisher(bus, RESULTS, metrics)
    request = LifecycleRequest(
        "batch-2", "tenant-1", "lifecycle.upsert", time=datetime.now(UTC) - timedelta(seconds=90)
    )
    publisher.on_error(request, RefusedError("tenant tenant-1 is busy"))
    assert metrics.value("tenantctl_end_to_end_latency_seconds_count") == 1
    assert metrics.value("tenantctl_end_to_end_latency_seconds_bucket", le="60.0") == 0
    assert metrics.value("tenantctl_end_to_end_latency_seconds_bucket", le="120.0") == 1
