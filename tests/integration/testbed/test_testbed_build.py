"""The pinned build: the generated replace block matches the pin, the binary reports the pinned
release, and a missing Go toolchain is one clear message, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from testbed import ControlPlane
from testbed.build import Pins, binary_path, source_hash

REPO = Path(__file__).resolve().parents[3]


def test_the_replace_block_is_the_one_generated_from_the_pinned_go_mod() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "testbed.pin", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_cached_binary_is_keyed_by_the_pins_and_the_go_sources(
    control_plane: ControlPlane,
) -> None:
    pins = Pins.read()
    path = binary_path()
    assert path.is_file()  # the session's control plane runs from it
    assert f"k8s-{pins.kubernetes}-etcd-{pins.etcd}-{source_hash()}" == path.parent.name
    assert control_plane.request("GET", "/version")["gitVersion"] == pins.kubernetes


def test_a_missing_go_is_one_line_naming_the_components_and_the_rerun(tmp_path: Path) -> None:
    # An empty cache and a PATH without `go`: the build cannot start.
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent),
        "TESTBED_CACHE_DIR": str(tmp_path),
    }
    env.pop("TESTBED_BINARY", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "tenantctl"), "cluster", "build"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "'go' is not on PATH" in done.stderr
    assert "kube-apiserver" in done.stderr
    assert "make testbed" in done.stderr
