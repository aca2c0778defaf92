"""``tenantctl fleet``: one lifecycle operation across many tenants.

Selection (exactly one): ``--all`` or ``--selector EXPR`` over the ``--inventory``, or
``--tenants FILE`` (ids, resolved in the inventory when one is given). Canary first, then
bounded concurrency, a failure budget that stops new starts, every start and outcome in the
history store, ``--resume PARENT`` to continue an interrupted run. See docs/fleet.md.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TextIO

import click

from orchestrator.cli.commands.history import open_history, store_option
from orchestrator.cli.commands.run import OneLineCommand
from orchestrator.cli.fleet_tenants import check_requests, parent_id, select_tenants
from orchestrator.cli.inputs import load_changeset
from orchestrator.cli.output import echo_json, output_option
from orchestrator.cli.signals import cancel_on_signals
from orchestrator.fleet import (
    FailureBudget,
    FleetRun,
    FleetSettings,
    FleetSummary,
    LineProgress,
    TenantOutcome,
    TenantRequest,
    TenantRunner,
)
from orchestrator.fleet.inventory import (
    open_inventory,
)
from orchestrator.history import HistoryStore


def local_runner(
    *,
    kubeconfig: str | None,
    context: str | None,
    parallelism: int,
    launcher: str = "thread",
) -> TenantRunner:
    """The local engine as the fleet's runner: one engine for every tenant (its tenant locks
    and, with ``launcher="thread"``, its bridges in threads of this process)."""
    # Heavy imports here: the engine pulls in the bridge and yaml machinery.
    from orchestrator.engine import (  # noqa: PLC0415
        BridgeSettings,
        EngineSettings,
        local_engine,
    )
    from orchestrator.fleet.runners import LocalEngineTenantRunner  # noqa: PLC0415

    bridge = BridgeSettings(kubeconfig=kubeconfig, context=context)
    return LocalEngineTenantRunner(
        local_engine(bridge, settings=EngineSettings(parallelism=parallelism, launcher=launcher))
    )


@contextmanager
def tenant_runner(
    engine: str,
    *,
    kubeconfig: str | None,
    context: str | None,
    parallelism: int,
    launcher: str = "thread",
    argo_namespace: str,
    poll_seconds: float,
) -> Iterator[TenantRunner]:
    """The runner for ``--engine``; the Argo one holds a Kubernetes client until the end.
    ``launcher`` is the local engine's (Argo runs every bridge as a pod step)."""
    if engine == "local":
        yield local_runner(
            kubeconfig=kubeconfig, context=context, parallelism=parallelism, launcher=launcher
        )
        return
    from bridge.kube import Kube, KubeSettings  # noqa: PLC0415 (heavy: kubernetes)
    from orchestrator.fleet.runners import ArgoTenantRunner  # noqa: PLC0415

    with Kube(settings=KubeSettings(kubeconfig=kubeconfig, context=context)) as kube:
        yield ArgoTenantRunner(
            kube, namespace=argo_namespace, parallelism=parallelism, poll_seconds=poll_seconds
        )


class DryRunner:
    """Stands in for the engine in ``--dry-run``: the plan is shown, never executed."""

    def run(self, request: TenantRequest, *, cancel: threading.Event) -> TenantOutcome:
        raise AssertionError("a dry run never starts a tenant")


def show_plan(run: FleetRun, *, output: str) -> None:
    planned = run.plan()
    if output == "json":
        echo_json(
            {
                "parentBatchOperationId": run.parent_batch_id,
                "operation": run.operation,
                "allowedFailures": run.allowed_failures,
                "skipped": list(run.summary.skipped),
                "planned": [
                    {
                        "tenant": request.tenant.id,
                        "region": request.tenant.region,
                        "batchOperationId": request.batch_operation_id,
                        "attempt": request.attempt,
                        "canary": canary,
                    }
                    for request, canary in planned
                ],
            }
        )
        return
    click.echo(
        f"fleet {run.parent_batch_id}: {run.operation} would start {len(planned)} tenant(s) "
        f"(concurrency {run.settings.concurrency}, {run.allowed_failures} failure(s) allowed)"
        + (f"; {len(run.summary.skipped)} already succeeded" if run.summary.skipped else "")
    )
    for request, canary in planned:
        kind = "canary" if canary else "      "
        click.echo(
            f"  {kind} {request.tenant.id}  {request.tenant.region or '-'}  "
            f"{request.batch_operation_id}"
            + (f"  (attempt {request.attempt})" if request.attempt > 1 else "")
        )


