"""Prometheus metrics and the small HTTP server for ``/metrics`` and ``/healthz``.

Every :class:`Metrics` owns its own ``CollectorRegistry`` (never the global default one), so two
services in one process -- tests do that -- count separately.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

log = logging.getLogger(__name__)

NAMESPACE: Final = "tenantctl"
# Outcomes of a received request message.
OUTCOMES: Final = ("submitted", "duplicate", "invalid", "rejected", "retried")
LATENCY_BUCKETS: Final = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf"))


class Metrics:
    """The orchestrator's counters; label values are bounded (outcomes, reason codes, phases)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_received = Counter(
            "events_received",
            "Request messages received, by outcome",
            ["outcome"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.submissions = Counter(
            "submissions", "Lifecycle runs started", ["engine"], namespace=NAMESPACE, registry=r
        )
        self.duplicates = Counter(
            "duplicates",
            "Requests whose run already existed (redeliveries, replays)",
            namespace=NAMESPACE,
            registry=r,
        )
        self.dead_letters = Counter(
            "dead_letters",
            "Messages sent to the dead-letter topic, by reason code",
            ["reason"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.workflows_finished = Counter(
            "workflows_finished",
            "Workflows whose result was published, by final phase",
            ["phase"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.results_published = Counter(
            "results_published",
            "Result events published, by status",
            ["status"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.end_to_end_latency = Histogram(
            "end_to_end_latency_seconds",
            "From the request (its time, else its receipt) to its result event",
            buckets=LATENCY_BUCKETS,
            namespace=NAMESPACE,
            registry=r,
        )
        for outcome in OUTCOMES:
            self.events_received.labels(outcome)  # export zeros: absent != zero on dashboards

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent): for tests and the shutdown summary."""
        found = self.registry.get_sample_value(name, labels)
        return float(found or 0.0)

    def summary(self) -> dict[str, float]:
        """Totals worth a log line at shutdown."""
        out = {
            f"received_{o}": self.value("tenantctl_events_received_total", outcome=o)
            for o in OUTCOMES
        }
        out["submissions"] = _total(self.submissions)
        out["duplicates"] = self.value("tenantctl_duplicates_total")
        out["dead_letters"] = _total(self.dead_letters)
        out["results_published"] = _total(self.results_published)
        return out


def _total(counter: Counter) -> float:
    """The sum of a labelled counter over all its label values."""
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


class MetricsServer:
    """``GET /metrics`` (Prometheus text format) and ``GET /healthz`` (200 "ok" / 503)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        health: Callable[[], tuple[bool, str]] = lambda: (True, "ok"),
    ) -> None:
        registry = metrics.registry

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/livez", "/readyz"):
                    ok, detail = health()
                    self._reply(200 if ok else 503, (detail + "\n").encode(), "text/plain")
                else:
                    self._reply(404, b"not found\n", "text/plain")

            def _reply(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("metrics http: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tenantctl-metrics", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
