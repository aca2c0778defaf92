"""``tenantctl history`` and ``history purge`` on both backends (the same tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.history import open_store

NOW = datetime.now(UTC)


@pytest.fixture
def filled_store_url(history_store_url: str) -> str:
    store = open_store(history_store_url)
    try:
        rows = [
            ("b-old", "t1", "lifecycle.backup", NOW - timedelta(days=40), None),
            ("b-1", "t1", "lifecycle.upsert", NOW - timedelta(hours=30), "fleet-1"),
            ("b-2", "t2", "lifecycle.upsert", NOW - timedelta(hours=29), "fleet-1"),
            ("b-3", "t1", "lifecycle.backup", NOW - timedelta(hours=2), None),
            ("b-4", "t1", "lifecycle.upsert", NOW - timedelta(minutes=5), None),
        ]
        for batch, tenant, operation, at, parent in rows:
            store.record_request(
                batch,
                tenant=tenant,
                operation=operation,
                requested_at=at,
                parent_batch_id=parent,
                region="eu-west-1",
            )
            store.record_started(batch, at=at + timedelta(seconds=1))
            failed = batch == "b-3"
            store.record_finished(
                batch,
                "failed" if failed else "succeeded",
                [
                    {
                        "namespace": "team-a",
                        "job": "schema",
                        "status": "failed" if failed else "succeeded",
                    }
                ],
                message="team-a/schema BackoffLimitExceeded (exit 3)"
                if failed
                else "1 job(s) succeeded",
                at=at + timedelta(seconds=4),
            )
    finally:
        store.close()
    return history_store_url


def _history(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["history", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_history_for_a_tenant_is_newest_first(filled_store_url: str) -> None:
    code, out, _ = _history("--tenant", "t1", "--store", filled_store_url, "-o", "json")
    assert code == 0
    records = json.loads(out)
    assert [r["batchOperationId"] for r in records] == ["b-4", "b-3", "b-1", "b-old"]
    assert records[1]["outcome"] == "failed"
    assert records[1]["jobs"][0]["job"] == "schema"
    assert records[1]["durationSeconds"] == 3.0

    code, out, _ = _history("--tenant", "t1", "--store", filled_store_url)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "REQUESTED",
        "(UTC)",
        "TENANT",
        "OPERATION",
        "STATE",
        "DURATION",
        "BATCH",
        "MESSAGE",
    ]
    assert [line.split()[6] for line in lines[1:]] == ["b-4", "b-3", "b-1", "b-old"]
    assert "failed" in lines[2]
    assert lines[2].endswith("team-a/schema BackoffLimitExceeded (exit 3)")


def test_history_filters(filled_store_url: str) -> None:
    def ids(*args: str) -> list[str]:
        code, out, err = _history(*args, "--store", filled_store_url, "-o", "json")
        assert code == 0, err
        return [r["batchOperationId"] for r in json.loads(out)]

    assert ids("--since", "1d") == ["b-4", "b-3"]
    assert ids("--since", "3h", "--operation", "lifecycle.backup") == ["b-3"]
    assert ids("--parent", "fleet-1") == ["b-2", "b-1"]
    assert ids("--limit", "2") == ["b-4", "b-3"]
    since = (NOW - timedelta(hours=29, minutes=30)).strftime("%Y-%m-%dT%H:%M:%S")
    assert ids("--since", since) == ["b-4", "b-3", "b-2"]


def test_the_store_comes_from_the_environment(filled_store_url: str) -> None:
    code, out, _ = _history(
        "--tenant", "t2", "-o", "json", env={"TENANTCTL_STORE": filled_store_url}
    )
    assert code == 0
    assert [r["batchOperationId"] for r in json.loads(out)] == ["b-2"]


def test_bad_flags_are_one_line_errors(filled_store_url: str) -> None:
    code, _, err = _history("--since", "7x", "--store", filled_store_url)
    assert code == 2
    assert err.strip().splitlines() == [
        "error: --since: '7x' is not a duration "
        "(give a duration such as 30m, 12h, 7d or a date like 2026-11-01)"
    ]
    code, _, err = _history("purge", "--older-than", "30", "--store", filled_store_url)
    assert code == 2
    assert "'30' has no unit" in err
    assert "Traceback" not in err


def test_purge_keeps_the_retention_window(filled_store_url: str) -> None:
    code, out, _ = _history("purge", "--store", filled_store_url)
    assert code == 0
    assert out.strip() == "purged 1 record(s) older than 30d"
    code, out, _ = _history("--tenant", "t1", "--store", filled_store_url, "-o", "json")
    assert [r["batchOperationId"] for r in json.loads(out)] == ["b-4", "b-3", "b-1"]
    code, out, _ = _history("purge", "--older-than", "1d", "--store", filled_store_url)
    assert out.strip() == "purged 2 record(s) older than 1d"
