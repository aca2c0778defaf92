"""``tenantctl status``: where a lifecycle operation stands (workflow phase, per-job results),
and for each job that failed: its reason, the ``argo logs`` command that prints its log, and its
node in the Argo UI."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

import click

from bridge.errors import LifecycleError
from orchestrator.cli.commands.listen import kube_options, workflow_namespace_option
from orchestrator.cli.output import F, echo_json, echo_table, output_option

ARGO_UI_URL_ENV: Final = "TENANTCTL_ARGO_UI_URL"  # the same setting as tenantctl run's
# Argo's pod naming (workflow/util/pod_name.go, v3.4+ "v2" names): <workflow>-<template>-<hash>,
# the hash taken from the node id; the Workflow's annotation says which format it uses.
POD_NAME_FORMAT_ANNOTATION: Final = "workflows.argoproj.io/pod-name-format"
_MAX_NAME: Final = 253
_MAX_PREFIX: Final = _MAX_NAME - 10 - 1
_NOT_FAILED: Final = frozenset({"succeeded", "skipped"})


def ui_url_option(function: F) -> F:
    """``--argo-ui-url URL`` (env ``TENANTCTL_ARGO_UI_URL``): links only when one is set."""
    return click.option(
        "--argo-ui-url",
        envvar=ARGO_UI_URL_ENV,
        metavar="URL",
        help=f"base URL of the Argo UI: print links to the Workflow and its nodes "
        f"(env {ARGO_UI_URL_ENV}; none by default)",
    )(function)


# --------------------------------------------------------------------------------------------
# from a job to its Argo node, pod, log command and UI link
# --------------------------------------------------------------------------------------------


def argo_command(namespace: str, *args: str) -> str:
    return " ".join(["argo", "-n", namespace, *args])


def ui_link(base_url: str, namespace: str, workflow: str, node_id: str | None = None) -> str:
    """The Argo UI's page of a Workflow; with ``node_id``, that node selected and its main
    container's log panel open (the UI's ``nodeId`` and ``sidePanel=logs:<node>:<container>``
    query parameters)."""
    from orchestrator.cli.commands.run import argo_ui_link  # noqa: PLC0415

    link = argo_ui_link(base_url, namespace, workflow)
    if node_id is None:
        return link
    query = urllib.parse.urlencode(
        {"nodeId": node_id, "sidePanel": f"logs:{node_id}:main"}, safe=":"
    )
    return f"{link}?{query}"


def _fnv32a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def argo_pod_name(workflow: Mapping[str, Any], node: Mapping[str, Any]) -> str:
    """The name of the pod Argo ran for a Pod node, exactly as ``argo get`` prints it."""
    metadata = workflow.get("metadata") or {}
    name = str(metadata.get("name") or "")
    node_id = str(node.get("id") or "")
    version = (metadata.get("annotations") or {}).get(POD_NAME_FORMAT_ANNOTATION) or "v2"
    if version == "v1":
        return node_id
    if node.get("name") == name:
        return name
    template = (node.get("templateRef") or {}).get("template") or node.get("templateName") or ""
    prefix = f"{name}-{template}" if template else name
    prefix = prefix[:_MAX_PREFIX]
    if node_id.startswith(f"{name}-"):
        suffix = node_id[len(name) + 1 :]
        excess = len(prefix) + 1 + len(suffix) - _MAX_NAME
        if excess > 0:
            prefix = prefix[: len(prefix) - excess]
        return f"{prefix}-{suffix}"
    return f"{prefix}-{_fnv32a(str(node.get('name') or ''))}"


def _job_input(node: Mapping[str, Any]) -> str | None:
    for parameter in (node.get("inputs") or {}).get("parameters") or []:
        if isinstance(parameter, dict) and parameter.get("name") == "job":
            value = parameter.get("value")
            return str(value) if isinstance(value, str) and value.count("/") == 1 else None
    return None


def job_nodes(nodes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``namespace/job`` -> the bridge's Pod node that ran it last (a retried bridge has one Pod
    node per try; the last one wrote the result)."""
    found: dict[str, dict[str, Any]] = {}
    for node in nodes.values():
        if not isinstance(node, dict) or node.get("type") != "Pod":
            continue
        key = _job_input(node)
        if key is None:
            continue
        if key not in found or str(node.get("startedAt") or "") >= str(
            found[key].get("startedAt") or ""
        ):
            found[key] = node
    return found


