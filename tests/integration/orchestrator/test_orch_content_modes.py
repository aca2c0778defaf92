"""Binary and structured content mode on the real Pub/Sub emulator: the same request in either
mode gives the same run and result; every malformed binary-mode message is dead-lettered with
its reason, and the consumer keeps serving."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from orch_support import (
    drain,
    events,
    prepare_sandbox,
    python_job,
    sandbox_kube,
    start_service,
    wait_for,
    workflows,
)

from bridge.kube import KubeSettings
from orchestrator.cli import main
from orchestrator.events import binary_message, structured_message
from orchestrator.naming import workflow_name
from orchestrator.pubsub import PubSubBus, PubSubSettings
from tests.unit.orchestrator.bad_events import BAD_BINARY_EVENTS, valid_event

PREFIX = "tenant-lifecycle.dev"


def publish(topology: Any, messages: list[tuple[bytes, dict[str, str]]]) -> None:
    bus = PubSubBus(PubSubSettings(project=topology.project))
    try:
        bus.publish_many(topology.request_topic, messages)
    finally:
        bus.close()


def cli_publish(topology: Any, batch: str, mode: str) -> str:
    result = CliRunner().invoke(
        main,
        [
            "publish",
            "lifecycle.upsert",
            "--tenant-env-id",
            "tenant-modes",
            "--region",
            "eu-west-1",
            "--batch-operation-id",
            batch,
            "--mode",
            mode,
            "--project",
            topology.project,
            "--topic",
            topology.request_topic,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def _parameters(workflow: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}


def test_both_modes_submit_the_same_workflow_and_bad_binary_is_dead_lettered(
    sandbox: Any, pubsub_topology: Any
) -> None:
    t = pubsub_topology
    prepare_sandbox(sandbox)
    kube = sandbox_kube(sandbox)
    service = start_service(sandbox, t)
    try:
        assert cli_publish(t, "modes-structured", "structured") == "modes-structured"
        assert cli_publish(t, "modes-binary", "binary") == "modes-binary"
        wait_for(lambda: len(workflows(kube)) == 2)
        by_batch = {
            w["metadata"]["labels"][f"{PREFIX}/batch"]: _parameters(w) for w in workflows(kube)
        }
        structured, binary = by_batch["modes-structured"], by_batch["modes-binary"]
        assert binary.pop("batch-operation-id") == "modes-binary"
        assert structured.pop("batch-operation-id") == "modes-structured"
        assert binary == structured
        assert binary["operation"] == "lifecycle.upsert"
        assert binary["tenant-env-id"] == "tenant-modes"

        # The same request again in the other mode is the same run: a duplicate.
        event = valid_event(id="modes-structured", subject="tenant-modes")
        publish(t, [binary_message(event)])
        wait_for(lambda: service.metrics.value("tenantctl_duplicates_total") == 1)

        bad = [(data, {**attrs, "case": name}) for name, data, attrs, *_ in BAD_BINARY_EVENTS]
        publish(t, bad)
        dead = drain(t.project, t.dead_letter_subscription, expected=len(bad), timeout=60)
        # ... and the consumer keeps serving: a valid binary request after the bad ones
        publish(t, [binary_message(valid_event(id="modes-after", subject="tenant-modes"))])
        wait_for(lambda: len(workflows(kube)) == 3)
    finally:
        service.close()
        kube.close()
    assert len(dead) == len(BAD_BINARY_EVENTS)
    by_case = {m.attributes["case"]: m for m in dead}
    for name, data, attributes, code, word, field in BAD_BINARY_EVENTS:
        message = by_case[name]
        assert message.data == data, name  # dead-lettered unchanged
        assert message.attributes["reasonCode"] == code, (name, message.attributes)
        assert word.lower() in message.attributes["reason"].lower(), name
        assert message.attributes["field"] == field, name
        for key, value in attributes.items():
            assert message.attributes[key] == value, (name, key)  # original attributes kept
    assert workflow_name("modes-after") in {
        w["metadata"]["name"] for w in workflows(sandbox_kube(sandbox))
    }
    # every message was acked: nothing left on the request subscription
    assert drain(t.project, t.subscription, expected=0) == []


def _job(namespace: str, name: str, wave: int) -> dict[str, Any]:
    program = "import os; print('tenant', os.environ['LIFECYCLE_TENANT_ENV_ID'])"
    return python_job(namespace, name, operation="modes.run", wave=wave, program=program)


def test_the_same_request_in_both_modes_gives_the_same_result(
    sandbox: Any, pubsub_topology: Any
) -> None:
    t = pubsub_topology
    sandbox.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "modes-a", "labels": {f"{PREFIX}/enabled": "true"}},
            },
            _job("modes-a", "first", 0),
            _job("modes-a", "second", 1),
        ]
    )
    settings = KubeSettings(kubeconfig=str(sandbox.kubeconfig_path()))
    service = start_service(sandbox, t, engine="local", kube=settings)
    try:
        requests = {}
        for mode, encode in (("structured", structured_message), ("binary", binary_message)):
            request = valid_event(id=f"modes-{mode}", subject="tenant-modes")
            request["data"]["operation"] = "modes.run"
            requests[mode] = encode(request)
        publish(t, list(requests.values()))
        results = drain(t.project, t.results_subscription, expected=2, timeout=90)
    finally:
        service.close()
    by_id = {e["id"]: e for e in events(results)}
    assert sorted(by_id) == ["modes-binary", "modes-structured"]
    for message in results:  # results: structured mode, the event format named
        assert message.attributes["content-type"].startswith("application/cloudevents+json")

    def outcome(event: dict[str, Any]) -> Any:
        data = event["data"]
        jobs = [
            (j["wave"], j["namespace"], j["job"], j["status"], j["exitCode"]) for j in data["jobs"]
        ]
        return event["type"], event["subject"], data["operation"], data["status"], jobs

    assert outcome(by_id["modes-binary"]) == outcome(by_id["modes-structured"]), by_id
    assert outcome(by_id["modes-binary"]) == (
        "dev.tenant-lifecycle.operation.succeeded",
        "tenant-modes",
        "modes.run",
        "succeeded",
        [(0, "modes-a", "first", "succeeded", 0), (1, "modes-a", "second", "succeeded", 0)],
    )
