"""A finished Workflow's outcome, read from its nodes: the jobs each bridge reported
(:func:`collect_jobs`, with the ones that never ran), the failed steps and the result event's data
(:func:`build_result`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from bridge.errors import LifecycleError
from orchestrator.argo.nodes import workflow_nodes
from orchestrator.engine.plan import ABORT, EnginePlan
from orchestrator.engine.result import JobResult
from orchestrator.events import event_time, result_event
from orchestrator.naming import (
    BATCH_LABEL,
    OPERATION_LABEL,
    REGION_ANNOTATION,
    TENANT_LABEL,
)

TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed", "Error"})
RESULT_PARAMETER: Final = "result"
PLAN_PARAMETER: Final = "plan"


# --------------------------------------------------------------------------------------------
# building the result from a Workflow
# --------------------------------------------------------------------------------------------


def _parameters(node: Mapping[str, Any], kind: str) -> dict[str, Any]:
    section = node.get(kind) or {}
    return {
        str(p.get("name")): p.get("value")
        for p in section.get("parameters") or []
        if isinstance(p, dict)
    }


def _plan_waves(nodes: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """(namespace, job) -> wave, from the discovery node's ``plan`` output when there is one."""
    waves: dict[tuple[str, str], int] = {}
    for node in nodes.values():
        raw = _parameters(node, "outputs").get(PLAN_PARAMETER)
        if not isinstance(raw, str):
            continue
        try:
            plan = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(plan, dict):
            continue
        for wave in plan.get("waves") or []:
            if not isinstance(wave, dict) or not _is_int(wave.get("wave", 0)):
                continue
            for job in wave.get("jobs") or []:
                if isinstance(job, dict):
                    waves[(str(job.get("namespace")), str(job.get("name")))] = int(
                        str(wave.get("wave", 0))
                    )
    return waves


def collect_jobs(
    workflow: Mapping[str, Any], *, include_skipped: bool = False
) -> list[dict[str, Any]]:
    """Each bridge node's ``result`` output (the bridge's result JSON), plus ``wave``.

    Argo copies a retried node's last attempt's outputs onto the parent retry node, so one job can
    appear more than once: the latest finished one wins. A bridge node that died without writing a
    result (its pod was killed) is reported as ``error`` from the node's own phase and message.
    ``include_skipped`` (for a finished Workflow): every job of the discovery plan that never
    ran is listed as ``skipped``, exactly as the local engine lists it. No jobs when the nodes
    cannot be read (:func:`workflow_nodes` says why).
    """
    return _collect_jobs(workflow, workflow_nodes(workflow).nodes, include_skipped=include_skipped)


def _collect_jobs(
    workflow: Mapping[str, Any], nodes: Mapping[str, Any], *, include_skipped: bool
) -> list[dict[str, Any]]:
    waves = _plan_waves(nodes)
    batch, tenant, operation = _identity(workflow)
    best: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for node in nodes.values():
        if not isinstance(node, dict):
            continue
        outputs = _parameters(node, "outputs")
        raw = outputs.get(RESULT_PARAMETER)
        job: dict[str, Any] | None = None
        if isinstance(raw, str) and raw.strip():
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and parsed.get("namespace") and parsed.get("job"):
                job = parsed
        inputs = _parameters(node, "inputs")
        if job is None and _is_failed_bridge_node(node, inputs):
            namespace, _, name = str(inputs["job"]).partition("/")
            # The same keys as a bridge result (and as the local engine's job without one).
            job = {
                "namespace": namespace,
                "job": name,
                "operation": operation,
                "tenantEnvId": tenant,
                "batchOperationId": batch,
                "status": "error",
                "exitCode": None,
                "reason": str(node.get("phase")),
                "message": str(node.get("message") or "the bridge node ended without a result"),
                "attempts": [],
                "startedAt": node.get("startedAt"),
                "finishedAt": node.get("finishedAt"),
                "durationSeconds": _duration(node.get("startedAt"), node.get("finishedAt")),
            }
        if job is not None and "wave" not in job and _is_int(inputs.get("wave")):
            job = {**job, "wave": int(str(inputs["wave"]))}
        if job is None:
            continue
        key = (str(job["namespace"]), str(job["job"]))
        finished = str(job.get("finishedAt") or node.get("finishedAt") or "")
        if key not in best or finished >= best[key][0]:
            best[key] = (finished, job)
    jobs = []
    for key, (_, job) in best.items():
        entry = dict(job)
        if "wave" not in entry:
            entry["wave"] = waves.get(key)
        jobs.append(entry)
    if include_skipped:
        jobs += _never_ran(_plan(nodes), best, batch=batch, tenant=tenant, operation=operation)
    jobs.sort(key=_job_order)
    return jobs


def _plan(nodes: Mapping[str, Any]) -> EnginePlan | None:
    """The discovery node's ``plan`` output, when there is a readable one."""
    for node in nodes.values():
        raw = _parameters(node, "outputs").get(PLAN_PARAMETER) if isinstance(node, dict) else None
        if not isinstance(raw, str):
            continue
        try:
            return EnginePlan.from_json(json.loads(raw))
        except (ValueError, LifecycleError):
            continue
    return None


