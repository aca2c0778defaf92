"""``tenantctl storage``: the object store behind migrate-out/in, backup and restore.

``lifecycle-policy`` renders (and with ``--apply`` puts and reads back) the bucket lifecycle
rules that expire migration exports and keep backups; ``verify`` checks an export against its
``_manifest.json`` the way the bridge does before an import. Settings come from ``--config
FILE`` and ``BRIDGE_STORAGE_*`` (the same settings the bridge uses; docs/storage.md).
"""

from __future__ import annotations

import json
from typing import Any

import click

from bridge.errors import StorageError

CONFIG_HELP = "storage settings YAML (the bridge's); BRIDGE_STORAGE_* env variables override it"


def _load(config: str | None, **defaults: Any) -> Any:
    from bridge.storage_settings import load_storage_settings  # noqa: PLC0415 - keep --help fast

    return load_storage_settings(config, defaults=defaults)


@click.group("storage")
def storage() -> None:
    """Object storage for storage operations: retention policy and export verification.

    \b
    Examples:
      tenantctl storage lifecycle-policy --config storage.yaml
      tenantctl storage lifecycle-policy --config storage.yaml --apply
      tenantctl storage verify s3://tenant-data/t1/lifecycle.migrate-out/b1/team-archive/archive/
    """


@storage.command("lifecycle-policy")
@click.option("--config", "config", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option(
    "--apply",
    is_flag=True,
    help="put the rules on the bucket (other rules there are kept) and read them back",
)
def lifecycle_policy(config: str | None, apply: bool) -> None:
    """Render the bucket lifecycle configuration: exports expire, backups are kept.

    Sealed exports (lifecycle.migrate-out) expire after export_retention_days, sealed backups
    (lifecycle.backup) after backup_retention_days; rules select on the object tag
    tenant-lifecycle.dev/retention that the bridge sets when it seals an export. Incomplete
    multipart uploads are aborted after one day. Prints the configuration as JSON; with
    --apply, prints what the server returned after the put.

    \b
    Examples:
      tenantctl storage lifecycle-policy --config storage.yaml
      BRIDGE_STORAGE_BUCKET=tenant-data BRIDGE_STORAGE_CREDENTIALS=static \\
        tenantctl storage lifecycle-policy --apply
    """
    from bridge.export_manifest import RULE_ID_PREFIX, merge_rules, retention_rules  # noqa: PLC0415 - keep --help fast
    from bridge.storage import ObjectStore  # noqa: PLC0415 - keep --help fast

    settings = _load(config)
    ours = retention_rules(
        export_retention_days=settings.export_retention_days,
        backup_retention_days=settings.backup_retention_days,
    )
    if not apply:
        click.echo(json.dumps({"Rules": ours}, indent=2))
        return
    with ObjectStore(settings) as store:
        existing = store.get_lifecycle_rules(settings.bucket)
        store.put_lifecycle_rules(settings.bucket, merge_rules(existing, ours))
        read_back = store.get_lifecycle_rules(settings.bucket)
    applied = {r.get("ID"): r for r in read_back}
    missing = [r["ID"] for r in ours if applied.get(r["ID"]) != r]
    if missing:
        raise StorageError(
            f"bucket {settings.bucket}: rule(s) {', '.join(missing)} did not read back as put",
            hint="the store may not support tag filters or these actions; see docs/storage.md",
        )
    click.echo(json.dumps({"Rules": read_back}, indent=2, default=str))
    ours_count = sum(1 for r in read_back if str(r.get("ID", "")).startswith(RULE_ID_PREFIX))
    click.echo(
        f"applied {ours_count} rule(s) to bucket {settings.bucket} and read them back",
        err=True,
    )


@storage.command("verify")
@click.argument("url")
@click.option("--config", "config", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for scripts",
)
def verify(url: str, config: str | None, output: str) -> None:
    """Verify an export against its _manifest.json: every object present, same size and sha256.

    Exits 0 when the export is intact, 1 naming the first failing key otherwise (all failing
    keys are listed). The bucket comes from the URL; endpoint, region and keys from --config
    and BRIDGE_STORAGE_*.

    \b
    Examples:
      tenantctl storage verify s3://tenant-data/t1/lifecycle.migrate-out/b1/team-archive/archive/
      tenantctl storage verify --config storage.yaml -o json s3://tenant-data/t1/...
    """
    from bridge.export_manifest import ManifestVerificationError, verify_location  # noqa: PLC0415 - keep --help fast
    from bridge.storage import Location, ObjectStore  # noqa: PLC0415 - keep --help fast

    location = Location.parse(url)
    settings = _load(config, bucket=location.bucket)
    with ObjectStore(settings) as store:
        report = verify_location(store, location)
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "location": report.location,
                    "ok": report.ok,
                    "checked": report.checked,
                    "failures": [{"key": f.key, "problem": f.problem} for f in report.failures],
                },
                indent=2,
            )
        )
    elif report.ok:
        click.echo(
            f"ok: {report.location}: {report.checked} object(s), every size and sha256 equal"
        )
    else:
        for failure in report.failures:
            click.echo(f"FAILED {failure.key}: {failure.problem}")
    if not report.ok:
        raise ManifestVerificationError(report)


commands: list[click.Command] = [storage]
