"""The demo's last step: each operation's result event published on a local Pub/Sub emulator
as ``tenantctl listen`` publishes it, then read back."""

from __future__ import annotations

import time
from collections.abc import Sequence

from devtools.demo_helpers import PUBSUB_PROJECT
from orchestrator.bus import Message
from orchestrator.engine import OperationResult
from orchestrator.events import result_event, structured_message
from orchestrator.pubsub import PubSubBus, PubSubSettings, emulator_host, ensure_topology, pull_now
from sandbox.emulators import PubSubEmulator

RESULTS_TOPIC = "lifecycle-results"
RESULTS_SUBSCRIPTION = "lifecycle-results-demo"


def publish_and_read_back(
    results: Sequence[OperationResult], emulator: PubSubEmulator
) -> tuple[list[Message], int]:
    """Publish one result event per operation on the emulator; return the messages read back
    (within 10 s) and how many were published."""
    with emulator_host(emulator.host):
        ensure_topology(
            PUBSUB_PROJECT,
            topics=[RESULTS_TOPIC],
            subscriptions={RESULTS_SUBSCRIPTION: RESULTS_TOPIC},
        )
        items = []
        for result in results:
            data = result.to_event_data()
            event = result_event(
                batch_operation_id=result.batch_operation_id,
                tenant_env_id=result.tenant_env_id,
                operation=result.operation,
                status=data["status"],
                jobs=data["jobs"],
                workflow=None,
                region=result.region,
                started_at=data["startedAt"],
                finished_at=data["finishedAt"],
            )
            items.append(structured_message(event))
        bus = PubSubBus(PubSubSettings(project=PUBSUB_PROJECT))
        try:
            bus.publish_many(RESULTS_TOPIC, items)
        finally:
            bus.close()
        received: list[Message] = []
        deadline = time.monotonic() + 10
        while len(received) < len(items) and time.monotonic() < deadline:
            received += pull_now(PUBSUB_PROJECT, RESULTS_SUBSCRIPTION, timeout=2.0)
    return received, len(items)
