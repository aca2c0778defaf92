"""``tenantctl listen`` in-process: the real emulator, the sandbox as the cluster."""

from __future__ import annotations

import json

from orch_support import (
    drain,
    prepare_sandbox,
    publish_requests,
    sandbox_kube,
    scrape,
    start_service,
    wait_for,
    workflows,
)

from bridge.kube import KubeSettings
from orchestrator.naming import workflow_name
from tests.unit.orchestrator.bad_events import BAD_EVENTS, valid_event


def _parameters(workflow: dict) -> dict[str, str]:
    return {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}


def test_one_workflow_for_a_request_published_three_times(sandbox, pubsub_topology) -> None:
    t = pubsub_topology
    prepare_sandbox(sandbox)
    kube = sandbox_kube(sandbox)
    service = start_service(sandbox, t, handler_threads=1)
    try:
        request = json.dumps(valid_event(id="dup-batch-1")).encode()
        publish_requests(t, [request])
        wait_for(
            lambda: (
                service.metrics.value("tenantctl_events_received_total", outcome="submitted") == 1
            )
        )
        publish_requests(t, [request, request])
        wait_for(lambda: service.metrics.value("tenantctl_duplicates_total") == 2)
        found = workflows(kube)
        assert [w["metadata"]["name"] for w in found] == [workflow_name("dup-batch-1")]
        (workflow,) = found
        labels = workflow["metadata"]["labels"]
        assert labels["tenant-lifecycle.dev/tenant"] == "tenant-799a"
        assert labels["tenant-lifecycle.dev/operation"] == "lifecycle.upsert"
        assert labels["tenant-lifecycle.dev/batch"] == "dup-batch-1"
        assert workflow["spec"]["workflowTemplateRef"] == {"name": "tenant-lifecycle"}
        params = _parameters(workflow)
        assert params["operation"] == "lifecycle.upsert"
        assert params["tenant-env-id"] == "tenant-799a"
        assert params["batch-operation-id"] == "dup-batch-1"
        assert json.loads(params["environment"]) == {"applications": ["catalog", "search"]}
        assert json.loads(params["changeset"]) == {}
        assert params["source-batch-operation-id"] == ""
        metrics = scrape(service.server.url)
        assert metrics['tenantctl_events_received_total{outcome="submitted"}'] == 1
        assert metrics['tenantctl_events_received_total{outcome="duplicate"}'] == 2
        assert metrics['tenantctl_events_received_total{outcome="retried"}'] == 0
        assert metrics["tenantctl_duplicates_total"] == 2
        assert metrics['tenantctl_submissions_total{engine="argo"}'] == 1
    finally:
        service.close()
        kube.close()
    # every message was acked: nothing comes back once the consumer is gone
    assert drain(t.project, t.subscription, expected=0) == []
    assert drain(t.project, t.dead_letter_subscription, expected=0) == []


def test_bad_messages_are_dead_lettered_and_the_consumer_keeps_going(
    sandbox, pubsub_topology
) -> None:
    t = pubsub_topology
    prepare_sandbox(sandbox)
    kube = sandbox_kube(sandbox)
    service = start_service(sandbox, t)
    try:
        publish_requests(t, [data for _, data, _, _ in BAD_EVENTS])
        dead = drain(t.project, t.dead_letter_subscription, expected=len(BAD_EVENTS))
        publish_requests(t, [json.dumps(valid_event(id="after-the-bad-ones")).encode()])
        wait_for(lambda: workflows(kube))
        assert len(dead) == len(BAD_EVENTS)
        by_data = {m.data: m.attributes for m in dead}
        for name, data, code, word in BAD_EVENTS:
            attributes = by_data[data]
            assert attributes["reasonCode"] == code, name
            assert word.lower() in attributes["reason"].lower(), name
            assert attributes["subscription"] == t.subscription
        assert len({code for _, _, code, _ in BAD_EVENTS}) >= 20
        assert [w["metadata"]["name"] for w in workflows(kube)] == ["lc-after-the-bad-ones"]
        metrics = scrape(service.server.url)
        assert metrics['tenantctl_events_received_total{outcome="invalid"}'] == len(BAD_EVENTS)
        assert metrics['tenantctl_dead_letters_total{reason="NotJSON"}'] == 1
        assert metrics['tenantctl_dead_letters_total{reason="EmptyBody"}'] == 2
        assert sum(
            v for k, v in metrics.items() if k.startswith("tenantctl_dead_letters_total")
        ) == len(BAD_EVENTS)
        assert metrics['tenantctl_events_received_total{outcome="submitted"}'] == 1
    finally:
        service.close()
        kube.close()
    assert drain(t.project, t.subscription, expected=0) == []


def test_api_unavailable_holds_messages_until_it_is_back(sandbox, pubsub_topology) -> None:
    t = pubsub_topology
    prepare_sandbox(sandbox)
    kube = sandbox_kube(sandbox)
    # no client-side retries: every failed create goes back to the bus (nack) at once
    service = start_service(sandbox, t, track=False, kube=KubeSettings(max_retries=0))
    try:
        sandbox.faults.unavailable(3)
        publish_requests(t, [json.dumps(valid_event(id=f"outage-{i}")).encode() for i in range(5)])
        wait_for(
            lambda: service.metrics.value("tenantctl_events_received_total", outcome="retried") >= 5
        )
        wait_for(lambda: len(workflows(kube)) == 5, timeout=30)
        wait_for(
            lambda: (
                service.metrics.value("tenantctl_events_received_total", outcome="submitted")
                + service.metrics.value("tenantctl_duplicates_total")
                == 5
            )
        )
        names = sorted(w["metadata"]["name"] for w in workflows(kube))
        assert names == [f"lc-outage-{i}" for i in range(5)]
        assert service.metrics.value("tenantctl_events_received_total", outcome="invalid") == 0
        # a create that landed just before a broken connection may come back as a duplicate
        assert (
            service.metrics.value("tenantctl_events_received_total", outcome="submitted")
            + service.metrics.value("tenantctl_duplicates_total")
            == 5
        )
    finally:
        service.close()
        kube.close()
    assert drain(t.project, t.subscription, expected=0) == []
    assert drain(t.project, t.dead_letter_subscription, expected=0) == []
