"""Settings of ``tenantctl listen``: one frozen dataclass, built once at the entry point.

Every field is a flag of ``tenantctl listen`` and a ``TENANTCTL_<FIELD>`` environment variable
(see docs/orchestrator.md).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from bridge.errors import UsageError
from bridge.kube import KubeSettings
from orchestrator.events import DEFAULT_MAX_EVENT_BYTES
from orchestrator.naming import (
    DEFAULT_DEAD_LETTER_TOPIC,
    DEFAULT_REQUEST_TOPIC,
    DEFAULT_RESULTS_TOPIC,
    DEFAULT_SUBSCRIPTION,
    DEFAULT_TEMPLATE,
    DEFAULT_WORKFLOW_NAMESPACE,
    ENGINES,
)
from orchestrator.submit import DEFAULT_PARALLELISM


def default_owner() -> str:
    """Who holds a result claim: host and process (unique per running listener)."""
    return f"{socket.gethostname()}/{os.getpid()}"


@dataclass(frozen=True)
class ListenSettings:
    project: str
    subscription: str = DEFAULT_SUBSCRIPTION
    request_topic: str = DEFAULT_REQUEST_TOPIC
    results_topic: str = DEFAULT_RESULTS_TOPIC
    dead_letter_topic: str = DEFAULT_DEAD_LETTER_TOPIC
    workflow_namespace: str = DEFAULT_WORKFLOW_NAMESPACE
    template: str = DEFAULT_TEMPLATE
    engine: str = "argo"
    parallelism: int = DEFAULT_PARALLELISM
    # Flow control: requests held (received, not yet acked) at once, and their bytes.
    max_messages: int = 100
    max_bytes: int = 10 * 1024 * 1024
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    handler_threads: int = 8
    # Pub/Sub lease per extension (10..600 s): also how soon a vanished consumer's messages
    # come back (see orchestrator/pubsub.py).
    lease_seconds: int = 10
    # auto | streaming | unary (orchestrator/pubsub_pull.py); auto: unary on the emulator.
    pull: str = "auto"
    # Local engine: operations running at once, and how long they may finish on SIGTERM before
    # the rest are cancelled (0: cancel at once).
    max_concurrent: int = 4
    drain_seconds: float = 0.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464  # 0: any free port; -1: no HTTP server
    track: bool = True
    create_topology: bool = False
    owner: str = field(default_factory=default_owner)
    claim_ttl: float = 60.0
    watch_timeout: int = 60
    shutdown_timeout: float = 25.0
    kube: KubeSettings = field(default_factory=KubeSettings)
    # Operation history (docs/fleet.md): sqlite:///path or postgresql://...; None: no history.
    history_store: str | None = None
    # --regions FILE: the region map (docs/regions.md); each request goes to its region's
    # cluster and engine, and --engine/--workflow-namespace/--kubeconfig are not used.
    regions: str | None = None
    # With --regions: migrations running at once, and how often a step's Workflow is looked at.
    max_migrations: int = 2
    migration_poll_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not self.project:
            raise UsageError(
                "no Pub/Sub project given", hint="pass --project or set TENANTCTL_PROJECT"
            )
        if self.engine not in ENGINES:
            raise UsageError(
                f"unknown engine {self.engine!r}", hint=f"use one of: {', '.join(ENGINES)}"
            )
        if self.pull not in ("auto", "streaming", "unary"):
            raise UsageError(
                f"unknown pull mode {self.pull!r}", hint="use one of: auto, streaming, unary"
            )
        for name in (
            "max_messages",
            "max_bytes",
            "max_event_bytes",
            "handler_threads",
            "max_migrations",
        ):
            if getattr(self, name) < 1:
                raise UsageError(
                    f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}",
                    hint=f"pass --{name.replace('_', '-')} 1 or more",
                )
        if self.max_event_bytes > self.max_bytes:
            raise UsageError(
                f"max-event-bytes ({self.max_event_bytes}) is larger than max-bytes "
                f"({self.max_bytes}): one event could never be received",
                hint="raise --max-bytes or lower --max-event-bytes",
            )
