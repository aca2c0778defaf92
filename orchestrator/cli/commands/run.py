"""``tenantctl run``: run a lifecycle operation now, on the local engine or by submitting to Argo.

``--engine local`` (default) runs the same plan as Argo in this process: discovery, then the
waves, each job's bridge (the ``python -m bridge run`` runner) in a thread, or as a subprocess
with ``--launcher process``. The live view shows waves,
jobs, state, attempts and durations, with the jobs' logs prefixed ``[namespace/job]``; a summary
table follows, and the exit status is 0 (succeeded), 1 (failed) or 130 (cancelled by Ctrl-C:
every bridge deletes its pod first).

``--engine argo`` submits a Workflow from the ``tenant-lifecycle`` WorkflowTemplate (the same
submission the orchestrator makes for a bus event) and prints its name and Argo UI link;
``--wait`` follows it until it ends. It first checks that the template is installed in the
workflow namespace (``tenant-lifecycle`` by default, where ``deploy/base`` puts it): a Workflow
referencing a missing template is accepted by the API server and only fails later, in Argo.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

import click

from bridge.errors import LifecycleError, UsageError
from orchestrator.batch_ids import new_run_id
from orchestrator.cli.commands.listen import kube_options, workflow_namespace_option
from orchestrator.cli.inputs import (
    changeset_option,
    environment_option,
    load_changeset,
    load_environment,
)
from orchestrator.cli.output import echo_json, output_option
from orchestrator.cli.signals import cancel_on_signals
from orchestrator.cli.watch import watch_workflow
from orchestrator.events import (
    InvalidEvent,
    LifecycleRequest,
    encode_event,
    parse_request,
    request_event,
)

DEFAULT_ARGO_UI_URL = "https://localhost:2746"
_FLAG_OF_FIELD = {
    "subject": "--tenant-env-id",
    "id": "--batch-operation-id",
    "data.operation": "OP",
    "data.region": "--region",
    "data.tenantEnvironment": "--environment",
    "data.changeset": "--changeset",
    "data.sourceBatchOperationId": "--source-batch-operation-id",
}


class OneLineCommand(click.Command):
    """A click command whose argument errors are one line naming the flag and the fix.

    click's own rendering is three lines (usage, a "Try --help" line, the error); we turn the
    error into the project's :class:`~bridge.errors.UsageError`, which the root group prints as
    ``error: <message> (<hint>)`` with exit code 2.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            path = " ".join(p for p in (parent.command_path if parent else "", info_name) if p)
            raise UsageError(exc.format_message(), hint=f"see `{path} --help`") from exc


def build_request(
    operation: str,
    *,
    tenant_env_id: str,
    batch_operation_id: str | None,
    environment: Mapping[str, Any],
    changeset: Mapping[str, Any],
    region: str | None,
    source_batch_operation_id: str | None,
) -> LifecycleRequest:
    """The request, validated exactly as the orchestrator validates a bus event."""
    event = request_event(
        operation,
        tenant_env_id=tenant_env_id,
        batch_operation_id=batch_operation_id or new_run_id(),
        source="tenantctl-run",
        region=region,
        environment=environment,
        changeset=changeset,
        source_batch_operation_id=source_batch_operation_id,
    )
    try:
        return parse_request(encode_event(event))
    except InvalidEvent as exc:
        flag = _FLAG_OF_FIELD.get(exc.field) or next(
            (flag for field, flag in _FLAG_OF_FIELD.items() if exc.field.startswith(field)),
            exc.field,
        )
        raise UsageError(f"{flag}: {exc.message}", hint=exc.hint) from exc


