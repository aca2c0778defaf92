"""The embedded history store: one SQLite file (stdlib ``sqlite3``), the default.

WAL journal so readers (``tenantctl history``) never block the writer (the orchestrator, a
fleet run); one connection shared by threads behind a lock, because a fleet records from
many worker threads and SQLite allows one writer at a time anyway. ``busy_timeout`` lets two
processes on the same file wait for each other instead of failing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from bridge.timefmt import rfc3339

from .migrations import MIGRATIONS, SCHEMA_VERSION_DDL, Migration, pending
from .model import HistoryError, as_utc, utcnow
from .sql import Dialect, SqlHistoryStore

_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(as_utc(value), precision="microseconds")


def _parse(value: str | None) -> datetime | None:
    return None if value is None else as_utc(datetime.strptime(value, _STAMP))


#: Timestamps as fixed-width UTC text (so they sort and compare as text); jobs as JSON text.
SQLITE = Dialect(
    placeholder="?",
    to_stamp=_stamp,
    from_stamp=_parse,
    to_jobs=lambda jobs: json.dumps(jobs, default=str),
    from_jobs=lambda raw: json.loads(raw or "[]"),
)


class SqliteHistoryStore(SqlHistoryStore):
    """:class:`~orchestrator.history.model.HistoryStore` on a SQLite file (or ``:memory:``)."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self._dialect = SQLITE
        self.path = str(path)
        self.where = f"sqlite:///{self.path}"
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            # isolation_level=None: we issue BEGIN ourselves, so a transaction is exactly
            # what the code says and DDL is inside it.
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise HistoryError(
                f"cannot open history store {self.where}: {exc}",
                hint="check the path exists and is writable, or pass --store",
            ) from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._prepare(migrations, deadline=time.monotonic() + busy_timeout)
        except sqlite3.Error as exc:
            self._conn.close()
            raise HistoryError(
                f"cannot prepare history store {self.where}: {exc}",
                hint="is the file a tenantctl history database?",
            ) from exc
        except BaseException:
            self._conn.close()
            raise

    # -- schema ---------------------------------------------------------------------------

    def _prepare(self, migrations: Sequence[Migration], *, deadline: float) -> None:
        """Switch to WAL and migrate, waiting out other replicas doing the same.

        SQLite answers "database is locked" at once, without its busy handler, in the cases it
        judges could deadlock -- the switch to WAL of a brand-new file racing another opener is
        one. Replicas opening a new store together must all succeed, so retry until the busy
        timeout is spent.
        """
        delay = 0.01
        while True:
            try:
                if self.path != ":memory:":
                    self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._migrate(migrations)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")  # takes the write lock: concurrent openers queue here
        try:
            conn.execute(SCHEMA_VERSION_DDL["sqlite"])
            applied = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
            for migration in pending(applied, migrations, where=self.where):
                for statement in migration.sqlite:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at)"
                    " VALUES (?, ?, ?)",
                    (migration.version, migration.description, _stamp(utcnow())),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise HistoryError(f"history store {self.where}: {exc}") from exc