def _is_tty(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


# The command's --help (click reads it from here, not from a docstring, so the command's
# body stays short).
_FLEET_HELP = """Run lifecycle operation OP across many tenants: canary first, bounded, on record.

The first --canary tenants run first; unless all of them succeed nothing else starts.
Then at most --concurrency tenants run at a time; once more than --max-failures tenants
failed no new tenant starts (those running finish). Every tenant's request and outcome
goes to the history store under one parent batch id. Ctrl-C cancels the tenants in
flight (their bridges delete their pods); --resume PARENT skips every tenant that
already succeeded. The local engine's bridges run as threads of this process (far less
CPU for a big fleet); --launcher process runs one `python -m bridge run` process each.

Exit status: 0 all succeeded, 1 failures or tenants not started, 2 wrong flag,
130 interrupted.

\b
Examples:
  tenantctl fleet lifecycle.upsert --all --inventory tenants.yaml \\
      --canary 5 --concurrency 20 --max-failures 2% --changeset migration-42.yaml
  tenantctl fleet lifecycle.backup --selector 'region=eu-west-1,tier in (gold,silver)' \\
      --inventory https://tenants.internal/api/v1/tenants --launcher process
  tenantctl fleet lifecycle.upsert --tenants retry.txt --inventory tenants.yaml \\
      --resume fleet-20261126t020000-3fa9c1
"""


@click.command("fleet", cls=OneLineCommand, help=_FLEET_HELP)
@click.argument("operation", metavar="OP")
@click.option("--all", "all_tenants", is_flag=True, help="every tenant of the inventory")
@click.option(
    "--tenants",
    "tenants_file",
    metavar="FILE",
    help="file of tenant ids, one per line (# comments)",
)
@click.option(
    "--selector",
    metavar="EXPR",
    help="inventory selector, e.g. 'region=eu-west-1,tier in (gold,silver),!legacy'",
)
@click.option(
    "--inventory",
    envvar="TENANTCTL_INVENTORY",
    metavar="FILE|URL",
    help="tenant inventory: YAML/CSV file or http(s) endpoint [env TENANTCTL_INVENTORY]",
)
@click.option(
    "--inventory-token",
    envvar="TENANTCTL_INVENTORY_TOKEN",
    metavar="TOKEN",
    help="bearer token for an HTTP inventory [env TENANTCTL_INVENTORY_TOKEN]",
)
@click.option(
    "--changeset",
    metavar="FILE",
    type=click.Path(dir_okay=False, exists=True),
    help="changeset YAML handed to every tenant's jobs",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="tenants in flight at most",
)
@click.option(
    "--canary",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="run the first N tenants first and stop unless all of them succeed",
)
@click.option(
    "--max-failures",
    default="0",
    show_default=True,
    metavar="N|P%",
    help="failed tenants tolerated (count, or % of the selection); more stops new starts",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "argo"]),
    default="local",
    show_default=True,
    help="local: each tenant through the local engine here; argo: one Workflow per tenant",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="bridges of one wave running at the same time, per tenant",
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
@click.option(
    "--argo-namespace",
    default="argo",
    show_default=True,
    metavar="NS",
    help="argo: namespace of the WorkflowTemplate and Workflows",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.05),
    default=5.0,
    show_default=True,
    hidden=True,
    help="argo: how often a tenant's Workflow is looked at",
)
@click.option("--resume", metavar="PARENT_BATCH", help="continue this interrupted fleet run")
@click.option(
    "--parent-batch-id",
    metavar="ID",
    help="id of this fleet run (default: a new fleet-<time>-<hex>); e.g. the CronWorkflow's name",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="show the tenants that would start (canaries first) and exit; nothing runs",
)
@store_option
@output_option
@click.option(
    "--kubeconfig",
    metavar="PATH",
    type=click.Path(dir_okay=False, exists=True),
    help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)",
)
@click.option("--context", metavar="NAME", help="kubeconfig context")
def fleet(
    *,
    operation: str,
    all_tenants: bool,
    tenants_file: str | None,
    selector: str | None,
    inventory: str | None,
    inventory_token: str | None,
    changeset: str | None,
    concurrency: int,
    canary: int,
    max_failures: str,
    engine: str,
    parallelism: int,
    launcher: str,
    argo_namespace: str,
    poll_seconds: float,
    resume: str | None,
    parent_batch_id: str | None,
    dry_run: bool,
    store: str | None,
    output: str,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    settings = FleetSettings(
        concurrency=concurrency, canary=canary, max_failures=FailureBudget.parse(max_failures)
    )
    tenants = select_tenants(
        all_tenants=all_tenants,
        tenants_file=tenants_file,
        selector=selector,
        inventory=open_inventory(inventory, token=inventory_token) if inventory else None,
    )
    changes = load_changeset(changeset) if changeset else {}
    parent = parent_id(resume=resume, parent_batch_id=parent_batch_id)
    check_requests(operation, tenants, changeset=changes, parent=parent)
    out = sys.stdout if output == "text" else sys.stderr
    history = open_history(store)
    new_run = functools.partial(
        FleetRun,
        operation=operation,
        tenants=tenants,
        store=history,
        settings=settings,
        parent_batch_id=parent,
        resume=resume is not None,
        changeset=changes,
    )
    if dry_run:
        try:
            show_plan(new_run(runner=DryRunner()), output=output)
        finally:
            history.close()
        return
    runner = tenant_runner(
        engine,
        kubeconfig=kubeconfig,
        context=context,
        parallelism=parallelism,
        launcher=launcher,
        argo_namespace=argo_namespace,
        poll_seconds=poll_seconds,
    )
    summary = _execute(new_run, runner, out=out, history=history)
    click.echo(summary.render(), file=out)
    if output == "json":
        echo_json(summary.to_json())
    sys.exit(summary.exit_code)


def _execute(
    new_run: Callable[..., FleetRun],
    runner: AbstractContextManager[TenantRunner],
    *,
    out: TextIO,
    history: HistoryStore,
) -> FleetSummary:
    """Run the fleet with live progress on ``out``; Ctrl-C cancels the tenants in flight."""

    def write(text: str) -> None:
        out.write(text)
        out.flush()  # progress is for watching live, also through a pipe

    progress = LineProgress(write, tty=_is_tty(out))
    cancel = threading.Event()

    def remind() -> None:
        click.echo("still stopping: waiting for the tenants in flight to cancel", err=True)

    try:
        with runner as tenants:
            run = new_run(runner=tenants, progress=progress, cancel=cancel)
            with cancel_on_signals(cancel, on_repeat=remind):
                return run.execute()
    finally:
        progress.close()
        history.close()


commands: list[click.Command] = [fleet]
