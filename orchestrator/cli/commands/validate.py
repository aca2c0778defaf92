"""``tenantctl validate``: lint lifecycle Jobs in YAML files against the contract.

Teams run it before shipping a Job (and in their CI): it reads files or directories, checks
every Job and prints every problem with the file, the object, the field and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from bridge.contract import DEFAULT_PREFIX, ContractSettings
from bridge.manifests import INVALID, NOT_PARTICIPANT, VALID, CheckReport, check_manifests
from orchestrator.cli.output import echo_json, echo_table, output_option, plural

F = TypeVar("F", bound=Callable[..., Any])

PATHS_ARGUMENT = click.argument(
    "paths", nargs=-1, required=True, type=click.Path(allow_dash=True), metavar="PATH..."
)


def contract_options(function: F) -> F:
    """``--prefix`` and ``--legacy-key``: which annotation keys the contract reads.

    An organisation sets them once for every command with ``TENANTCTL_PREFIX`` and
    ``TENANTCTL_LEGACY_KEY``; the per-command ``TENANTCTL_<COMMAND>_PREFIX`` form works too.
    """
    command = function.__name__.upper()
    function = click.option(
        "--legacy-key",
        metavar="KEY",
        default=None,
        envvar=[f"TENANTCTL_{command}_LEGACY_KEY", "TENANTCTL_LEGACY_KEY"],
        help="also honour a single legacy annotation listing the operations, "
        "e.g. collibra.com/tenant.lifecycle [env TENANTCTL_LEGACY_KEY]",
    )(function)
    return click.option(
        "--prefix",
        metavar="PREFIX",
        default=DEFAULT_PREFIX,
        show_default=True,
        envvar=[f"TENANTCTL_{command}_PREFIX", "TENANTCTL_PREFIX"],
        help="DNS prefix of the contract's label and annotation keys [env TENANTCTL_PREFIX]",
    )(function)


def contract_settings(prefix: str, legacy_key: str | None) -> ContractSettings:
    """Build the settings once at the entry point (raises UsageError for a bad prefix/key)."""
    return ContractSettings(prefix=prefix, legacy_key=legacy_key or None)


def _report_json(report: CheckReport, settings: ContractSettings, valid: bool) -> dict[str, Any]:
    return {
        "valid": valid,
        "settings": {"prefix": settings.prefix, "legacyKey": settings.legacy_key},
        "summary": {
            "files": len(report.loaded.files),
            "documents": report.loaded.documents,
            "jobs": len(report.jobs),
            "valid": report.count(VALID),
            "invalid": report.count(INVALID),
            "notParticipating": report.count(NOT_PARTICIPANT),
            "ignored": dict(sorted(report.loaded.ignored.items())),
            "problems": len(report.problems),
        },
        "jobs": [job.to_json() for job in report.jobs],
        "problems": [problem.to_json() for problem in report.problems],
    }


def _print_text(report: CheckReport, *, valid: bool, empty: bool) -> None:
    rows = []
    for job in report.jobs:
        p = job.participant
        rows.append(
            (
                {VALID: "ok", INVALID: "INVALID", NOT_PARTICIPANT: "skip"}[job.status],
                f"{job.namespace}/{job.name}",
                ",".join(p.operations) if p else "-",
                p.wave if p else "-",
                job.manifest.source,
            )
        )
    echo_table(("STATUS", "JOB", "OPERATIONS", "WAVE", "SOURCE"), rows, empty="no Jobs found")
    problems = report.problems
    if problems:
        click.echo("")
        click.echo("problems:")
        for problem in problems:
            click.echo(f"  {problem}")
    loaded = report.loaded
    summary = (
        f"{plural(len(report.jobs), 'Job')} in {plural(len(loaded.files), 'file')}: "
        f"{report.count(VALID)} valid, {report.count(INVALID)} invalid, "
        f"{report.count(NOT_PARTICIPANT)} not taking part"
    )
    if loaded.ignored:
        summary += f"; ignored {loaded.ignored_summary()}"
    click.echo("")
    click.echo(summary)
    if valid:
        click.echo("OK: every lifecycle Job is valid")
    elif empty:
        click.echo(
            "FAILED: no lifecycle Job found (a Job takes part with the label and the operations "
            "annotation; pass --allow-empty if that is expected)"
        )
    else:
        click.echo(f"FAILED: {plural(len(problems), 'problem')}")


@click.command("validate")
@PATHS_ARGUMENT
@output_option
@contract_options
@click.option(
    "--allow-empty",
    is_flag=True,
    help="exit 0 even when the paths hold no lifecycle Job at all",
)
def validate(
    paths: tuple[str, ...], output: str, prefix: str, legacy_key: str | None, allow_empty: bool
) -> None:
    """Check lifecycle Jobs in YAML files against the contract.

    PATH is a file or a directory (searched recursively for *.yaml and *.yml; - reads stdin).
    Every problem of every Job is reported together, each naming the file and line, the Job,
    the field and the fix. Non-Job objects are ignored and counted; invalid YAML and a Job
    listed twice are problems.

    Exit status: 0 when every lifecycle Job is valid; 1 when there is any problem, or when no
    lifecycle Job was found at all (a wrong path should not pass CI; see --allow-empty);
    2 for a wrong flag or a missing path.

    \b
    Examples:
      tenantctl validate lifecycle-jobs/
      tenantctl validate -o json team-catalog/jobs.yaml | jq '.problems[]'
      tenantctl validate --prefix acme.io --legacy-key collibra.com/tenant.lifecycle k8s/
    """
    settings = contract_settings(prefix, legacy_key)
    report = check_manifests(paths, settings=settings)
    empty = report.count(VALID) + report.count(INVALID) == 0
    valid = not report.problems and (allow_empty or not empty)
    if output == "json":
        echo_json(_report_json(report, settings, valid))
    else:
        _print_text(report, valid=valid, empty=empty)
    if not valid:
        raise SystemExit(1)


commands: list[click.Command] = [validate]
