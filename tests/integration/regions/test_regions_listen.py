"""``tenantctl listen --regions``: the service routes by region, dead-letters what it cannot
place, and runs a migration requested on the bus (the test plays the Argo controller of each
region's sandbox by finishing the Workflows the listener created)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import yaml

from bridge.kube import WORKFLOWS, Kube, KubeSettings
from orchestrator.events import encode_event, request_event
from orchestrator.history import open_store
from orchestrator.listen import Service
from orchestrator.migration import MigrationRequest, migration_event
from orchestrator.pubsub import PubSubBus, PubSubSettings, pull_now
from orchestrator.settings import ListenSettings
from sandbox import Sandbox

NAMESPACE = "tenant-lifecycle"  # the default workflowNamespace of a region (the map sets none)


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)


def workflows(sb: Sandbox) -> dict[str, dict[str, Any]]:
    with Kube(host=sb.url, token=sb.admin_token) as kube:
        return {
            w["metadata"]["labels"]["tenant-lifecycle.dev/batch"]: w
            for w in kube.list(WORKFLOWS, namespace=NAMESPACE)
        }


def finish(sb: Sandbox, workflow: dict[str, Any]) -> None:
    """What Argo's controller writes when a Workflow succeeded (no bridge nodes here)."""
    with Kube(host=sb.url, token=sb.admin_token) as kube:
        kube.patch(
            WORKFLOWS,
            workflow["metadata"]["name"],
            {
                "status": {
                    "phase": "Succeeded",
                    "startedAt": "2026-11-26T10:00:00Z",
                    "finishedAt": "2026-11-26T10:00:01Z",
                }
            },
            namespace=NAMESPACE,
        )


def parameter(workflow: dict[str, Any], name: str) -> str:
    for item in workflow["spec"]["arguments"]["parameters"]:
        if item["name"] == name:
            return str(item["value"])
    raise KeyError(name)


def test_listen_with_regions_routes_dead_letters_and_migrates(
    sandbox_factory: Callable[..., Sandbox], pubsub_topology: Any, tmp_path: Path
) -> None:
    a, b = sandbox_factory(rbac=False), sandbox_factory(rbac=False)
    for sb in (a, b):
        sb.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}])
    regions = tmp_path / "regions.yaml"
    regions.write_text(
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
        metrics_port=-1,
        watch_timeout=2,
        shutdown_timeout=10.0,
        regions=str(regions),
        history_store=f"sqlite:///{tmp_path / 'history.db'}",
        migration_poll_seconds=0.1,
        kube=KubeSettings(max_retries=1, backoff_base=0.05, backoff_max=0.2, request_timeout=5.0),
    )
    service = Service(settings, retry_delay=0.1)
    publisher = PubSubBus(PubSubSettings(project=t.project))
    try:
        service.start()

        def upsert(batch: str, region: str | None) -> bytes:
            event = request_event(
                "lifecycle.upsert",
                tenant_env_id=f"t-{batch}",
                batch_operation_id=batch,
                region=region,
            )
            return encode_event(event)

        move = MigrationRequest("mig-bus", "t-move", "region-a", "region-b")
        payloads = [
            upsert("l-a", "region-a"),
            upsert("l-b", "region-b"),
            upsert("l-x", "mars-1"),
            upsert("l-n", None),
            encode_event(migration_event(move)),
        ]
        publisher.publish_many(t.request_topic, [(p, {"origin": "test"}) for p in payloads])

        # Routing: each request in its own region's cluster, nowhere else.
        wait_for(lambda: {"l-a", "mig-bus-out"} <= set(workflows(a)))
        wait_for(lambda: "l-b" in workflows(b))
        dead: list[Any] = []

        def dead_lettered() -> bool:
            dead.extend(pull_now(t.project, t.dead_letter_subscription))
            return len(dead) >= 2

        wait_for(dead_lettered)
        codes = {json.loads(m.data)["id"]: m.attributes["reasonCode"] for m in dead}
        assert codes == {"l-x": "unknown-region", "l-n": "missing-region"}

        # The migration: the export in A first; the import in B only once it succeeded.
        out = workflows(a)["mig-bus-out"]
        assert parameter(out, "operation") == "lifecycle.migrate-out"
        assert "mig-bus-in" not in workflows(b)
        finish(a, out)
        into = wait_for(lambda: workflows(b).get("mig-bus-in"))
        assert parameter(into, "operation") == "lifecycle.migrate-in"
        assert parameter(into, "source-batch-operation-id") == "mig-bus-out"
        finish(b, into)

        results: list[dict[str, Any]] = []

        def whole() -> bool:
            results.extend(json.loads(m.data) for m in pull_now(t.project, t.results_subscription))
            return any(e["id"] == "mig-bus" for e in results)

        wait_for(whole)
        event = next(e for e in results if e["id"] == "mig-bus")
        assert event["type"] == "dev.tenant-lifecycle.migration.succeeded"
        assert [s["batchOperationId"] for s in event["data"]["steps"]] == [
            "mig-bus-out",
            "mig-bus-in",
        ]
        assert set(workflows(a)) == {"l-a", "mig-bus-out"}
        assert set(workflows(b)) == {"l-b", "mig-bus-in"}
        # On record: both steps under the parent (what a redelivery would resume from), and
        # the routed requests with their regions.
        with closing(open_store(settings.history_store or "")) as store:
            steps = {r.batch_id: r.outcome for r in store.query(parent="mig-bus", limit=None)}
            assert steps == {"mig-bus-out": "succeeded", "mig-bus-in": "succeeded"}
            routed = store.get("l-b")
            assert routed is not None
            assert routed.region == "region-b"
    finally:
        publisher.close()
        service.close()
