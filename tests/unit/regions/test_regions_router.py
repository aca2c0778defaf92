"""The region router: each request to its region's engine, a dead region held on its own."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bridge.errors import ConflictError, UnavailableError
from orchestrator.bus import Disposition
from orchestrator.events import LifecycleRequest, encode_event, request_event
from orchestrator.listen import Consumer, ConsumerSettings
from orchestrator.metrics import Metrics
from orchestrator.regions import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    UNKNOWN_REGION,
    Circuit,
    CircuitSettings,
    RegionRouter,
    RegionUnavailableError,
    UnroutableRequest,
    parse_region_map,
)
from orchestrator.submit import SubmitOutcome
from tests.support.bus import FakeBus


class FakeEngine:
    """Records submissions; ``fail`` raises instead; ``gate`` makes submit block."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.submitted: list[LifecycleRequest] = []
        self.calls = 0
        self.fail: Exception | None = None
        self.gate: threading.Event | None = None
        self.entered = threading.Semaphore(0)

    def submit(self, request: LifecycleRequest) -> SubmitOutcome:
        self.calls += 1
        if self.gate is not None:
            self.entered.release()
            self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        self.submitted.append(request)
        return SubmitOutcome("submitted", f"lc-{request.batch_operation_id}", engine=self.name)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def region_map(**extra: Any) -> Any:
    return parse_region_map(
        {
            "regions": {
                "eu-west-1": {"cluster": {"context": "eu"}, **extra},
                "us-east-1": {"cluster": {"context": "us"}},
            },
            "defaultRegion": "us-east-1",
        }
    )


def request(batch: str, region: str | None) -> LifecycleRequest:
    return LifecycleRequest(batch, "t1", "lifecycle.upsert", region=region)


def make_router(**extra: Any) -> tuple[RegionRouter, FakeEngine, FakeEngine, Clock]:
    eu, us, clock = FakeEngine("eu"), FakeEngine("us"), Clock()
    router = RegionRouter(
        region_map(**extra),
        {"eu-west-1": eu, "us-east-1": us},
        circuit=CircuitSettings(initial_backoff=1.0, max_backoff=4.0),
        clock=clock,
    )
    return router, eu, us, clock


def test_each_request_goes_to_its_regions_engine_and_no_region_to_the_default() -> None:
    router, eu, us, _ = make_router()
    router.submit(request("b1", "eu-west-1"))
    router.submit(request("b2", "us-east-1"))
    router.submit(request("b3", None))
    assert [r.batch_operation_id for r in eu.submitted] == ["b1"]
    assert [r.batch_operation_id for r in us.submitted] == ["b2", "b3"]
    assert us.submitted[1].region == "us-east-1"  # the default is written into the request


def test_an_unknown_region_is_unroutable_and_touches_no_engine() -> None:
    router, eu, us, _ = make_router()
    with pytest.raises(UnroutableRequest) as caught:
        router.submit(request("b1", "ap-south-9"))
    assert caught.value.reason_code == UNKNOWN_REGION
    assert eu.calls == us.calls == 0


def test_an_unreachable_region_opens_its_circuit_and_fails_fast_without_calls() -> None:
    router, eu, us, clock = make_router()
    eu.fail = UnavailableError("connection refused", status=0)
    with pytest.raises(RegionUnavailableError) as caught:
        router.submit(request("b1", "eu-west-1"))
    assert caught.value.region == "eu-west-1"
    assert eu.calls == 1
    # Open: no call reaches the engine while the backoff lasts; the other region flows.
    for batch in ("b2", "b3"):
        with pytest.raises(RegionUnavailableError, match="unavailable") as refused:
            router.submit(request(batch, "eu-west-1"))
        assert refused.value.retry_after == pytest.approx(1.0)
    router.submit(request("u1", "us-east-1"))
    assert eu.calls == 1
    assert len(us.submitted) == 1
    status = router.status()
    assert status["eu-west-1"]["circuit"] == OPEN
    assert status["eu-west-1"]["refused"] == 2
    assert status["us-east-1"]["circuit"] == CLOSED
    # After the backoff one probe goes through; it fails again: a longer backoff.
    clock.now += 1.0
    with pytest.raises(RegionUnavailableError):
        router.submit(request("b4", "eu-west-1"))
    assert eu.calls == 2
    assert router.lanes["eu-west-1"].circuit.retry_in() == pytest.approx(2.0)
    # It comes back: the next probe succeeds and closes the circuit.
    clock.now += 2.0
    eu.fail = None
    router.submit(request("b5", "eu-west-1"))
    router.submit(request("b6", "eu-west-1"))
    assert [r.batch_operation_id for r in eu.submitted] == ["b5", "b6"]
    assert router.status()["eu-west-1"]["circuit"] == CLOSED


def test_a_duplicate_or_rejection_is_an_answer_not_an_outage() -> None:
    router, eu, _, _ = make_router()
    eu.fail = ConflictError("exists", status=409)
    with pytest.raises(ConflictError):
        router.submit(request("b1", "eu-west-1"))
    assert router.status()["eu-west-1"]["circuit"] == CLOSED


