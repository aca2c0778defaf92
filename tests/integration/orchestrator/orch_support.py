"""Helpers shared by the orchestrator's integration tests (imported by file name: this
directory has no ``__init__.py`` because a package named ``orchestrator`` would shadow the real
one)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from orchestrator.bus import Message
from orchestrator.pubsub import pull_now


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy; return its value (fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def drain(
    project: str, subscription: str, *, expected: int, timeout: float = 30.0
) -> list[Message]:
    """Pull (and ack) until ``expected`` messages arrived, then one more short pull to catch
    extras; returns everything pulled."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        got.extend(pull_now(project, subscription, timeout=1.0))
    got.extend(pull_now(project, subscription, timeout=1.0))
    return got


def quiet_for(project: str, subscription: str, seconds: float) -> list[Message]:
    """Everything that arrives on ``subscription`` within ``seconds`` (expected: nothing)."""
    got: list[Message] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got.extend(pull_now(project, subscription, timeout=0.5))
    return got


def events(messages: list[Message]) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in messages]


# --------------------------------------------------------------------------------------------
# the service against a sandbox
# --------------------------------------------------------------------------------------------

WORKFLOW_NAMESPACE = "tenant-lifecycle"  # where deploy/base installs the WorkflowTemplate


def fast_kube_settings() -> Any:
    from bridge.kube import KubeSettings

    # Few, short retries: a test of an unavailable API wants the nack path quickly.
    return KubeSettings(max_retries=1, backoff_base=0.05, backoff_max=0.2, request_timeout=5.0)


def sandbox_kube(sb: Any, settings: Any = None) -> Any:
    from bridge.kube import Kube

    return Kube(settings=settings or fast_kube_settings(), host=sb.url, token=sb.admin_token)


def prepare_sandbox(sb: Any) -> None:
    sb.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": WORKFLOW_NAMESPACE}}])


def listen_settings(topology: Any, **overrides: Any) -> Any:
    from orchestrator.settings import ListenSettings

    values: dict[str, Any] = {
        "project": topology.project,
        "subscription": topology.subscription,
        "request_topic": topology.request_topic,
        "results_topic": topology.results_topic,
        "dead_letter_topic": topology.dead_letter_topic,
        "workflow_namespace": WORKFLOW_NAMESPACE,
        "metrics_port": 0,
        "watch_timeout": 2,
        "shutdown_timeout": 10.0,
        "kube": fast_kube_settings(),
    }
    values.update(overrides)
    return ListenSettings(**values)


def start_service(sb: Any, topology: Any, **overrides: Any) -> Any:
    """A started in-process ``tenantctl listen`` (caller closes it)."""
    from orchestrator.listen import Service

    settings = listen_settings(topology, **overrides)
    service = Service(settings, kube=sandbox_kube(sb, settings.kube), retry_delay=0.2)
    service._own_kube = True  # close the client we made along with the service
    service.start()
    return service


def workflows(kube: Any) -> list[dict[str, Any]]:
    from bridge.kube import WORKFLOWS

    return list(kube.list(WORKFLOWS, namespace=WORKFLOW_NAMESPACE))


def publish_requests(topology: Any, payloads: list[bytes]) -> None:
    """Publish each payload (with an attribute: Pub/Sub refuses a message with neither data nor
    attributes, and one bad message is an empty body)."""
    from orchestrator.pubsub import PubSubBus, PubSubSettings

    bus = PubSubBus(PubSubSettings(project=topology.project))
    try:
        bus.publish_many(topology.request_topic, [(p, {"origin": "test"}) for p in payloads])
    finally:
        bus.close()


def scrape(url: str) -> dict[str, float]:
    """``/metrics`` as {"name{labels}": value} (label order as exposed)."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def python_job(
    namespace: str,
    name: str,
    *,
    operation: str,
    wave: int,
    program: str,
    python: str = "python3",
) -> dict[str, Any]:
    """A suspended lifecycle Job for ``operation`` whose one container runs ``program``."""
    prefix = "tenant-lifecycle.dev"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {f"{prefix}/enabled": "true"},
            "annotations": {f"{prefix}/operations": operation, f"{prefix}/wave": str(wave)},
        },
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "python:3.11-slim",
                            "command": [python, "-c", program],
                        }
                    ],
                }
            },
        },
    }
