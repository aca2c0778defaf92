"""``tenantctl storage`` without a server: help, rendering, and one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from orchestrator.cli import main


@pytest.mark.parametrize(
    "argv",
    [["storage", "--help"], ["storage", "lifecycle-policy", "--help"], ["storage", "verify", "-h"]],
)
def test_every_storage_command_has_an_example(argv: list[str]) -> None:
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "tenantctl storage" in result.output


def test_the_rendered_policy_keeps_backups_longer_than_exports() -> None:
    result = CliRunner().invoke(
        main,
        ["storage", "lifecycle-policy"],
        env={"BRIDGE_STORAGE_BUCKET": "tenant-data", "BRIDGE_STORAGE_BACKUP_RETENTION_DAYS": "90"},
    )
    assert result.exit_code == 0, result.output
    days = {
        r["ID"]: r.get("Expiration", {}).get("Days") for r in json.loads(result.stdout)["Rules"]
    }
    assert days["tenant-lifecycle-exports"] == 7
    assert days["tenant-lifecycle-backups"] == 90


def test_bad_settings_are_one_line_usage_errors() -> None:
    result = CliRunner().invoke(
        main,
        ["storage", "lifecycle-policy"],
        env={"BRIDGE_STORAGE_BUCKET": "tenant-data", "BRIDGE_STORAGE_EXPORT_RETENTION_DAYS": "a"},
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: storage settings (environment): export_retention_days: 'a' is not an integer "
        "(write a whole number)\n"
    )
    missing = CliRunner().invoke(
        main, ["storage", "lifecycle-policy"], env={"BRIDGE_STORAGE_BUCKET": ""}
    )
    assert missing.exit_code == 2
    assert "bucket is not set" in missing.stderr
    assert "Traceback" not in result.output + missing.output
