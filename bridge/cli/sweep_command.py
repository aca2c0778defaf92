"""``python -m bridge sweep``: delete bridge pods and Secrets whose workflow is over."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from bridge.cli.options import bridge_settings, configure_logging, connection_options, fail
from bridge.errors import LifecycleError
from bridge.kube import Kube


@click.command()
@click.option(
    "--older-than",
    default="1h",
    show_default=True,
    help="Age after which finished bridge pods without a workflow go (e.g. 30m, 2h, 1d).",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@connection_options
def sweep(**params: Any) -> None:
    """Delete bridge pods and per-run Secrets whose workflow is finished or gone.

    \b
    Example:
      python -m bridge sweep --older-than 2h --dry-run
    """
    from bridge.sweep import Sweeper, parse_duration  # noqa: PLC0415 - not on run's path

    try:
        configure_logging(params)
        settings = bridge_settings(params)
        older_than = parse_duration(params["older_than"])
        with Kube(settings=settings.kube) as kube:
            report = Sweeper(
                kube,
                contract=settings.contract,
                older_than=older_than,
                dry_run=params["dry_run"],
            ).run()
    except LifecycleError as exc:
        fail(exc)
    verb = "would delete" if params["dry_run"] else "deleted"
    if params["as_json"]:
        click.echo(
            json.dumps(
                {
                    "dryRun": params["dry_run"],
                    "deleted": [vars(a) for a in report.deleted],
                    "kept": report.kept,
                    "errors": report.errors,
                }
            )
        )
    else:
        for action in report.deleted:
            click.echo(f"{verb} {action}")
    click.echo(
        f"sweep: {verb} {len(report.deleted)}, kept {report.kept}, errors {len(report.errors)}",
        err=True,
    )
    for error in report.errors:
        click.echo(f"  error: {error}", err=True)
    sys.exit(1 if report.errors else 0)
