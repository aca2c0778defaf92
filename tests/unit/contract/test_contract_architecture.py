"""The import rules of docs/architecture.md, checked on every module's imports (also the ones
inside functions): the bridge never imports the orchestrator, the sandbox imports nothing from
the product, and third-party I/O libraries live in one adapter module each."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("bridge", "orchestrator", "workflows", "sandbox", "testbed")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@functools.cache
def modules() -> dict[str, set[str]]:
    return {
        path.relative_to(ROOT).as_posix(): imports_of(path)
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def offenders(
    prefixes: tuple[str, ...], *, inside: str, allowed: tuple[str, ...] = ()
) -> list[str]:
    found = []
    for module, names in modules().items():
        if not module.startswith(f"{inside}/") or module in allowed:
            continue
        for name in sorted(names):
            if any(name == p or name.startswith(f"{p}.") for p in prefixes):
                found.append(f"{module} imports {name}")
    return found


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [
        ("bridge", ("orchestrator", "workflows", "sandbox", "testbed")),
        ("workflows", ("orchestrator", "sandbox", "testbed")),
        ("sandbox", ("bridge", "orchestrator", "workflows", "testbed")),
        ("testbed", ("bridge", "orchestrator", "workflows", "sandbox")),
    ],
)
def test_rooms_import_only_downwards(room: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(forbidden, inside=room) == []


@pytest.mark.parametrize(
    ("library", "home"),
    [
        (("kubernetes",), ("bridge/kube.py",)),
        (("boto3", "botocore"), ("bridge/storage.py",)),
        (
            ("google.cloud.pubsub", "google.cloud.pubsub_v1", "google.api_core"),
            ("orchestrator/pubsub.py", "orchestrator/pubsub_pull.py"),
        ),
        (("prometheus_client",), ("orchestrator/metrics.py",)),
    ],
)
def test_third_party_io_lives_in_one_adapter(
    library: tuple[str, ...], home: tuple[str, ...]
) -> None:
    found = [
        line
        for room in ("bridge", "orchestrator", "workflows")
        for line in offenders(library, inside=room, allowed=home)
    ]
    assert found == []


def test_the_contract_is_pure() -> None:
    """contract.py and planner.py do no I/O: no client, no files, no YAML."""
    for module in ("bridge/contract.py", "bridge/planner.py"):
        names = imports_of(ROOT / module)
        assert not {n for n in names if n.split(".")[0] in {"yaml", "kubernetes", "os", "io"}}


def top_level_imports_of(path: Path) -> set[str]:
    """Imports at module level only (not inside a function): what loading the module loads."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_orchestrator_loads_the_testbed_only_inside_the_cluster_command() -> None:
    """Rule 4 for the test bed: production code paths never load it."""
    found = []
    for path in sorted((ROOT / "orchestrator").rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        names = imports_of(path) if module != "orchestrator/cli/commands/cluster.py" else set()
        names |= top_level_imports_of(path)
        found += [f"{module} imports {n}" for n in sorted(names) if n.split(".")[0] == "testbed"]
    assert found == []
