"""The import rules of docs/architecture.md, checked on every module's imports (also the ones
inside functions): the bridge never imports the orchestrator, the sandbox imports nothing from
the product, third-party I/O libraries live in one adapter module each, no room imports itself
in a circle, and product modules and functions stay a size a reader can hold in mind.

Every failure names the offending module and import, so the fix starts from the message."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
#: Top-level directories with Python that are not rooms: the tests and the benchmarks may
#: import any room (and the rooms never import them).
NOT_ROOMS = frozenset({"tests", "bench"})
#: Every top-level package is a room, so a new room (a dev-tools room, say) is checked the day
#: it appears, without anyone remembering to list it here.
PACKAGES = tuple(
    sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in NOT_ROOMS)
)
#: What ships and runs in production: held to the size limits below.
PRODUCT = ("bridge", "orchestrator", "workflows")


def test_every_known_room_is_checked() -> None:
    assert set(PRODUCT) | {"sandbox", "testbed", "tools"} <= set(PACKAGES)


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
    """``module imports name`` for each import of ``prefixes`` in room ``inside``; ``allowed``
    holds module paths, or folders ending in ``/``, that may import them."""
    found = []
    for module, names in modules().items():
        if not module.startswith(f"{inside}/"):
            continue
        if any(module == a or (a.endswith("/") and module.startswith(a)) for a in allowed):
            continue
        for name in sorted(names):
            if any(name == p or name.startswith(f"{p}.") for p in prefixes):
                found.append(f"{module} imports {name}")
    return found


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [
        ("bridge", ("orchestrator", "workflows", *(p for p in PACKAGES if p not in PRODUCT))),
        ("workflows", ("orchestrator", *(p for p in PACKAGES if p not in PRODUCT))),
        ("sandbox", tuple(p for p in PACKAGES if p != "sandbox")),
        ("testbed", tuple(p for p in PACKAGES if p != "testbed")),
    ],
)
def test_rooms_import_only_downwards(room: str, forbidden: tuple[str, ...]) -> None:
    found = offenders(forbidden, inside=room)
    assert not found, "\n".join(["", *found])


def test_no_room_imports_the_tests_or_the_benchmarks() -> None:
    """Tests and benchmarks import the rooms, never the reverse: a helper both need lives in a
    room (``tools/jobs.py``, say) so shipping code never depends on test code."""
    found = [line for room in PACKAGES for line in offenders(tuple(NOT_ROOMS), inside=room)]
    assert not found, "\n".join(["", *found])


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
        # Deployments without PostgreSQL never load the driver: one module opens connections.
        (("psycopg", "psycopg_pool"), ("orchestrator/history/postgres.py",)),
        # hera builds Argo objects; only the room that defines them may know it exists.
        (("hera",), ("workflows/",)),
    ],
)
def test_third_party_io_lives_in_one_adapter(
    library: tuple[str, ...], home: tuple[str, ...]
) -> None:
    found = [line for room in PRODUCT for line in offenders(library, inside=room, allowed=home)]
    assert not found, "\n".join(["", *found])


def test_the_contract_is_pure() -> None:
    """contract.py and planner.py do no I/O: no client, no files, no YAML."""
    for module in ("bridge/contract.py", "bridge/planner.py"):
        names = imports_of(ROOT / module)
        assert not {n for n in names if n.split(".")[0] in {"yaml", "kubernetes", "os", "io"}}


def top_level_imports_of(path: Path) -> set[str]:
    """Imports that run when the module loads: everything outside a function body (module
    level, class bodies, ``if`` blocks, ``TYPE_CHECKING`` blocks included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in _outside_functions(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _outside_functions(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        yield child
        yield from _outside_functions(child)


def test_the_orchestrator_loads_the_testbed_only_inside_the_cluster_command() -> None:
    """Rule 4 for the test bed: production code paths never load it."""
    found = []
    for path in sorted((ROOT / "orchestrator").rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        names = imports_of(path) if module != "orchestrator/cli/commands/cluster.py" else set()
        names |= top_level_imports_of(path)
        found += [f"{module} imports {n}" for n in sorted(names) if n.split(".")[0] == "testbed"]
    assert not found, "\n".join(["", *found])


def test_the_orchestrator_loads_the_dev_rooms_only_inside_a_command_body() -> None:
    """Rule 4 for the sandbox and every other room that is not product (the dev tools): no
    orchestrator module loads one when it is imported, and only a CLI command's body
    (``tenantctl sandbox up``, ``tenantctl demo``...) imports one at all, so production code
    paths never load a stand-in."""
    dev_rooms = {p for p in PACKAGES if p not in PRODUCT}
    commands = "orchestrator/cli/commands/"
    found = []
    for path in sorted((ROOT / "orchestrator").rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        loaded = top_level_imports_of(path)
        anywhere = imports_of(path) if not module.startswith(commands) else set()
        for name in sorted(loaded | anywhere):
            if name.split(".")[0] in dev_rooms:
                where = "at module level" if name in loaded else "outside a CLI command"
                found.append(f"{module} imports {name} {where}")
    assert not found, "\n".join(["", *found])


# --------------------------------------------------------------------------------------------
# no import cycle inside a room
# --------------------------------------------------------------------------------------------


def _module_name(module: str) -> str:
    """``sandbox/api.py`` -> ``sandbox.api``; ``sandbox/__init__.py`` -> ``sandbox``."""
    parts = module.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(module: str) -> Iterator[str]:
    """Every module name ``module`` imports, relative imports made absolute, function-level
    and ``TYPE_CHECKING`` imports included: a cycle hidden in a function or behind a type
    check is still two modules that cannot be understood one without the other."""
    path = ROOT / module
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(module).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            # ``from pkg import name`` imports the submodule pkg.name when there is one, else
            # pkg itself: import_graph resolves each name to the nearest module that exists.
            yield from (f"{base}.{alias.name}" for alias in node.names)


@functools.cache
def import_graph(room: str) -> dict[str, set[str]]:
    """Module path -> the module paths of the same room it imports."""
    paths = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / room).rglob("*.py"))]
    by_name = {_module_name(p): p for p in paths}
    graph: dict[str, set[str]] = {}
    for module in paths:
        targets: set[str] = set()
        for name in _imported_names(module):
            while name and name not in by_name:
                name = name.rpartition(".")[0]
            if name:
                targets.add(by_name[name])
        targets.discard(module)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """One shortest cycle per strongly connected group, as ``a.py -> b.py -> a.py``."""
    found: list[str] = []
    seen: set[str] = set()
    for start in sorted(graph):
        if start in seen:
            continue
        path = _shortest_path_back(graph, start)
        if path is None:
            continue
        group = _reachable(graph, start) & _reaching(graph, start)
        seen |= group
        found.append(" -> ".join([*path, start]))
    return found


def _shortest_path_back(graph: dict[str, set[str]], start: str) -> list[str] | None:
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return path[::-1]
                if target not in parents:
                    parents[target] = node
                    following.append(target)
        frontier = following
    return None


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    found, stack = {start}, [start]
    while stack:
        for target in graph[stack.pop()] - found:
            found.add(target)
            stack.append(target)
    return found


def _reaching(graph: dict[str, set[str]], start: str) -> set[str]:
    reverse: dict[str, set[str]] = {m: set() for m in graph}
    for module, targets in graph.items():
        for target in targets:
            reverse[target].add(module)
    return _reachable(reverse, start)


def test_cycles_are_found_and_named() -> None:
    graph = {"r/a.py": {"r/b.py"}, "r/b.py": {"r/c.py"}, "r/c.py": {"r/a.py"}, "r/d.py": set()}
    assert cycles(graph) == ["r/a.py -> r/b.py -> r/c.py -> r/a.py"]
    assert cycles({"r/a.py": {"r/b.py"}, "r/b.py": set()}) == []


@pytest.mark.parametrize("room", PACKAGES)
def test_no_import_cycle_inside_a_room(room: str) -> None:
    found = cycles(import_graph(room))
    assert not found, "\n".join(["", *found])


# --------------------------------------------------------------------------------------------
# sizes a reader can hold in mind
# --------------------------------------------------------------------------------------------

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
#: Product modules allowed over MAX_MODULE_LINES: ``path -> why``. Empty on purpose; an entry
#: needs a reason a reviewer accepts (one concept that cannot be cut without hiding it).
MODULE_SIZE_EXCEPTIONS: dict[str, str] = {}
#: Product functions allowed over MAX_FUNCTION_LINES: ``path::Qualified.name -> why``. Empty on
#: purpose, like MODULE_SIZE_EXCEPTIONS.
FUNCTION_SIZE_EXCEPTIONS: dict[str, str] = {}


def _product_modules() -> list[Path]:
    return [path for room in PRODUCT for path in sorted((ROOT / room).rglob("*.py"))]


def function_lengths(path: Path) -> dict[str, int]:
    """``path::Qualified.name`` -> lines from ``def`` to the last line (decorators not counted),
    for every function and method, nested ones included."""
    module = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lengths[f"{module}::{name}"] = (
                        (child.end_lineno or child.lineno) - child.lineno + 1
                    )
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return lengths


def test_product_modules_stay_under_the_size_limit() -> None:
    found = []
    for path in _product_modules():
        module = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES and module not in MODULE_SIZE_EXCEPTIONS:
            found.append(f"{module}: {lines} lines (limit {MAX_MODULE_LINES})")
    assert not found, "\n".join(["", *found])


def test_product_functions_stay_under_the_size_limit() -> None:
    found = []
    for path in _product_modules():
        for function, lines in function_lengths(path).items():
            if lines > MAX_FUNCTION_LINES and function not in FUNCTION_SIZE_EXCEPTIONS:
                found.append(f"{function}: {lines} lines (limit {MAX_FUNCTION_LINES})")
    assert not found, "\n".join(["", *found])


def test_size_exceptions_are_still_needed() -> None:
    """An exception that no longer applies is removed, so the list stays the list of debts."""
    modules_over = {
        path.relative_to(ROOT).as_posix()
        for path in _product_modules()
        if len(path.read_text(encoding="utf-8").splitlines()) > MAX_MODULE_LINES
    }
    functions_over = {
        name
        for path in _product_modules()
        for name, lines in function_lengths(path).items()
        if lines > MAX_FUNCTION_LINES
    }
    assert sorted(set(MODULE_SIZE_EXCEPTIONS) - modules_over) == []
    assert sorted(set(FUNCTION_SIZE_EXCEPTIONS) - functions_over) == []
