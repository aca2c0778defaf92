"""``tenantctl run --engine argo --wait``: follow a Workflow and print its bridge nodes as their
phases change, through :func:`orchestrator.argo.follow.follow_workflow` (the one place that
waits for a Workflow)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import click

from orchestrator.cli.signals import cancel_on_signals


def watch_workflow(
    kube: Any, namespace: str, name: str, *, echo: bool, poll_seconds: float = 2.0
) -> str:
    """Print the workflow's bridge nodes as they change phase; return its final phase.

    Ctrl-C stops following (the workflow keeps running) and returns ``Interrupted``. While the
    API server does not answer, it says so once and keeps waiting.
    """
    from orchestrator.argo import follow  # noqa: PLC0415 (heavy: kubernetes)
    from orchestrator.argo.nodes import workflow_nodes  # noqa: PLC0415

    seen: dict[str, str] = {}
    told: set[str] = set()
    down: list[str] = []  # the outage being reported, if any

    def unavailable(exc: Exception) -> None:
        if not down:
            down.append(str(exc))
            click.echo(
                f"note: the API server did not answer ({exc}); still waiting for workflow "
                f"{name} (Ctrl-C stops following, the workflow keeps running)",
                err=True,
            )

    def show(workflow: Mapping[str, Any]) -> None:
        if down:
            down.clear()
            click.echo("note: the API server answers again", err=True)
        # Large Workflows keep their nodes compressed (or offloaded): read them the
        # tracker's way, and say once why they cannot be shown when they cannot.
        nodes = workflow_nodes(workflow)
        if nodes.message and nodes.message not in told:
            told.add(nodes.message)
            click.echo(f"note: {nodes.message}", err=True)
        for node in sorted(nodes.nodes.values(), key=lambda n: str(n.get("startedAt"))):
            if node.get("type") != "Pod":
                continue
            key, phase = str(node.get("id")), str(node.get("phase", ""))
            if seen.get(key) != phase:
                seen[key] = phase
                message = f" - {node['message']}" if node.get("message") else ""
                if echo:
                    click.echo(f"  {node.get('displayName', key)}: {phase}{message}")

    cancel = threading.Event()
    with cancel_on_signals(cancel):
        ended = follow.follow_workflow(
            kube,
            name,
            namespace=namespace,
            cancel=cancel,
            poll_seconds=poll_seconds,
            on_poll=show,
            on_unavailable=unavailable,
        )
    if ended is None:
        click.echo(f"stopped following; workflow {name} keeps running", err=True)
        return "Interrupted"
    phase = str((ended.get("status") or {}).get("phase"))
    if echo:
        click.echo(f"workflow {name}: {phase}")
    return phase
