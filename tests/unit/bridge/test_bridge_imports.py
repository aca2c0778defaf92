"""What ``python -m bridge run`` imports in a pod: nothing from the deny-list (issue 21).

Every job of every tenant starts one bridge in a fresh interpreter, so its imports are paid
thousands of times a day. The run path uses only a few modules of the official ``kubernetes``
client (its ``Configuration``, its urllib3 transport, its in-cluster loader; see
``bridge.kube._import_official``); the rest of that package -- every generated model, the
dynamic client, the kubeconfig loader with ``google.auth`` and ``cryptography`` -- must stay out.

The import graph is the interpreter's own: ``python -X importtime -m bridge run ...`` prints
one line per module imported, nested under the module whose import caused it, so a failure
names the chain that pulled a denied module in. The bridge runs as in a pod (in-cluster
service account, ``KUBERNETES_SERVICE_HOST``/``PORT``) against a port that refuses
connections: argument parsing, settings, hooks, configuration loading, the transport and a
first request all run; it then exits 75 (API unreachable).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# Modules a bridge run must not import (a name denies the module and its submodules).
DENIED = (
    "kubernetes.client.models",  # every generated model class
    "kubernetes.client.api",  # every generated API class
    "kubernetes.client.api_client",  # imports the models (and pydantic)
    "kubernetes.dynamic",
    "kubernetes.watch",
    "kubernetes.stream",
    "kubernetes.leaderelection",
    "kubernetes.informer",
    "kubernetes.config.kube_config",  # the kubeconfig loader: for kubeconfig users only
    "kubernetes_validate",
    "google",  # google.auth via kube_config; google.cloud.pubsub is the orchestrator's
    "cryptography",
    "requests",
    "requests_oauthlib",
    "oauthlib",
    "pydantic",
    "jsonschema",
    "websocket",
    "boto3",  # object storage: only storage operations' hooks
    "botocore",
    "hera",
    "orchestrator",
    "sandbox",
    "workflows",
)


def import_tree(stderr: str) -> list[tuple[int, str]]:
    """(depth, module) per ``-X importtime`` line, in the order printed (children first)."""
    tree: list[tuple[int, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        field = line.rsplit("|", 1)[1]
        name = field.strip()
        if name == "imported package":  # the header line
            continue
        indent = len(field) - len(field.lstrip(" "))
        tree.append(((indent - 1) // 2, name))
    return tree


def chain(tree: list[tuple[int, str]], index: int) -> list[str]:
    """The module at ``index`` and the modules whose import imported it, outermost first.

    ``-X importtime`` prints a module after everything it imported, one level deeper: the
    parent of a line is the next line after it that is one level shallower."""
    depth, name = tree[index]
    names = [name]
    for later_depth, later in tree[index + 1 :]:
        if later_depth < depth:
            names.append(later)
            depth = later_depth
    return names[::-1]


def is_denied(name: str) -> bool:
    return any(name == d or name.startswith(f"{d}.") for d in DENIED)


def denied_imports(stderr: str) -> list[str]:
    """The import chain of each denied module that no denied module imported (the first
    denied link of a chain says where to look; what it imported in turn is noise)."""
    tree = import_tree(stderr)
    found = []
    for index, (_, name) in enumerate(tree):
        links = chain(tree, index)
        if is_denied(name) and not any(is_denied(link) for link in links[:-1]):
            found.append(" -> ".join(links))
    return found


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on which nothing listens (a bound socket that never listens refuses)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def service_account(tmp_path: Path) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("a-token")
    (directory / "ca.crt").write_text("not read: the connection is refused first\n")
    (directory / "namespace").write_text("argo\n")
    return directory


def run_bridge_in_a_pod(
    service_account: Path, port: int, tmp_path: Path, modules_file: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BRIDGE_", "KUBECONFIG", "PYTHON"))
    }
    env.update(
        HOME=str(tmp_path),  # no ~/.kube/config: the pod's service account is used
        KUBERNETES_SERVICE_HOST="127.0.0.1",
        KUBERNETES_SERVICE_PORT=str(port),
        BRIDGE_SERVICE_ACCOUNT_DIR=str(service_account),
        BRIDGE_MAX_RETRIES="0",
    )
    environment = tmp_path / "environment.json"
    environment.write_text('{"applications": ["catalog"]}')
    args = ["run", "--namespace", "team-a", "--job", "schema"]
    args += ["--operation", "lifecycle.upsert", "--tenant-env-id", "t1"]
    args += ["--batch-operation-id", "b1", "--environment", str(environment)]
    args += ["--result", str(tmp_path / "result.json")]
    # `python -m bridge run ...` exactly as runpy runs it for -m, plus a note of every module
    # loaded when the process exits (a net for imports that -X importtime does not list).
    script = (
        "import atexit, json, runpy, sys\n"
        f"atexit.register(lambda: open({str(modules_file)!r}, 'w').write("
        "json.dumps(sorted(sys.modules))))\n"
        f"sys.argv = ['bridge', *{args!r}]\n"
        "runpy.run_module('bridge', run_name='__main__', alter_sys=True)\n"
    )
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_bridge_run_in_a_pod_imports_nothing_denied(
    service_account: Path, refused_port: int, tmp_path: Path
) -> None:
    modules_file = tmp_path / "modules.json"
    done = run_bridge_in_a_pod(service_account, refused_port, tmp_path, modules_file)
    # It got as far as its first request, in-cluster: the path under test really ran.
    assert done.returncode == 75, done.stderr[-2000:]
    assert f"https://127.0.0.1:{refused_port}" in done.stderr
    tree = import_tree(done.stderr)
    assert any(name == "kubernetes.config.incluster_config" for _, name in tree)
    assert any(name == "kubernetes.client.rest" for _, name in tree)
    assert denied_imports(done.stderr) == []
    loaded = json.loads(modules_file.read_text())
    assert "bridge.runner" in loaded
    assert [m for m in loaded if is_denied(m)] == []


def test_the_guard_names_the_chain_of_a_denied_import() -> None:
    """The guard can fail: the whole official package imports what the bridge must not."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import kubernetes"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = denied_imports(done.stderr)
    assert "kubernetes -> kubernetes.dynamic" in found
    # The models, google.auth, cryptography: all under the kubeconfig loader, named once.
    assert "kubernetes -> kubernetes.config -> kubernetes.config.kube_config" in found


def test_chain_follows_the_nesting() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       1 |          1 |     c",
            "import time:       1 |          2 |   b",
            "import time:       1 |          1 |   d",
            "import time:       1 |          4 | a",
        ]
    )
    tree = import_tree(stderr)
    assert tree == [(2, "c"), (1, "b"), (1, "d"), (0, "a")]
    assert chain(tree, 0) == ["a", "b", "c"]
    assert chain(tree, 2) == ["a", "d"]
