"""Routing through the real bus: two sandboxes as two regions, the Pub/Sub emulator between.

The consumer of ``tenantctl listen`` with the region router as its engine (built from a region
map file that points at each sandbox's kubeconfig), Argo engine in both regions: a request
becomes a Workflow in its own region's cluster and nowhere else; a region whose API is down
holds its requests on the bus (nacked) while the other region's requests are submitted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.kube import WORKFLOWS, Kube, KubeSettings
from orchestrator.bus import Disposition, Message
from orchestrator.events import encode_event, parse_request, request_event
from orchestrator.listen import Consumer, ConsumerSettings
from orchestrator.listen.runtime import RegionalRuntime, build_regional_runtime
from orchestrator.metrics import Metrics
from orchestrator.pubsub import PubSubBus, PubSubSettings
from orchestrator.regions import CircuitSettings, load_region_map
from orchestrator.settings import ListenSettings
from sandbox import Sandbox

NAMESPACE = "tenant-lifecycle"  # the default workflowNamespace of a region (the map sets none)


@dataclass
class Regions:
    a: Sandbox
    b: Sandbox
    runtime: RegionalRuntime
    consumer: Consumer
    bus: PubSubBus
    topology: Any
    handled: list[tuple[str, str, Disposition]]  # (batch id, region, disposition) in order

    def publish(self, *requests: tuple[str, str]) -> None:
        """Publish (batch id, region) requests for tenants of their own."""
        items = []
        for batch, region in requests:
            event = request_event(
                "lifecycle.upsert",
                tenant_env_id=f"tenant-{batch}",
                batch_operation_id=batch,
                region=region,
            )
            items.append((encode_event(event), {"origin": "test"}))
        self.bus.publish_many(self.topology.request_topic, items)

    def workflows(self, sb: Sandbox) -> set[str]:
        with Kube(host=sb.url, token=sb.admin_token) as kube:
            return {
                w["metadata"]["labels"]["tenant-lifecycle.dev/batch"]
                for w in kube.list(WORKFLOWS, namespace=NAMESPACE)
            }


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def regions(
    sandbox_factory: Callable[..., Sandbox], pubsub_topology: Any, tmp_path: Path
) -> Iterator[Regions]:
    a, b = sandbox_factory(rbac=False), sandbox_factory(rbac=False)
    for sb in (a, b):
        sb.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}])
    path = tmp_path / "regions.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "regions": {
                    "region-a": {"cluster": {"kubeconfig": str(a.kubeconfig_path())}},
                    "region-b": {"cluster": {"kubeconfig": str(b.kubeconfig_path())}},
                }
            }
        )
    )
    t = pubsub_topology
    settings = ListenSettings(
        project=t.project,
        subscription=t.subscription,
        results_topic=t.results_topic,
        dead_letter_topic=t.dead_letter_topic,
        workflow_namespace=NAMESPACE,
        track=False,  # no Argo controller in a sandbox: nothing would ever finish
        metrics_port=-1,
        kube=KubeSettings(max_retries=0, backoff_base=0.05, backoff_max=0.1, request_timeout=5.0),
    )
    bus = PubSubBus(PubSubSettings(project=t.project, max_workers=4))
    metrics = Metrics()
    runtime = build_regional_runtime(
        load_region_map(path),
        settings,
        bus=bus,
        metrics=metrics,
        circuit=CircuitSettings(initial_backoff=0.3, max_backoff=1.0),
    )
    consumer = Consumer(
        runtime.router,
        bus,
        settings=ConsumerSettings(dead_letter_topic=t.dead_letter_topic, retry_delay=0.1),
        metrics=metrics,
    )
    handled: list[tuple[str, str, Disposition]] = []
    lock = threading.Lock()

    def handle(message: Message) -> Disposition:
        disposition = consumer.handle(message)
        request = parse_request(message.data)
        with lock:
            handled.append((request.batch_operation_id, str(request.region), disposition))
        return disposition

    subscription = bus.subscribe(t.subscription, handle)
    try:
        yield Regions(a, b, runtime, consumer, bus, t, handled)
    finally:
        subscription.stop(timeout=10)
        runtime.close()
        bus.close()


def test_requests_for_each_region_land_only_in_that_regions_cluster(regions: Regions) -> None:
    a_batches = {f"route-a-{i}" for i in range(3)}
    b_batches = {f"route-b-{i}" for i in range(3)}
    regions.publish(*[(x, "region-a") for x in a_batches], *[(x, "region-b") for x in b_batches])
    wait_for(lambda: regions.workflows(regions.a) == a_batches)
    wait_for(lambda: regions.workflows(regions.b) == b_batches)
    time.sleep(0.3)  # nothing else arrives late
    assert regions.workflows(regions.a) == a_batches
    assert regions.workflows(regions.b) == b_batches
    status = regions.runtime.router.status()
    assert status["region-a"]["submitted"] == 3
    assert status["region-b"]["submitted"] == 3


def test_a_down_region_waits_on_the_bus_while_the_other_keeps_flowing(regions: Regions) -> None:
    regions.a.faults.unavailable(120)  # until cleared below
    a_batches = {f"down-a-{i}" for i in range(3)}
    b_batches = {f"down-b-{i}" for i in range(3)}
    regions.publish(*[(x, "region-a") for x in a_batches])
    regions.publish(*[(x, "region-b") for x in b_batches])

    # Region B's requests are all submitted while region A is still down...
    wait_for(lambda: regions.workflows(regions.b) == b_batches)
    assert regions.a.faults.is_unavailable()
    # ...and region A's were handled meanwhile, and returned to the bus (nacked), never acked.
    wait_for(lambda: {b for b, _, d in regions.handled if d is not Disposition.ACK} == a_batches)
    a_outcomes = [d for batch, _, d in regions.handled if batch in a_batches]
    assert Disposition.ACK not in a_outcomes
    # Redeliveries while the circuit is open are answered by it, without an API call.
    wait_for(lambda: regions.runtime.router.status()["region-a"]["refused"] > 0)
    assert regions.runtime.router.status()["region-a"]["circuit"] in ("open", "half-open")

    wait_for(lambda: {b for b, _, d in regions.handled if d is Disposition.ACK} == b_batches)
    regions.a.faults.clear()  # region A comes back
    wait_for(lambda: regions.workflows(regions.a) == a_batches)
    assert regions.workflows(regions.b) == b_batches

    # Ordering, from the handler's log: every B request was acked before any A request was.
    order = [(batch, d) for batch, _, d in regions.handled if d is Disposition.ACK]
    first_a = next(i for i, (batch, _) in enumerate(order) if batch in a_batches)
    assert {batch for batch, _ in order[:first_a]} == b_batches
    assert regions.runtime.router.status()["region-a"]["circuit"] == "closed"
