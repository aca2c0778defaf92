"""``python -m bridge discover``: the operation's participants, planned in waves."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bridge.cli.options import (
    INPUTS_BASE64_HELP,
    bridge_settings,
    configure_logging,
    connection_options,
    fail,
    read_document,
)
from bridge.errors import ContractError, LifecycleError, UsageError
from bridge.kube import Kube


@click.command()
@click.option("--operation", required=True, help="Operation name, e.g. lifecycle.upsert.")
@click.option("--tenant-env-id", help="Tenant environment id (recorded in the plan).")
@click.option("--environment", help="Tenant environment YAML/JSON file (applications filter).")
@click.option("--inputs-base64", is_flag=True, help=INPUTS_BASE64_HELP)
@click.option("--output", type=click.Path(dir_okay=False), help="Write the plan JSON here.")
@click.option("--skip-invalid", is_flag=True, help="Proceed without invalid participants (listed).")
@connection_options
def discover(**params: Any) -> None:
    """List the Jobs taking part in an operation and plan them in waves.

    Opted-in namespaces and lifecycle Jobs are found by server-side label selectors. The plan
    JSON goes to --output (or stdout), a summary to stderr. A Job annotated for the operation
    but invalid or not suspended fails discovery (exit 1) unless --skip-invalid.

    \b
    Example:
      python -m bridge discover --operation lifecycle.upsert \\
          --tenant-env-id t-799a --environment env.yaml --output /tmp/plan.json
    """
    from bridge.discovery import discover as run_discovery  # noqa: PLC0415 - not on run's path
    from bridge.planner import summarize  # noqa: PLC0415

    try:
        configure_logging(params)
        settings = bridge_settings(params)
        environment = (
            read_document(params["environment"], "environment", encoded=params["inputs_base64"])
            if params.get("environment")
            else None
        )
        with Kube(settings=settings.kube) as kube:
            found = run_discovery(
                kube,
                operation=params["operation"],
                settings=settings.contract,
                environment=environment,
                tenant_env_id=params.get("tenant_env_id"),
                skip_invalid=params["skip_invalid"],
            )
        text = found.plan.to_compact_json()
        if params.get("output"):
            try:
                Path(params["output"]).write_text(text)
            except OSError as exc:
                raise UsageError(f"cannot write --output {params['output']}: {exc}") from exc
        else:
            click.echo(text)
        click.echo(
            f"discovery: {len(found.namespaces)} opted-in namespace(s), {found.jobs_seen} "
            f"labelled Job(s); {summarize(found.plan)}",
            err=True,
        )
        for wave in found.plan.waves:
            jobs = ", ".join(f"{j.namespace}/{j.name}" for j in wave.jobs)
            click.echo(f"  wave {wave.wave}: {jobs}", err=True)
        for rejected in found.plan.rejected:
            click.echo(f"  rejected {rejected.namespace}/{rejected.name}:", err=True)
            for error in rejected.errors:
                click.echo(f"    - {error}", err=True)
        for skipped in found.plan.skipped:
            click.echo(f"  skipped {skipped.namespace}/{skipped.name}: {skipped.reason}", err=True)
    except ContractError as exc:
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(1)
    except LifecycleError as exc:
        fail(exc)
