"""``tenantctl demo``: the guided tour behind ``make demo`` (see :mod:`devtools.demo`)."""

from __future__ import annotations

from pathlib import Path

import click

from bridge.errors import UsageError
from orchestrator.cli.commands.run import OneLineCommand

# The example teams and tenant both tours use (`tenantctl demo`, `tenantctl cluster demo`).
jobs_option = click.option(
    "--jobs",
    "jobs_dir",
    default="lifecycle-jobs",
    show_default=True,
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="the example teams' Jobs to apply",
)
tenant_option = click.option(
    "--tenant-env-id", default="acme-prod-7f3a", show_default=True, metavar="ID"
)


def jobs_directory(jobs_dir: str) -> Path:
    """``--jobs`` as a directory, or the one-line usage error saying where to run from."""
    path = Path(jobs_dir)
    if not path.is_dir():
        raise UsageError(
            f"--jobs {jobs_dir}: no such directory",
            hint="run from the repository root, or pass --jobs path/to/lifecycle-jobs",
        )
    return path


@click.command("demo", cls=OneLineCommand)
@jobs_option
@tenant_option
@click.option(
    "--logs",
    type=click.Choice(["all", "failed", "none"]),
    default="all",
    show_default=True,
    help="which jobs' logs the story shows",
)
@click.option(
    "--no-storage",
    is_flag=True,
    help="skip the migration step (it starts SeaweedFS when `weed` is installed)",
)
@click.option(
    "--no-bus",
    is_flag=True,
    help="skip the result events (they start the Pub/Sub emulator when it is installed)",
)
def demo(*, jobs_dir: str, tenant_env_id: str, logs: str, no_storage: bool, no_bus: bool) -> None:
    """The whole product on this machine, with real work, in under a minute.

    Starts a local Kubernetes API (the sandbox: pods run as local processes), applies the
    example teams' Jobs, then runs with the local engine: lifecycle.upsert across three teams
    in waves -1, 0 and 1 (one job fails once and succeeds on its retry), the team admin
    operation catalog.reindex, lifecycle.migrate-out and migrate-in through SeaweedFS (when its
    `weed` binary is installed), and lifecycle.decommission; then the result event of each
    operation goes to the Pub/Sub emulator (when installed) and is read back. It says what
    happened after each step and stops everything it started. Exit status: 0 when every step
    did what it should, 1 when one did not, 130 when interrupted.

    \b
    Examples:
      tenantctl demo
      make demo
      tenantctl demo --logs failed --no-storage --no-bus
    """
    from devtools.demo import DemoSettings, run_demo  # noqa: PLC0415 - heavy

    path = jobs_directory(jobs_dir)
    settings = DemoSettings(
        jobs_dir=path,
        tenant_env_id=tenant_env_id,
        logs=logs,
        storage=not no_storage,
        bus=not no_bus,
    )
    raise SystemExit(run_demo(settings))


commands: list[click.Command] = [demo]