def _failed_other_steps(nodes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Failed Pod nodes that are not a job's bridge (discovery), latest try only."""
    superseded = {
        child
        for node in nodes.values()
        if isinstance(node, dict) and node.get("type") == "Retry"
        for child in (node.get("children") or [])[:-1]
    }
    return sorted(
        (
            node
            for node_id, node in nodes.items()
            if isinstance(node, dict)
            and node_id not in superseded
            and node.get("type") == "Pod"
            and node.get("phase") in {"Failed", "Error"}
            and _job_input(node) is None
            and ".onExit" not in str(node.get("name") or "")
        ),
        key=lambda n: str(n.get("startedAt") or ""),
    )


def failure_details(
    workflow: Mapping[str, Any], jobs: list[dict[str, Any]], *, ui_url: str | None
) -> dict[str, Any]:
    """What to look at next: every job that did not succeed (its reason, node, pod, the
    ``argo logs`` command of its log, its UI link), failed steps that are no job (discovery),
    the jobs that never ran, and the Workflow's own ``argo get`` command and link."""
    from orchestrator.argo.nodes import workflow_nodes  # noqa: PLC0415

    metadata = workflow.get("metadata") or {}
    name, namespace = str(metadata.get("name") or ""), str(metadata.get("namespace") or "")
    nodes = workflow_nodes(workflow).nodes
    by_job = job_nodes(nodes)

    def pointers(node: Mapping[str, Any] | None) -> dict[str, Any]:
        if node is None:
            # No node to point at (node status unreadable): the whole Workflow's logs.
            return {"node": None, "pod": None, "logs": argo_command(namespace, "logs", name),
                    "url": ui_link(ui_url, namespace, name) if ui_url else None}  # fmt: skip
        pod = argo_pod_name(workflow, node)
        return {
            "node": node.get("id"),
            "pod": pod,
            "logs": argo_command(namespace, "logs", name, pod),
            "url": ui_link(ui_url, namespace, name, str(node.get("id"))) if ui_url else None,
        }

    failed, not_run = [], []
    for job in jobs:
        key = f"{job.get('namespace')}/{job.get('job')}"
        if job.get("status") == "skipped":
            not_run.append({"job": key, "wave": job.get("wave"), "reason": job.get("reason")})
            continue
        if job.get("status") in _NOT_FAILED:
            continue
        failed.append(
            {
                "job": key,
                "wave": job.get("wave"),
                "status": job.get("status"),
                "exitCode": job.get("exitCode"),
                "reason": job.get("reason"),
                "message": job.get("message"),
                **pointers(by_job.get(key)),
            }
        )
    steps = [
        {
            "step": str(node.get("displayName") or node.get("id")),
            "phase": node.get("phase"),
            "message": node.get("message"),
            **pointers(node),
        }
        for node in _failed_other_steps(nodes)
    ]
    return {
        "get": argo_command(namespace, "get", name),
        "logs": argo_command(namespace, "logs", name),
        "url": ui_link(ui_url, namespace, name) if ui_url else None,
        "failedJobs": failed,
        "failedSteps": steps,
        "notRun": not_run,
    }


# --------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------


def status_document(workflow: dict[str, Any], *, ui_url: str | None = None) -> dict[str, Any]:
    """The stable ``--output json`` document of one Workflow."""
    from orchestrator.argo.outcome import TERMINAL_PHASES, build_result  # noqa: PLC0415
    from orchestrator.naming import RESULT_PUBLISHED_ANNOTATION  # noqa: PLC0415

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
        # Where to look next: argo get/logs commands and UI links (see failure_details).
        "argo": failure_details(workflow, data["jobs"], ui_url=ui_url),
    }


@click.command("status")
@click.argument("batch_operation_id", metavar="BATCH_ID")
@workflow_namespace_option
@kube_options
@ui_url_option
@output_option
def status(
    *,
    batch_operation_id: str,
    workflow_namespace: str,
    kubeconfig: str | None,
    context: str | None,
    argo_ui_url: str | None,
    output: str,
) -> None:
    """Show the Workflow of a batch operation: its phase and every job's result; for a job
    that failed, its reason and the `argo logs` command that prints its log.

    \b
    Examples:
      tenantctl status 5b0f6a3e-0c7d-4f7e-9a41-2c1f3f0e9b11
      tenantctl status nightly-t-42 --namespace tenant-lifecycle --output json
      tenantctl status b-123 --argo-ui-url https://argo.example.com
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
    doc = status_document(workflow, ui_url=argo_ui_url or None)
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
    for line in next_steps(doc["argo"]):
        click.echo(line)


def next_steps(argo: Mapping[str, Any]) -> list[str]:
    """The text after the job table: each failure with its reason, log command and link."""
    lines: list[str] = []
    for failure in argo["failedJobs"]:
        exit_code = failure.get("exitCode")
        why = ", ".join(
            str(part)
            for part in (
                failure.get("reason") or failure.get("status"),
                f"exit code {exit_code}" if exit_code is not None else None,
            )
            if part
        )
        wave = f" (wave {failure['wave']})" if failure.get("wave") is not None else ""
        lines += ["", f"failed:    {failure['job']}{wave}: {why}"]
        if failure.get("message"):
            lines.append(f"           {failure['message']}")
        lines.append(f"its log:   {failure['logs']}")
        if failure.get("url"):
            lines.append(f"in the UI: {failure['url']}")
    for step in argo["failedSteps"]:
        lines += ["", f"failed:    step {step['step']}: {step.get('message') or step['phase']}"]
        lines.append(f"its log:   {step['logs']}")
        if step.get("url"):
            lines.append(f"in the UI: {step['url']}")
    if argo["notRun"]:
        names = ", ".join(f"{n['job']} (wave {n['wave']}, {n['reason']})" for n in argo["notRun"])
        lines += ["", f"not run:   {names}"]
    lines += ["", f"all nodes: {argo['get']}"]
    if not argo["failedJobs"] and not argo["failedSteps"]:
        lines.append(f"all logs:  {argo['logs']}")
    if argo.get("url"):
        lines.append(f"Argo UI:   {argo['url']}")
    return lines


def _label_value_ok(value: str) -> bool:
    import re  # noqa: PLC0415

    return bool(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?", value))


commands = [status]
