"""``tenantctl migrate``: move a tenant from one region to another (migrate-out, then migrate-in).

See :mod:`orchestrator.migration.saga` for the semantics and docs/regions.md for the failure modes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from bridge.errors import UsageError
from orchestrator.cli.commands.history import open_history, store_option
from orchestrator.cli.commands.run import OneLineCommand
from orchestrator.cli.inputs import (
    changeset_option,
    environment_option,
    load_changeset,
    load_environment,
)
from orchestrator.cli.output import echo_json, output_option, render_table

if TYPE_CHECKING:
    from orchestrator.migration import MigrationResult

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 130


# The command's --help (click reads it from here, not from a docstring, so the command's
# body stays short).
_MIGRATE_HELP = """Move TENANT from region --from to region --to, as one tracked operation.

Runs lifecycle.migrate-out in the source region (batch <PARENT>-out); when it succeeded,
lifecycle.migrate-in in the target region (batch <PARENT>-in) reading that export (the
bridge verifies its manifest first). Each step is recorded in the history under PARENT;
running again with the same --batch-operation-id resumes: a succeeded export is not run
again. The source region's data is never deleted by a migration.

Exit status: 0 migrated, 1 failed (the summary says where the tenant is), 2 wrong flag,
130 interrupted.

\b
Examples:
  tenantctl migrate t-42 --from eu-west-1 --to us-east-1 --regions regions.yaml
  tenantctl migrate t-42 --from eu-west-1 --to us-east-1 --regions regions.yaml \\
      --batch-operation-id migrate-20261126t093000-3fa9c1     # resume
  tenantctl migrate t-42 --from eu-west-1 --to us-east-1 --regions regions.yaml \\
      --project prod --results-topic tenant-lifecycle-results -o json
"""


@click.command("migrate", cls=OneLineCommand, help=_MIGRATE_HELP)
@click.argument("tenant", metavar="TENANT")
@click.option("--from", "from_region", required=True, metavar="REGION", help="region it leaves")
@click.option("--to", "to_region", required=True, metavar="REGION", help="region it moves to")
@click.option(
    "--regions",
    "regions_file",
    envvar="TENANTCTL_REGIONS",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="region map YAML (docs/regions.md) [env TENANTCTL_REGIONS]",
)
@environment_option
@changeset_option
@click.option(
    "--batch-operation-id",
    "parent",
    metavar="PARENT",
    help="the migration's id; give an earlier one to resume it (default: a new migrate-... id)",
)
@store_option
@click.option(
    "--project",
    envvar="TENANTCTL_PROJECT",
    metavar="PROJECT",
    help="Pub/Sub project: publish the result events there (with --results-topic)",
)
@click.option(
    "--results-topic",
    envvar="TENANTCTL_RESULTS_TOPIC",
    metavar="TOPIC",
    help="Pub/Sub topic for the steps' and the migration's result events",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="bridges of one wave running at the same time",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.05),
    default=5.0,
    show_default=True,
    help="argo regions: how often the Workflow is looked at",
)
@output_option
@click.pass_context
def migrate(
    ctx: click.Context,
    *,
    tenant: str,
    from_region: str,
    to_region: str,
    regions_file: str,
    environment: str | None,
    changeset: str | None,
    parent: str | None,
    store: str | None,
    project: str | None,
    results_topic: str | None,
    parallelism: int,
    poll_seconds: float,
    output: str,
) -> None:
    from orchestrator.batch_ids import new_parent_batch_id  # noqa: PLC0415
    from orchestrator.migration import Migration, MigrationRequest, region_runners  # noqa: PLC0415 - keep --help fast
    from orchestrator.regions import load_region_map  # noqa: PLC0415

    if bool(project) != bool(results_topic):
        raise UsageError(
            "--project and --results-topic go together",
            hint="give both to publish result events, or neither",
        )
    region_map = load_region_map(regions_file)
    for flag, name in (("--from", from_region), ("--to", to_region)):
        if name not in region_map.names:
            raise UsageError(
                f"{flag} {name!r} is not in the region map {regions_file}",
                hint=f"use one of {', '.join(region_map.names)}",
            )
    request = MigrationRequest(
        parent_batch_operation_id=parent or new_parent_batch_id("migrate"),
        tenant_env_id=tenant,
        from_region=from_region,
        to_region=to_region,
        environment=load_environment(environment) if environment else {},
        changeset=load_changeset(changeset) if changeset else {},
    )
    click.echo(
        f"migration {request.parent_batch_operation_id}: {tenant} {from_region} -> {to_region}",
        err=True,
    )
    cancel = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        click.echo("interrupted: cancelling the running step", err=True)
        cancel.set()

    previous = (
        signal.signal(signal.SIGINT, on_signal)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    history = open_history(store)
    publisher = _EventPublisher(project, results_topic) if project and results_topic else None
    try:
        with region_runners(
            region_map,
            [from_region, to_region],
            parallelism=parallelism,
            poll_seconds=poll_seconds,
        ) as runners:
            migration = Migration(
                runners, store=history, publish=publisher.publish if publisher else None
            )
            result = migration.run(request, cancel=cancel)
    finally:
        history.close()
        if publisher is not None:
            publisher.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    _show(result, output=output)
    if result.status == "succeeded":
        ctx.exit(EXIT_SUCCEEDED)
    ctx.exit(EXIT_CANCELLED if result.status == "cancelled" else EXIT_FAILED)


def _show(result: MigrationResult, *, output: str) -> None:
    """The steps as a table and the outcome (text), or the result as JSON."""
    if output == "json":
        echo_json(result.to_json())
    else:
        rows = [
            (
                step.step,
                step.region,
                step.batch_operation_id,
                step.status + (" (earlier run)" if step.resumed else ""),
                step.message,
            )
            for step in result.steps
        ]
        click.echo(render_table(["STEP", "REGION", "BATCH", "STATUS", "DETAIL"], rows))
        click.echo(f"migration {result.request.parent_batch_operation_id}: {result.status}")
        click.echo(f"tenant: {result.tenant_state}")


class _EventPublisher:
    """Publishes result events on Pub/Sub (the import is heavy: only when asked for)."""

    def __init__(self, project: str, topic: str) -> None:
        from orchestrator.pubsub import PubSubBus, PubSubSettings  # noqa: PLC0415

        self.topic = topic
        self.bus = PubSubBus(PubSubSettings(project=project))

    def publish(self, event: Mapping[str, Any]) -> None:
        from orchestrator.migration import bus_publisher  # noqa: PLC0415

        bus_publisher(self.bus, self.topic)(event)

    def close(self) -> None:
        self.bus.close()


commands = [migrate]
