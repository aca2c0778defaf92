"""`tenantctl cluster up` as a person runs it: the kubeconfig path first, kubectl works, and
SIGTERM stops every process and removes the cluster's files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TENANTCTL = str(Path(sys.executable).parent / "tenantctl")


def _testbed_processes(root: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(root) in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.usefixtures("control_plane")  # the binary is built (and the test is `real`)
def test_cluster_up_serves_kubectl_and_sigterm_leaves_nothing(tmp_path: Path) -> None:
    with subprocess.Popen(
        [TENANTCTL, "cluster", "up", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as up:
        assert up.stdout is not None
        assert up.stderr is not None
        kubeconfig = Path(up.stdout.readline().strip())  # printed once everything serves
        root = kubeconfig.parent
        assert kubeconfig.name == "admin.kubeconfig"
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
        nodes = subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "name"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert nodes.stdout.strip() == "node/testbed-node"
        assert _testbed_processes(root)  # etcd, apiserver, controllers, scheduler, node agent
        os.kill(up.pid, signal.SIGTERM)
        assert up.wait(timeout=60) == 0
        stderr = up.stderr.read()
    assert "Traceback" not in stderr
    assert "stopped" in stderr
    assert not root.exists()
    assert _testbed_processes(root) == []
