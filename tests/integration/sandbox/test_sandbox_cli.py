"""``tenantctl sandbox up`` serves a sandbox that kubectl reaches through the printed path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

TENANTCTL = str(Path(sys.executable).parent / "tenantctl")


def test_sandbox_up_then_kubectl_get_ns(tmp_path: Path) -> None:
    # --rbac: kubectl sends the kubeconfig's admin token only over TLS, so this also proves the
    # printed kubeconfig points at the HTTPS listener.
    wanted = tmp_path / "sandbox.kubeconfig"
    proc = subprocess.Popen(
        [
            TENANTCTL,
            "sandbox",
            "up",
            "--rbac",
            "--kubeconfig",
            str(wanted),
            "--workdir",
            str(tmp_path / "wd"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        printed = proc.stdout.readline().strip()
        assert printed == str(wanted)
        assert oct(os.stat(printed).st_mode & 0o777) == "0o600"
        done = subprocess.run(
            [
                "/usr/bin/kubectl",
                "--kubeconfig",
                printed,
                "--cache-dir",
                str(tmp_path / "c"),
                "get",
                "ns",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "default" in done.stdout
        assert "kube-system" in done.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "sandbox: stopped" in err


def test_sandbox_up_on_a_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [TENANTCTL, "sandbox", "up", "--port", str(port), "--workdir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: --port {port}: cannot listen")
    assert "Traceback" not in done.stderr