def test_a_hanging_region_holds_at_most_its_slots() -> None:
    router, eu, us, _ = make_router(maxInFlight=2)
    eu.gate = threading.Event()
    threads = [
        threading.Thread(target=router.submit, args=(request(f"b{i}", "eu-west-1"),))
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    assert eu.entered.acquire(timeout=5)
    assert eu.entered.acquire(timeout=5)
    with pytest.raises(RegionUnavailableError, match="2 submissions in flight"):
        router.submit(request("b3", "eu-west-1"))
    router.submit(request("u1", "us-east-1"))  # the other region is not held up
    assert router.status()["eu-west-1"]["inFlight"] == 2
    eu.gate.set()
    for thread in threads:
        thread.join(5)
    assert len(eu.submitted) == 2
    assert len(us.submitted) == 1
    assert router.status()["eu-west-1"]["inFlight"] == 0


def test_half_open_lets_one_probe_through_at_a_time() -> None:
    clock = Clock()
    circuit = Circuit(CircuitSettings(initial_backoff=1.0), clock=clock)
    assert circuit.admit() is None
    circuit.failure()
    assert circuit.admit() == pytest.approx(1.0)
    clock.now += 1.5
    assert circuit.admit() is None
    assert circuit.state == HALF_OPEN
    assert circuit.admit() is not None  # a second caller waits for the probe
    circuit.release()  # the probe got an answer: reachable
    assert circuit.state == CLOSED
    assert circuit.admit() is None


def test_the_consumer_nacks_a_dead_regions_message_and_acks_the_others() -> None:
    router, eu, us, _ = make_router()
    eu.fail = UnavailableError("connection refused", status=0)
    bus = FakeBus()
    sleeps: list[float] = []
    consumer = Consumer(
        router,
        bus,
        settings=ConsumerSettings(dead_letter_topic="dlq", retry_delay=0.0),
        metrics=Metrics(),
        sleep=sleeps.append,
    )
    bus.subscribe("sub", consumer.handle)

    def event(batch: str, region: str) -> bytes:
        return encode_event(
            request_event(
                "lifecycle.upsert", tenant_env_id="t1", batch_operation_id=batch, region=region
            )
        )

    # Returned to the bus (nack, or a deferred redelivery where the bus offers one), not acked.
    assert bus.deliver("sub", event("b1", "eu-west-1")) != Disposition.ACK
    assert bus.deliver("sub", event("b2", "eu-west-1")) != Disposition.ACK
    assert bus.deliver("sub", event("u1", "us-east-1")) == Disposition.ACK
    assert eu.calls == 1  # the second eu message never reached the dead API
    assert [r.batch_operation_id for r in us.submitted] == ["u1"]
    assert "dlq" not in bus.published


def test_a_servers_retry_after_lengthens_the_backoff_up_to_the_cap() -> None:
    clock = Clock()
    circuit = Circuit(CircuitSettings(initial_backoff=1.0, max_backoff=4.0), clock=clock)
    assert circuit.failure(retry_after=3) == pytest.approx(3.0)
    assert circuit.failure(retry_after=120) == pytest.approx(4.0)
    assert circuit.failure(retry_after=None) == pytest.approx(4.0)


def test_the_listener_is_unhealthy_only_when_every_regions_tracker_fails() -> None:
    from orchestrator.listen.runtime import RegionalRuntime

    class FakeTracker:
        def __init__(self, healthy: bool) -> None:
            self.healthy = healthy
            self.last_error = "" if healthy else "connection refused"

    router, _, _, _ = make_router()
    one_down = RegionalRuntime(
        router, trackers={"eu-west-1": FakeTracker(False), "us-east-1": FakeTracker(True)}
    )
    healthy, detail = one_down.health()
    assert healthy
    assert "eu-west-1: connection refused" in detail
    all_down = RegionalRuntime(
        router, trackers={"eu-west-1": FakeTracker(False), "us-east-1": FakeTracker(False)}
    )
    assert all_down.health()[0] is False


def test_a_probe_that_never_called_does_not_close_the_circuit() -> None:
    clock = Clock()
    circuit = Circuit(CircuitSettings(initial_backoff=1.0), clock=clock)
    circuit.failure()
    clock.now += 1.0
    assert circuit.admit() is None  # the probe ...
    circuit.abandon()  # ... found no free slot and made no call
    assert circuit.state == HALF_OPEN
    assert circuit.admit() is None  # the next caller probes instead
    circuit.failure()
    assert circuit.state == OPEN


def test_the_listener_runtime_builds_each_regions_engine_and_tracker(tmp_path: Any) -> None:
    from bridge.kube import Kube
    from orchestrator.argo.submit import ArgoEngine
    from orchestrator.engine import LocalSubmitter
    from orchestrator.listen.runtime import build_regional_runtime
    from orchestrator.settings import ListenSettings

    regions = parse_region_map(
        {
            "regions": {
                "eu-west-1": {"cluster": {"context": "eu"}, "workflowNamespace": "wf"},
                "us-east-1": {"cluster": {"kubeconfig": "/dev/null"}, "engine": "local"},
            }
        }
    )
    kube = Kube(host="http://127.0.0.1:9", token="t")  # never called here
    runtime = build_regional_runtime(
        regions,
        ListenSettings(project="p", metrics_port=-1),
        bus=FakeBus(),
        metrics=Metrics(),
        kubes={"eu-west-1": kube},
    )
    try:
        eu, us = runtime.router.lanes["eu-west-1"], runtime.router.lanes["us-east-1"]
        assert isinstance(eu.engine, ArgoEngine)
        assert eu.engine.namespace == "wf"
        assert isinstance(us.engine, LocalSubmitter)
        assert set(runtime.trackers) == {"eu-west-1"}
        assert runtime.owned_kubes == ()  # the given client stays the caller's
    finally:
        runtime.close()
        kube.close()
