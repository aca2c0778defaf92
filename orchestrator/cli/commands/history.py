"""``tenantctl history``: what happened to a tenant, an operation, a fleet run.

Reads the operation history the orchestrator (and ``tenantctl fleet``) record; ``history
purge`` enforces the retention and is meant to run from a CronJob (see docs/fleet.md). After the
table, each failed operation's failing jobs, their reasons and where their logs are (on stderr,
so the table on stdout stays one line per record for scripts).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click

from bridge.errors import UsageError
from bridge.timefmt import format_duration, parse_duration
from orchestrator.cli.commands.listen import workflow_namespace_option
from orchestrator.cli.commands.status import argo_command, ui_link, ui_url_option
from orchestrator.history import HistoryRecord, HistoryStore, default_store_url, open_store

STORE_HELP = (
    "history store URL: sqlite:///path.db or postgresql://user@host/db "
    "[env TENANTCTL_STORE; default sqlite:///$XDG_STATE_HOME/tenant-lifecycle/history.db]"
)


def store_option(function: click.decorators.FC) -> click.decorators.FC:
    """``--store URL`` with ``TENANTCTL_STORE``; shared by ``history`` and ``fleet``."""
    return click.option("--store", envvar="TENANTCTL_STORE", metavar="URL", help=STORE_HELP)(
        function
    )


def open_history(url: str | None) -> HistoryStore:
    return open_store(url or default_store_url())


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``7d``/``12h`` (ago) or an ISO 8601 date/time (UTC when no offset is given)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        pass
    else:
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        return (now or datetime.now(UTC)) - parse_duration(text, what="--since")
    except UsageError as exc:
        raise UsageError(
            exc.message, hint="give a duration such as 30m, 12h, 7d or a date like 2026-11-01"
        ) from exc


def _cell(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _duration(record: HistoryRecord) -> str:
    seconds = record.duration_seconds
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else str(timedelta(seconds=round(seconds)))


def render_table(records: list[HistoryRecord]) -> str:
    """Fixed columns, newest first; the message column carries the failure reason."""
    header = ("REQUESTED (UTC)", "TENANT", "OPERATION", "STATE", "DURATION", "BATCH", "MESSAGE")
    rows = [header] + [
        (
            _cell(r.requested_at),
            r.tenant,
            r.operation,
            r.state,
            _duration(r),
            r.batch_id,
            (r.message or "").replace("\n", " ")[:80],
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def failure_lines(
    records: list[HistoryRecord], *, namespace: str, ui_url: str | None = None
) -> list[str]:
    """For each failed operation: the jobs that did not succeed with their reasons, the
    command that prints the last attempt's log, and for an Argo run ``tenantctl status`` (the
    job's node and ``argo logs`` command), ``argo get`` and the UI link."""
    lines: list[str] = []
    for record in records:
        if record.state != "failed":
            continue
        lines += ["", f"failed {record.batch_id}: {record.operation} for tenant {record.tenant}"]
        failed = [j for j in record.jobs if j.get("status") not in ("succeeded", "skipped")]
        for job in failed:
            where = f"{job.get('namespace')}/{job.get('job')}"
            wave = f" (wave {job['wave']})" if job.get("wave") is not None else ""
            exit_code = job.get("exitCode")
            why = job.get("reason") or job.get("status")
            if exit_code is not None:
                why = f"{why}, exit code {exit_code}"
            lines.append(f"  {where}{wave}: {why}")
            if job.get("message"):
                lines.append(f"    {job['message']}")
            pods = [a.get("pod") for a in job.get("attempts") or () if a.get("pod")]
            if pods:
                # The bridge keeps a failed job's pods (delete-policy succeeded, the default).
                lines.append(f"    last attempt's log: kubectl -n {job.get('namespace')} "
                             f"logs {pods[-1]}")  # fmt: skip
        if not failed and record.message:
            lines.append(f"  {record.message}")
        # The local engine records the batch id as its "workflow": only Argo runs have one.
        if record.workflow and record.workflow != record.batch_id:
            lines.append(f"  its nodes and logs: tenantctl status {record.batch_id}; "
                         f"{argo_command(namespace, 'get', record.workflow)}")  # fmt: skip
            if ui_url:
                lines.append(f"  Argo UI: {ui_link(ui_url, namespace, record.workflow)}")
    return lines


@click.group(invoke_without_command=True)
@click.option("--tenant", metavar="ID", help="only this tenant environment id")
@click.option("--operation", metavar="OP", help="only this operation, e.g. lifecycle.backup")
@click.option("--since", metavar="AGE|DATE", help="only requests newer than 7d, 12h, 30m or a date")
@click.option("--parent", metavar="BATCH", help="only the tenants of this fleet run (parent id)")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@store_option
@workflow_namespace_option
@ui_url_option
@click.pass_context
def history(
    ctx: click.Context,
    *,
    tenant: str | None,
    operation: str | None,
    since: str | None,
    parent: str | None,
    limit: int,
    output: str,
    store: str | None,
    workflow_namespace: str,
    argo_ui_url: str | None,
) -> None:
    """Show recorded lifecycle operations, newest first.

    Every request the orchestrator or a fleet run handled is on record: tenant, operation,
    region, batch ids, requested/submitted/started/finished times, outcome and each job's
    result (in --output json). After the table (on stderr), each failed operation's failing
    jobs with their reasons, the command that prints the last attempt's log and, for Argo runs,
    `tenantctl status BATCH` (the job's `argo logs` command), `argo get` and the UI link.

    \b
    Examples:
      tenantctl history --tenant 799a1c --since 30d
      tenantctl history --operation lifecycle.backup --since 12h -o json
      tenantctl history --parent fleet-20261126t0200-3fa9c1
      tenantctl history purge --older-than 30d
    """
    if ctx.invoked_subcommand is not None:
        return
    since_at = parse_since(since) if since else None
    history_store = open_history(store)
    try:
        records = history_store.query(
            tenant=tenant, operation=operation, since=since_at, parent=parent, limit=limit
        )
    finally:
        history_store.close()
    if output == "json":
        click.echo(json.dumps([r.to_json() for r in records], indent=2))
    elif records:
        click.echo(render_table(records))
        for line in failure_lines(records, namespace=workflow_namespace,
                                  ui_url=argo_ui_url or None):  # fmt: skip
            click.echo(line, err=True)
    else:
        click.echo("no recorded operations match", err=True)


@history.command("purge")
@click.option(
    "--older-than",
    metavar="AGE",
    default="30d",
    show_default=True,
    help="delete records finished (or requested, if never finished) longer ago than this",
)
@store_option
def purge(*, older_than: str, store: str | None) -> None:
    """Delete history older than the retention (default 30 days).

    Run it daily, e.g. from a Kubernetes CronJob (docs/fleet.md has one).

    \b
    Examples:
      tenantctl history purge
      tenantctl history purge --older-than 90d --store postgresql://history@db/lifecycle
    """
    age = parse_duration(older_than, what="--older-than")
    history_store = open_history(store)
    try:
        deleted = history_store.purge(age)
    finally:
        history_store.close()
    click.echo(f"purged {deleted} record(s) older than {format_duration(age)}")


commands: list[click.Command] = [history]
