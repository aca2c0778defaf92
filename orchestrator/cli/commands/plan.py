"""``tenantctl plan``: show the waves an operation would run over Jobs in YAML files.

The same planner discovery uses (``bridge.planner``), fed from files instead of the cluster, so
a team sees where its Job lands before shipping it. ``--output json`` prints the plan JSON that
discovery hands to Argo.
"""

from __future__ import annotations

from typing import Any

import click

from bridge.contract import operation_name_problem
from bridge.errors import UsageError
from bridge.manifests import check_manifests
from bridge.planner import (
    Plan,
    build_plan,
    environment_applications,
    plan_limits_problem,
    plan_size,
    summarize,
)
from orchestrator.cli.commands.validate import PATHS_ARGUMENT, contract_options, contract_settings
from orchestrator.cli.inputs import load_environment
from orchestrator.cli.output import echo_json, echo_table, output_option, plural


def _print_text(plan: Plan, environment: dict[str, Any] | None) -> None:
    tenant = f" for tenant {plan.tenant_env_id}" if plan.tenant_env_id else ""
    if environment is None:
        scope = "no --environment: the applications filter is not applied"
    else:
        apps = environment_applications(environment) or []
        scope = f"environment applications: {', '.join(apps) or 'none'}"
    click.echo(f"plan: {plan.operation}{tenant} ({scope})")
    click.echo("")
    rows = [
        (
            wave.wave,
            job.key,
            job.on_failure.value,
            job.delete_policy.value,
            ",".join(job.applications) or None,
        )
        for wave in plan.waves
        for job in wave.jobs
    ]
    echo_table(
        ("WAVE", "JOB", "ON-FAILURE", "DELETE-POLICY", "APPLICATIONS"),
        rows,
        empty=f"no Job takes part in {plan.operation}",
    )
    if plan.skipped:
        click.echo("")
        click.echo("skipped by the applications filter:")
        for skipped in plan.skipped:
            click.echo(f"  {skipped.key}: {skipped.reason}")
    if plan.rejected:
        click.echo("")
        click.echo("rejected (invalid Jobs, not run; see tenantctl validate):")
        for rejected in plan.rejected:
            for error in rejected.errors:
                click.echo(f"  {rejected.key}: {error}")
    click.echo("")
    click.echo(f"{summarize(plan)}; plan JSON {plan_size(plan)} bytes")


@click.command("plan")
@click.option(
    "--operation",
    required=True,
    metavar="OP",
    help="operation to plan, e.g. lifecycle.upsert or <team>.<operation>",
)
@click.option(
    "--environment",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="tenant environment YAML (applications: [..]) for the applications filter",
)
@click.option("--tenant-env-id", metavar="ID", help="tenant environment id, recorded in the plan")
@click.option("--strict", is_flag=True, help="exit 1 when any Job is rejected as invalid")
@output_option
@contract_options
@PATHS_ARGUMENT
def plan(
    *,
    operation: str,
    environment: str | None,
    tenant_env_id: str | None,
    strict: bool,
    output: str,
    prefix: str,
    legacy_key: str | None,
    paths: tuple[str, ...],
) -> None:
    """Show the waves OPERATION would run over the Jobs in PATH (files or directories).

    Lower waves finish before higher ones start; jobs inside a wave run in parallel and are
    listed by namespace/name. Jobs whose applications the tenant environment does not list are
    skipped; invalid Jobs are listed as rejected. Without --environment no job is filtered.

    Exit status: 0 when the plan was built (rejected Jobs included, unless --strict); 1 when a
    file could not be read or parsed (the plan may then be incomplete) or when Argo could not
    run the plan (more than 256 kB, or more than 90 distinct waves); 2 for a wrong flag.

    \b
    Examples:
      tenantctl plan --operation lifecycle.upsert lifecycle-jobs/
      echo 'applications: [catalog]' > env.yaml
      tenantctl plan --operation lifecycle.upsert --environment env.yaml -o json lifecycle-jobs/

    \b
    The JSON form is the one discovery emits for Argo's withParam:
      {"operation", "tenantEnvId", "waves": [{"wave", "jobs": [{"namespace", "name", "wave",
       "onFailure", "deletePolicy"}]}], "rejected": [{"namespace", "name", "errors"}],
       "skipped": [{"namespace", "name", "reason"}]}
    """
    problem = operation_name_problem(operation)
    if problem:
        raise UsageError(
            f"--operation: {problem}", hint="use e.g. lifecycle.upsert or <team>.<operation>"
        )
    settings = contract_settings(prefix, legacy_key)
    env = load_environment(environment) if environment else None
    report = check_manifests(paths, settings=settings)
    result = build_plan(
        report.participants(),
        operation=operation,
        environment=env,
        rejected=report.rejected(),
        tenant_env_id=tenant_env_id,
    )
    if output == "json":
        echo_json(result.to_json())
    else:
        _print_text(result, env)
    for file_problem in report.file_problems:
        click.echo(f"error: {file_problem}", err=True)
    if report.file_problems:
        click.echo(
            f"error: {plural(len(report.file_problems), 'file problem')}: the plan may be "
            "missing Jobs",
            err=True,
        )
        raise SystemExit(1)
    if strict and result.rejected:
        click.echo(f"error: {plural(len(result.rejected), 'Job')} rejected (--strict)", err=True)
        raise SystemExit(1)
    limits = plan_limits_problem(result)
    if limits:
        # Discovery refuses this plan in the Workflow's first step; say so before it is shipped.
        click.echo(f"error: {limits}: discovery will refuse it", err=True)
        click.echo(
            "hint: use fewer distinct waves, or split the operation by application", err=True
        )
        raise SystemExit(1)


commands: list[click.Command] = [plan]
