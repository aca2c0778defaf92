"""``tenantctl status``: where a lifecycle operation stands (workflow phase, per-job results)."""

from __future__ import annotations

from typing import Any

import click

from bridge.errors import LifecycleError
from orchestrator.cli.commands.listen import kube_options, workflow_namespace_option
from orchestrator.cli.output import echo_json, echo_table, output_option


def status_document(workflow: dict[str, Any]) -> dict[str, Any]:
    """The stable ``--output json`` document of one Workflow."""
    from orchestrator.naming import RESULT_PUBLISHED_ANNOTATION  # noqa: PLC0415
    from orchestrator.tracker import TERMINAL_PHASES, build_result  # noqa: PLC0415

    metadata = workflow.get("metadata") or {}
    status = workflow.get("status") or {}
    phase = status.get("phase") or "Pending"
    event = build_result(workflow)
    data = event["data"]
    return {
        "batchOperationId": event["id"],
        "tenantEnvId": data["tenantEnvId"],
        "operation": data["operation"],
        "region": data["region"],
        "workflow": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "phase": phase,
        "status": data["status"] if phase in TERMINAL_PHASES else "running",
        "message": status.get("message"),
        "startedAt": status.get("startedAt"),
        "finishedAt": status.get("finishedAt"),
        "resultPublished": (metadata.get("annotations") or {}).get(RESULT_PUBLISHED_ANNOTATION),
        # Set when the result cannot list the jobs (the Workflow's node status was offloaded to
        # Argo's database or is unreadable): the result event's data.reason and data.message.
        "reason": data.get("reason"),
        "reasonMessage": data.get("message"),
        "jobs": data["jobs"],
    }


@click.command("status")
@click.argument("batch_operation_id", metavar="BATCH_ID")
@workflow_namespace_option
@kube_options
@output_option
def status(
    *,
    batch_operation_id: str,
    workflow_namespace: str,
    kubeconfig: str | None,
    context: str | None,
    output: str,
) -> None:
    """Show the Workflow of a batch operation: its phase and every job's result.

    \b
    Examples:
      tenantctl status 5b0f6a3e-0c7d-4f7e-9a41-2c1f3f0e9b11
      tenantctl status nightly-t-42 --namespace tenant-lifecycle --output json
    """
    from bridge.errors import NotFoundError  # noqa: PLC0415
    from bridge.kube import WORKFLOWS, Kube, KubeSettings  # noqa: PLC0415 - keep --help fast
    from orchestrator.naming import BATCH_LABEL, workflow_name  # noqa: PLC0415

    with Kube(settings=KubeSettings(kubeconfig=kubeconfig, context=context)) as kube:
        try:
            workflow = kube.get(
                WORKFLOWS, workflow_name(batch_operation_id), namespace=workflow_namespace
            )
        except NotFoundError:
            # tenantctl and the Sensor both name it workflow_name(batch id). One submitted
            # another way (`argo submit --from workflowtemplate/tenant-lifecycle`) has a
            # generated name, but the template's labelsFrom gives it the batch label.
            found = list(
                kube.list(
                    WORKFLOWS,
                    namespace=workflow_namespace,
                    label_selector=f"{BATCH_LABEL}={batch_operation_id}",
                )
                if _label_value_ok(batch_operation_id)
                else []
            )
            if not found:
                raise LifecycleError(
                    f"no Workflow for batch {batch_operation_id} in namespace {workflow_namespace}",
                    hint="check the batch id and --namespace (a local-engine run has no Workflow)",
                ) from None
            workflow = found[0]
    doc = status_document(workflow)
    if output == "json":
        echo_json(doc)
        return
    click.echo(f"batch:     {doc['batchOperationId']}")
    click.echo(f"tenant:    {doc['tenantEnvId']}  operation: {doc['operation']}")
    click.echo(f"workflow:  {doc['namespace']}/{doc['workflow']}  phase: {doc['phase']}")
    click.echo(f"status:    {doc['status']}  result published: {doc['resultPublished'] or 'no'}")
    if doc["message"]:
        click.echo(f"message:   {doc['message']}")
    if doc["reason"]:
        click.echo(f"reason:    {doc['reason']}: {doc['reasonMessage']}")
    rows = [
        (
            job.get("wave"),
            f"{job.get('namespace')}/{job.get('job')}",
            job.get("status"),
            job.get("exitCode"),
            len(job.get("attempts") or []),
            job.get("durationSeconds"),
            job.get("reason"),
        )
        for job in doc["jobs"]
    ]
    echo_table(
        ("WAVE", "JOB", "STATUS", "EXIT", "ATTEMPTS", "SECONDS", "REASON"),
        rows,
        empty=f"no job results ({doc['reason']})" if doc["reason"] else "no job results yet",
    )


def _label_value_ok(value: str) -> bool:
    import re  # noqa: PLC0415

    return bool(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?", value))


commands = [status]