def _never_ran(
    plan: EnginePlan | None,
    ran: Mapping[tuple[str, str], tuple[str, Mapping[str, Any]]],
    *,
    batch: str,
    tenant: str,
    operation: str,
) -> list[dict[str, Any]]:
    """The plan's jobs without a bridge node result, as the local engine reports them: after a
    failed ``abort`` job in an earlier wave ``WaveAborted``, otherwise (the Workflow was
    stopped) ``Cancelled``."""
    if plan is None:
        return []
    skipped: list[dict[str, Any]] = []
    aborted = False  # an earlier wave had a failed abort job
    for wave in plan.waves:
        failed_abort = False
        for job in wave.jobs:
            key = (job.namespace, job.name)
            if key in ran:
                failed_abort |= job.on_failure == ABORT and ran[key][1].get("status") != "succeeded"
                continue
            why = "WaveAborted" if aborted else "Cancelled"
            result = JobResult.skipped(
                job, operation=operation, tenant_env_id=tenant, batch=batch, why=why
            )
            skipped.append(result.to_json())
        aborted = aborted or failed_abort
    return skipped


def _duration(started: Any, finished: Any) -> float | None:
    begin, end = parse_time(started), parse_time(finished)
    if begin is None or end is None:
        return None
    return round((end - begin).total_seconds(), 3)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _identity(workflow: Mapping[str, Any]) -> tuple[str, str, str]:
    """(batch operation id, tenant env id, operation) from the labels, else the arguments."""
    labels = (workflow.get("metadata") or {}).get("labels") or {}
    batch = labels.get(BATCH_LABEL) or _argument(workflow, "batch-operation-id") or ""
    tenant = labels.get(TENANT_LABEL) or _argument(workflow, "tenant-env-id") or ""
    operation = labels.get(OPERATION_LABEL) or _argument(workflow, "operation") or ""
    return str(batch), str(tenant), str(operation)


def _job_order(job: Mapping[str, Any]) -> tuple[int, str, str]:
    wave = job.get("wave")
    return (wave if isinstance(wave, int) else 0, str(job["namespace"]), str(job["job"]))


def _is_int(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and value.lstrip("-").isdigit()


def _is_failed_bridge_node(node: Mapping[str, Any], inputs: Mapping[str, Any]) -> bool:
    """A bridge node (its ``job`` input is ``namespace/job``) that failed without a result."""
    job = inputs.get("job")
    return node.get("phase") in {"Failed", "Error"} and isinstance(job, str) and job.count("/") == 1


def failed_steps(workflow: Mapping[str, Any]) -> list[str]:
    """Display names of failed nodes that count for the outcome.

    Used when the Workflow is not finished yet (Argo's exit handler runs before the phase is
    set): an attempt that a retry node superseded does not count, nor does the exit handler.
    """
    return _failed_steps(workflow_nodes(workflow).nodes)


def _failed_steps(nodes: Mapping[str, Any]) -> list[str]:
    superseded = {
        child
        for node in nodes.values()
        if isinstance(node, dict) and node.get("type") == "Retry"
        for child in node.get("children") or []
    }
    return sorted(
        str(node.get("displayName") or node_id)
        for node_id, node in nodes.items()
        if isinstance(node, dict)
        and node_id not in superseded
        and node.get("type") in {"Pod", "Retry"}
        and node.get("phase") in {"Failed", "Error"}
        and ".onExit" not in str(node.get("displayName") or "")
    )


def _argument(workflow: Mapping[str, Any], name: str) -> str | None:
    for p in ((workflow.get("spec") or {}).get("arguments") or {}).get("parameters") or []:
        if isinstance(p, dict) and p.get("name") == name and p.get("value") is not None:
            return str(p["value"])
    return None


def build_result(
    workflow: Mapping[str, Any], *, workflow_status: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The result CloudEvent of a Workflow.

    ``workflow_status`` overrides ``status.phase`` (Argo's exit handler passes
    ``{{workflow.status}}`` while the Workflow itself is still Running). The operation succeeded
    only when the Workflow did and every job did. When the nodes cannot be read the result is
    still built -- ``failed`` (a job's failure cannot be ruled out, and an ``on-failure:
    continue`` job fails without failing the Workflow), with no jobs and the data's ``reason``
    and ``message`` (as a local run that could not start) saying why and how to fix it.
    """
    metadata = workflow.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    status = workflow.get("status") or {}
    phase = workflow_status or status.get("phase") or ""
    nodes = workflow_nodes(workflow)
    jobs = _collect_jobs(workflow, nodes.nodes, include_skipped=phase in TERMINAL_PHASES)
    ok = phase not in {"Failed", "Error"} and all(j.get("status") == "succeeded" for j in jobs)
    if ok and phase not in TERMINAL_PHASES:
        ok = not _failed_steps(nodes.nodes)
    ok = ok and nodes.readable
    batch, tenant, operation = _identity(workflow)
    event = result_event(
        batch_operation_id=batch,
        tenant_env_id=tenant,
        operation=operation,
        status="succeeded" if ok else "failed",
        jobs=jobs,
        workflow=metadata.get("name"),
        region=annotations.get(REGION_ANNOTATION),
        started_at=status.get("startedAt"),
        finished_at=status.get("finishedAt") or event_time(now or datetime.now(UTC)),
        time=now,
    )
    if not nodes.readable:
        event["data"].update(
            reason=nodes.reason, message=f"{nodes.message} The Workflow's phase is {phase or '?'}."
        )
    return event
