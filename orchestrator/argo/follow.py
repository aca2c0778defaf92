"""Following a Workflow to its end: the one place that waits for a Workflow.

``tenantctl run --wait``, a fleet's tenants and a migration's steps all poll the same way: read
the Workflow (through :func:`~orchestrator.argo.nodes.workflow_nodes` when looking at nodes),
look again after ``poll_seconds`` while the region's API is unavailable, stop when it reaches a
terminal phase or when ``cancel`` is set. What to do on cancel (stop the Workflow or leave it
running) is the caller's choice: :func:`stop_workflow` is the stop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from bridge.errors import NotFoundError, UnavailableError
from bridge.kube import WORKFLOWS, Kube
from orchestrator.argo.nodes import workflow_nodes
from orchestrator.argo.outcome import TERMINAL_PHASES, collect_jobs
from orchestrator.argo.submit import ArgoEngine
from orchestrator.events import LifecycleRequest
from orchestrator.outcome import (
    CANCELLED,
    DETACHED,
    ERROR,
    FAILED,
    SUCCEEDED,
    RunOutcome,
    outcome_message,
)

_ARGO_DONE: Final = {"Succeeded": SUCCEEDED, "Failed": FAILED, "Error": FAILED}


def follow_workflow(
    kube: Kube,
    name: str,
    *,
    namespace: str,
    cancel: threading.Event,
    poll_seconds: float = 5.0,
    on_poll: Callable[[Mapping[str, Any]], None] | None = None,
    on_unavailable: Callable[[UnavailableError], None] | None = None,
) -> Mapping[str, Any] | None:
    """Poll Workflow ``name`` until it ends; return it, or ``None`` once ``cancel`` is set.

    ``on_poll`` sees every reading (``tenantctl run --wait`` prints the nodes' phases);
    ``on_unavailable`` every poll the API server did not answer (the follower keeps polling:
    a region's API being down for a while does not end an operation). Raises
    :class:`NotFoundError` when the Workflow was deleted.
    """
    while True:
        try:
            workflow: Mapping[str, Any] | None = kube.get(WORKFLOWS, name, namespace=namespace)
        except UnavailableError as exc:
            workflow = None  # the region's API is down for now: look again at the next poll
            if on_unavailable is not None:
                on_unavailable(exc)
        if workflow is not None:
            if on_poll is not None:
                on_poll(workflow)
            if str((workflow.get("status") or {}).get("phase") or "") in TERMINAL_PHASES:
                return workflow
        if cancel.wait(poll_seconds):
            return None


def stop_workflow(kube: Kube, name: str, *, namespace: str) -> None:
    """``spec.shutdown: Stop``: the bridges get SIGTERM and delete their pods, the exit handler
    still publishes the result."""
    kube.patch(WORKFLOWS, name, {"spec": {"shutdown": "Stop"}}, namespace=namespace)


def workflow_outcome(workflow: Mapping[str, Any]) -> RunOutcome | None:
    """The outcome of a finished Workflow, or ``None`` while it runs."""
    status = workflow.get("status") or {}
    state = _ARGO_DONE.get(str(status.get("phase") or ""))
    if state is None:
        return None
    # The tracker's reading of a Workflow's bridge results (retries, waves, killed nodes),
    # so a fleet or a migration reports exactly what the result event says.
    name = str((workflow.get("metadata") or {}).get("name", ""))
    nodes = workflow_nodes(workflow)
    if not nodes.readable:
        # Offloaded or unreadable node status: no job can be shown as succeeded (an on-failure
        # `continue` job fails without failing the Workflow), so, like the result event, the
        # run failed, and the message says why and how to fix it.
        message = f"{nodes.message} The Workflow's phase is {status['phase']}."
        if state != SUCCEEDED and status.get("message"):
            message = f"{status['message']}; {message}"
        return RunOutcome(FAILED, message, (), workflow=name)
    jobs = collect_jobs(workflow)
    message = outcome_message(state, jobs)
    if state != SUCCEEDED and status.get("message"):
        message = f"{status['message']}; {message}" if jobs else str(status["message"])
    return RunOutcome(state, message, tuple(jobs), workflow=name)


def run_workflow(
    engine: ArgoEngine,
    request: LifecycleRequest,
    *,
    cancel: threading.Event,
    poll_seconds: float = 5.0,
    stop_on_cancel: bool = True,
) -> RunOutcome:
    """Submit ``request`` as a Workflow (or find the one its batch id already started) and
    follow it to its end. On cancel: stop it (``stop_on_cancel``, an operator's Ctrl-C) or leave
    it running and report it ``detached`` (a listener shutting down; the next run follows it)."""
    started = datetime.now(UTC)
    name = engine.submit(request).name
    kube, namespace = engine.kube, engine.namespace
    try:
        workflow = follow_workflow(
            kube, name, namespace=namespace, cancel=cancel, poll_seconds=poll_seconds
        )
    except NotFoundError:
        return RunOutcome(ERROR, f"workflow {name} was deleted", workflow=name)
    if workflow is None:
        if not stop_on_cancel:
            return RunOutcome(DETACHED, f"workflow {name} left running", workflow=name)
        stop_workflow(kube, name, namespace=namespace)
        return RunOutcome(CANCELLED, f"workflow {name} stopped", workflow=name)
    outcome = workflow_outcome(workflow)
    assert outcome is not None  # follow_workflow returns only ended Workflows
    return RunOutcome(
        outcome.status,
        outcome.message,
        outcome.jobs,
        workflow=name,
        started_at=started,
        finished_at=datetime.now(UTC),
    )
