"""The history suite runs once per backend: the same tests on SQLite and on real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.history import HistoryStore, open_store


@pytest.fixture(params=["sqlite", "postgres"])
def history_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for a fresh, empty history store on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    url: str = request.getfixturevalue("postgres_database_url")
    return url


@pytest.fixture
def history_store(history_store_url: str) -> Iterator[HistoryStore]:
    store = open_store(history_store_url)
    try:
        yield store
    finally:
        store.close()
