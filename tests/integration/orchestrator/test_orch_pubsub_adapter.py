"""The Pub/Sub adapter against the real emulator: ack/nack, flow control, clean stop."""

from __future__ import annotations

import threading
import time

from orch_support import drain, wait_for

from orchestrator.bus import Disposition, Message
from orchestrator.pubsub import PubSubBus, PubSubSettings


def test_nack_redelivers_and_ack_is_final(pubsub_topology) -> None:
    t = pubsub_topology
    bus = PubSubBus(PubSubSettings(project=t.project))
    seen: list[bytes] = []
    lock = threading.Lock()

    def handler(message: Message) -> Disposition:
        with lock:
            seen.append(message.data)
            first = seen.count(message.data) == 1
        return Disposition.NACK if message.data == b"again" and first else Disposition.ACK

    try:
        running = bus.subscribe(t.subscription, handler)
        bus.publish(t.request_topic, b"once", {"k": "v"})
        bus.publish(t.request_topic, b"again")
        wait_for(lambda: seen.count(b"again") == 2 and b"once" in seen)
        running.stop(timeout=10)
    finally:
        bus.close()
    assert seen.count(b"once") == 1
    # everything was acked: nothing is left on the subscription
    assert drain(t.project, t.subscription, expected=0) == []


def test_flow_control_bounds_messages_in_flight(pubsub_topology) -> None:
    t = pubsub_topology
    bus = PubSubBus(PubSubSettings(project=t.project, max_messages=3, max_workers=8))
    active = 0
    peak = 0
    done = 0
    lock = threading.Lock()

    def handler(message: Message) -> Disposition:
        nonlocal active, peak, done
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
            done += 1
        return Disposition.ACK

    try:
        bus.publish_many(t.request_topic, [(f"m{i}".encode(), {}) for i in range(30)])
        running = bus.subscribe(t.subscription, handler)
        wait_for(lambda: done >= 30)
        running.stop(timeout=10)
    finally:
        bus.close()
    assert 1 <= peak <= 3


def test_stop_waits_for_handlers_in_flight_and_starts_no_new_ones(pubsub_topology) -> None:
    """That the messages not handled come back is proven end to end by the SIGTERM burst test
    (every request submitted exactly once after a restart); redelivery after a stop is slow on
    the emulator (see docs/orchestrator.md), so it is not waited for here."""
    t = pubsub_topology
    bus = PubSubBus(PubSubSettings(project=t.project, max_messages=2, max_workers=2))
    started: list[bytes] = []
    finished: list[bytes] = []
    release = threading.Event()

    def handler(message: Message) -> Disposition:
        started.append(message.data)
        release.wait(10)
        time.sleep(0.2)
        finished.append(message.data)
        return Disposition.ACK

    try:
        bus.publish_many(t.request_topic, [(f"m{i}".encode(), {}) for i in range(10)])
        running = bus.subscribe(t.subscription, handler)
        wait_for(lambda: len(started) == 2)
        stopper = threading.Thread(target=running.stop, kwargs={"timeout": 10})
        stopper.start()
        time.sleep(0.3)
        assert stopper.is_alive(), "stop() must wait for the handlers in flight"
        release.set()
        stopper.join(15)
        assert not stopper.is_alive()
        assert sorted(finished) == sorted(started)  # both finished before stop() returned
        assert len(started) == 2  # and none started after stop() was called
    finally:
        bus.close()