def _is_tty(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


def run_local(
    request: LifecycleRequest,
    *,
    parallelism: int,
    logs: str,
    output: str,
    kubeconfig: str | None,
    context: str | None,
    skip_invalid: bool,
    launcher: str = "thread",
) -> int:
    from orchestrator.engine import BridgeSettings, EngineSettings, local_engine  # noqa: PLC0415
    from orchestrator.engine.view import LiveView, summary_lines  # noqa: PLC0415

    out = sys.stdout if output == "text" else sys.stderr
    bridge = BridgeSettings(kubeconfig=kubeconfig, context=context, skip_invalid=skip_invalid)
    engine = local_engine(
        bridge, settings=EngineSettings(parallelism=parallelism, launcher=launcher)
    )
    view = LiveView(out, logs=logs, tty=_is_tty(out), parallelism=parallelism)
    cancel = threading.Event()

    def remind() -> None:
        # Runs in a signal handler: the main thread may be inside a write to stderr itself.
        with contextlib.suppress(RuntimeError):
            click.echo("still cancelling: waiting for the bridges to delete their pods", err=True)

    with cancel_on_signals(cancel, on_repeat=remind):
        try:
            result = engine.run(request, cancel=cancel, observer=view)
        except LifecycleError:
            view.close()
            if cancel.is_set():
                click.echo("cancelled before any job started", err=True)
                return 130
            raise
    click.echo("", file=out)
    for line in summary_lines(result):
        click.echo(line, file=out)
    if output == "json":
        echo_json(result.to_json())
    return result.exit_code


def argo_ui_link(base_url: str, namespace: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/workflows/{namespace}/{name}"


def run_argo(
    request: LifecycleRequest,
    *,
    parallelism: int,
    output: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str,
    ui_url: str,
    wait: bool,
) -> int:
    from bridge.errors import ForbiddenError  # noqa: PLC0415
    from bridge.kube import Kube, KubeSettings  # noqa: PLC0415 (heavy: kubernetes)
    from orchestrator.argo.submit import ArgoEngine  # noqa: PLC0415

    with Kube(settings=KubeSettings(kubeconfig=kubeconfig, context=context)) as kube:
        engine = ArgoEngine(kube, namespace=namespace, parallelism=parallelism)
        try:
            engine.require_template()  # a missing one: one line naming the fix, exit 1
        except ForbiddenError:
            # Allowed to submit but not to read templates: Argo's controller still reports a
            # missing one on the Workflow, so this check is a convenience, not a gate.
            click.echo(
                f"note: not allowed to read WorkflowTemplate {engine.template} in namespace "
                f"{namespace}; submitting without checking that it exists",
                err=True,
            )
        outcome = engine.submit(request)
        link = argo_ui_link(ui_url, namespace, outcome.name)
        doc: dict[str, Any] = {
            "engine": "argo",
            "status": outcome.status,
            "workflow": outcome.name,
            "namespace": namespace,
            "batchOperationId": request.batch_operation_id,
            "url": link,
        }
        if output == "text":
            verb = "submitted" if not outcome.duplicate else "already submitted (same batch id)"
            click.echo(f"workflow {outcome.name} {verb} in namespace {namespace}")
            click.echo(f"Argo UI: {link}")
        code = 0
        if wait:
            phase = watch_workflow(kube, namespace, outcome.name, echo=output == "text")
            doc["phase"] = phase
            code = {"Succeeded": 0, "Interrupted": 130}.get(phase, 1)
        if output == "json":
            echo_json(doc)
        return code


# The command's --help (click reads it from here, not from a docstring, so the command's
# body stays short).
_RUN_HELP = """Run lifecycle operation OP for one tenant now.

The local engine (default) runs the same plan as Argo in this process: discovery, then
the waves in order, the bridges of a wave side by side (up to --parallelism), each job's
log prefixed [namespace/job], then a summary table. A failed job with on-failure abort
stops later waves; continue lets them run. Ctrl-C cancels: every bridge deletes its pod.

Exit status: 0 succeeded, 1 failed, 2 wrong flag, 130 cancelled.

With -o json the live view goes to stderr and stdout holds one document, the result
event's data plus local details: operation, tenantEnvId, region, status
(succeeded|failed|cancelled), jobs (each bridge result plus wave; never-started jobs are
"skipped"), workflow, startedAt, finishedAt, batchOperationId, engine, durationSeconds,
abortedBy, rejected, errors. For --engine argo: engine, status (submitted|duplicate),
workflow, namespace, batchOperationId, url (and phase with --wait).

--engine argo submits to the workflow namespace (default tenant-lifecycle, where
`kubectl apply -k deploy/base` installs the WorkflowTemplate) and refuses, before
submitting anything, when the template is not there.

\b
Examples:
  tenantctl sandbox up                 # a local API server; prints its kubeconfig
  tenantctl run lifecycle.upsert --tenant-env-id t-42 --kubeconfig sandbox.kubeconfig
  tenantctl run lifecycle.upsert --tenant-env-id t-42 --environment env.yaml \\
      --parallelism 2 --logs failed -o json
  tenantctl run lifecycle.backup --tenant-env-id t-42 --engine argo --wait \\
      --argo-ui-url https://argo.example.com
"""


@click.command("run", cls=OneLineCommand, help=_RUN_HELP)
@click.argument("operation", metavar="OP")
@click.option("--tenant-env-id", required=True, metavar="ID", help="tenant environment id")
@environment_option
@changeset_option
@click.option(
    "--engine",
    type=click.Choice(["local", "argo"]),
    default="local",
    show_default=True,
    help="local: run here; argo: submit a Workflow",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="bridges of one wave running at the same time",
)
@click.option(
    "--logs",
    type=click.Choice(["all", "failed", "none"]),
    default="all",
    show_default=True,
    help="local: which jobs' logs to show (failed: held back, shown for failed jobs only)",
)
@click.option(
    "--launcher",
    type=click.Choice(["process", "thread"]),
    default="thread",
    envvar="TENANTCTL_LAUNCHER",
    show_default=True,
    show_envvar=True,
    help="local: each bridge a thread of this process, or a `python -m bridge run` process",
)
@click.option("--wait", is_flag=True, help="argo: follow the workflow until it ends")
@output_option
@kube_options
@click.option(
    "--batch-operation-id", metavar="ID", help="idempotency key (default: a new run-<hex> id)"
)
@click.option("--region", metavar="REGION", help="region of the tenant (recorded in the result)")
@click.option(
    "--source-batch-operation-id",
    metavar="ID",
    help="migrate-in/restore: the batch whose export to read",
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="local: run the valid Jobs when discovery rejects some (default: refuse)",
)
@workflow_namespace_option
@click.option(
    "--argo-ui-url",
    envvar="TENANTCTL_ARGO_UI_URL",
    default=DEFAULT_ARGO_UI_URL,
    show_default=True,
    metavar="URL",
    help="argo: base URL of the Argo UI, for the printed link (env TENANTCTL_ARGO_UI_URL)",
)
@click.pass_context
def run(
    ctx: click.Context,
    *,
    operation: str,
    tenant_env_id: str,
    environment: str | None,
    changeset: str | None,
    engine: str,
    parallelism: int,
    logs: str,
    launcher: str,
    wait: bool,
    output: str,
    kubeconfig: str | None,
    context: str | None,
    batch_operation_id: str | None,
    region: str | None,
    source_batch_operation_id: str | None,
    skip_invalid: bool,
    workflow_namespace: str,
    argo_ui_url: str,
) -> None:
    if wait and engine == "local":
        raise UsageError("--wait applies to --engine argo", hint="drop --wait: local runs wait")
    env = {}
    if environment:
        env = load_environment(environment)
    request = build_request(
        operation,
        tenant_env_id=tenant_env_id,
        batch_operation_id=batch_operation_id,
        environment=env,
        changeset=load_changeset(changeset) if changeset else {},
        region=region,
        source_batch_operation_id=source_batch_operation_id,
    )
    if engine == "argo":
        code = run_argo(
            request,
            parallelism=parallelism,
            output=output,
            kubeconfig=kubeconfig,
            context=context,
            namespace=workflow_namespace,
            ui_url=argo_ui_url,
            wait=wait,
        )
    else:
        code = run_local(
            request,
            parallelism=parallelism,
            logs=logs,
            output=output,
            kubeconfig=kubeconfig,
            context=context,
            skip_invalid=skip_invalid,
            launcher=launcher,
        )
    ctx.exit(code)


commands: list[click.Command] = [run]
