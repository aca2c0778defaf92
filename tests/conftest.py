"""Test tiers and shared fixtures.

The tier of a test is the directory it lives in (``tests/unit``, ``tests/integration``,
``tests/e2e``); the marker is applied here so ``pytest -m unit`` selects by tier without every
test repeating it. Fixture modules in ``tests/fixtures/`` (one per real component: the sandbox
API server, the Pub/Sub emulator, SeaweedFS, PostgreSQL) are loaded as plugins.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

import tests.fixtures as _fixtures

pytest_plugins = [
    f"tests.fixtures.{info.name}"
    for info in sorted(pkgutil.iter_modules(_fixtures.__path__), key=lambda m: m.name)
]

_TIERS = ("unit", "integration", "e2e")
# A test runs on the real control plane when it asks for it, or is the `real` case of a suite
# parametrized over both backends (a `backend` parameter).
_REAL_FIXTURES = {"control_plane", "real_install", "argo_real_install", "argo_install"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        relative = Path(str(item.fspath)).relative_to(root)
        tier = relative.parts[0] if relative.parts else ""
        if tier in _TIERS:
            item.add_marker(getattr(pytest.mark, tier))
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        if backend == "real" or _REAL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real)
