"""History pieces that need no database: durations, URLs, migrations ordering, JSON shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.errors import UsageError
from bridge.timefmt import format_duration, parse_duration
from orchestrator.history import HistoryError, HistoryRecord, default_store_url, open_store
from orchestrator.history.migrations import MIGRATIONS, Migration, pending
from orchestrator.history.postgres import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(days=14)),
        ("1h30m", timedelta(minutes=90)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("7", "'7' has no unit"),
        ("7x", "'7x' is not a duration"),
        ("d7", "'d7' is not a duration"),
        ("1.5h", "'1.5h' is not a duration"),
        ("-3d", "'-3d' is not a duration"),
        ("0d", "must be longer than zero"),
    ],
)
def test_bad_durations_say_what_and_how_to_fix(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_duration(text, what="--since")
    assert str(caught.value).startswith("--since: ")
    assert "e.g. 30m, 12h, 7d" in str(caught.value)


def test_format_duration_round_trips() -> None:
    assert format_duration(timedelta(days=1, hours=2)) == "1d2h"
    assert parse_duration(format_duration(timedelta(seconds=3725))) == timedelta(seconds=3725)
    assert format_duration(timedelta(0)) == "0s"


def test_default_store_url_prefers_the_env_then_xdg_state() -> None:
    assert default_store_url({"TENANTCTL_STORE": "postgresql://h/db"}) == "postgresql://h/db"
    assert (
        default_store_url({"XDG_STATE_HOME": "/var/state", "HOME": "/root"})
        == "sqlite:////var/state/tenant-lifecycle/history.db"
    )
    assert (
        default_store_url({"HOME": "/home/ops"})
        == "sqlite:////home/ops/.local/state/tenant-lifecycle/history.db"
    )


def test_open_store_by_url_and_by_path(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path}/a/history.db", str(tmp_path / "b.db")):
        store = open_store(url)
        store.record_request("b1", tenant="t1", operation="lifecycle.upsert")
        assert store.get("b1") is not None
        store.close()
    assert (tmp_path / "a" / "history.db").exists()
    with pytest.raises(UsageError, match="unknown scheme"):
        open_store("mysql://h/db")


def test_open_store_on_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HistoryError, match="cannot prepare history store"):
        open_store(str(junk))


def test_postgres_passwords_never_reach_messages() -> None:
    assert redact("postgresql://app:s3cret@db:5432/h") == "postgresql://app:***@db:5432/h"
    assert redact("postgresql://app@db/h") == "postgresql://app@db/h"


def test_migrations_are_ordered_and_pending_skips_applied() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert pending([], where="x") == list(MIGRATIONS)
    assert pending([1], where="x") == list(MIGRATIONS[1:])
    assert pending(versions, where="x") == []
    with pytest.raises(HistoryError, match="schema version 7"):
        pending([1, 7], where="x")
    with pytest.raises(ValueError, match="ascending"):
        pending([], [Migration(2, "", (), ()), Migration(1, "", (), ())], where="x")


def test_record_state_and_json_shape() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    record = HistoryRecord(batch_id="b", tenant="t", operation="lifecycle.upsert", requested_at=t0)
    assert record.state == "requested"
    assert record.duration_seconds is None
    data = record.to_json()
    assert data["requestedAt"] == "2026-01-01T00:00:00Z"
    assert data["tenantEnvId"] == "t"
    assert data["jobs"] == []
