"""The metrics endpoint (per-service registry, /healthz) and the listen settings' checks."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from bridge.errors import UsageError
from orchestrator.metrics import Metrics, MetricsServer
from orchestrator.settings import ListenSettings


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def test_metrics_and_health_are_served_from_a_private_registry() -> None:
    first, second = Metrics(), Metrics()
    first.events_received.labels("submitted").inc(3)
    first.dead_letters.labels("NotJSON").inc()
    healthy = {"ok": True}
    server = MetricsServer(
        first, port=0, health=lambda: (healthy["ok"], "ok" if healthy["ok"] else "tracker down")
    )
    try:
        status, text = _get(f"{server.url}/metrics")
        assert status == 200
        assert 'tenantctl_events_received_total{outcome="submitted"} 3.0' in text
        assert 'tenantctl_events_received_total{outcome="retried"} 0.0' in text
        assert 'tenantctl_dead_letters_total{reason="NotJSON"} 1.0' in text
        assert _get(f"{server.url}/healthz") == (200, "ok\n")
        healthy["ok"] = False
        assert _get(f"{server.url}/healthz") == (503, "tracker down\n")
        assert _get(f"{server.url}/nope")[0] == 404
    finally:
        server.close()
    # the second service's counters are its own
    assert second.value("tenantctl_events_received_total", outcome="submitted") == 0
    assert first.summary()["received_submitted"] == 3
    assert first.summary()["dead_letters"] == 1


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"project": ""}, "project"),
        ({"engine": "airflow"}, "engine"),
        ({"max_messages": 0}, "max-messages"),
        ({"max_event_bytes": 2048, "max_bytes": 1024}, "max-event-bytes"),
        ({"pull": "push"}, "pull mode 'push'.*auto, streaming, unary"),
    ],
)
def test_bad_settings_are_usage_errors_naming_the_flag(overrides: dict, words: str) -> None:
    values = {"project": "p", **overrides}
    with pytest.raises(UsageError, match=words):
        ListenSettings(**values)
