"""Versioned schema migrations for the history stores.

The schema is a numbered, append-only list: a store records in ``schema_version`` every
migration it applied, and on open applies the missing ones in order inside one transaction
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: under a transaction-scoped advisory lock, so replicas
starting together migrate exactly once). Never edit a released migration: add the next one.
Each migration carries the SQL for both dialects, side by side, so they cannot drift apart
unnoticed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .model import HistoryError


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


#: Timestamps in SQLite are ISO 8601 text of a fixed width (``2026-11-26T08:15:52.123456Z``), so
#: text order is time order and the indexes serve range queries; PostgreSQL has timestamptz.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="operations: one row per lifecycle request and its outcome",
        sqlite=(
            """
            CREATE TABLE operations (
                batch_id TEXT PRIMARY KEY,
                parent_batch_id TEXT,
                tenant TEXT NOT NULL,
                operation TEXT NOT NULL,
                region TEXT,
                source TEXT,
                requested_at TEXT NOT NULL,
                submitted_at TEXT,
                started_at TEXT,
                finished_at TEXT,
                outcome TEXT,
                message TEXT,
                workflow TEXT,
                jobs TEXT NOT NULL DEFAULT '[]'
            )
            """,
            "CREATE INDEX operations_tenant ON operations (tenant, requested_at)",
            "CREATE INDEX operations_operation ON operations (operation, requested_at)",
            "CREATE INDEX operations_requested ON operations (requested_at)",
        ),
        postgres=(
            """
            CREATE TABLE operations (
                batch_id TEXT PRIMARY KEY,
                parent_batch_id TEXT,
                tenant TEXT NOT NULL,
                operation TEXT NOT NULL,
                region TEXT,
                source TEXT,
                requested_at TIMESTAMPTZ NOT NULL,
                submitted_at TIMESTAMPTZ,
                started_at TIMESTAMPTZ,
                finished_at TIMESTAMPTZ,
                outcome TEXT,
                message TEXT,
                workflow TEXT,
                jobs JSONB NOT NULL DEFAULT '[]'::jsonb
            )
            """,
            "CREATE INDEX operations_tenant ON operations (tenant, requested_at)",
            "CREATE INDEX operations_operation ON operations (operation, requested_at)",
            "CREATE INDEX operations_requested ON operations (requested_at)",
        ),
    ),
    Migration(
        version=2,
        description="index fleet children by parent batch (history --parent, fleet --resume)",
        sqlite=("CREATE INDEX operations_parent ON operations (parent_batch_id, requested_at)",),
        postgres=("CREATE INDEX operations_parent ON operations (parent_batch_id, requested_at)",),
    ),
)

SCHEMA_VERSION_DDL = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    ),
    "postgres": (
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    ),
}


def pending(
    applied: Sequence[int], migrations: Sequence[Migration] = MIGRATIONS, *, where: str
) -> list[Migration]:
    """The migrations still to apply, in order; refuses a database from a newer release.

    ``where`` names the store in errors ("sqlite:///var/lib/…/history.db").
    """
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise ValueError(f"migrations must have unique ascending versions, got {versions}")
    known = set(versions)
    unknown = sorted(set(applied) - known)
    if unknown:
        raise HistoryError(
            f"history store {where} has schema version {max(unknown)}, newer than this "
            f"tenantctl knows (up to {max(known, default=0)})",
            hint="upgrade tenantctl; never point an older release at a migrated store",
        )
    done = set(applied)
    return [m for m in migrations if m.version not in done]
