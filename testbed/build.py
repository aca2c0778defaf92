"""The pinned Go build of the test bed's one binary, cached outside the source tree.

``testbed/go`` is a Go module that pins ``k8s.io/kubernetes`` (with the ``replace`` block its
staging modules need) and ``go.etcd.io/etcd/server/v3``; ``cmd/testbed`` links etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and the node agent into one multi-call
binary, so a cold build compiles and links the shared Kubernetes libraries once instead of five
times.

The binary lands in ``$TESTBED_CACHE_DIR`` (default ``~/.cache/tenant-lifecycle/testbed``) under a
key made of the pinned versions and a hash of every Go source of the module: a later run with the
same sources reuses it without starting ``go`` at all, and the Go module and build caches (outside
the tree too) make a rebuild after a small change quick.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GO_MODULE = Path(__file__).resolve().parent / "go"
REBUILD = "make testbed"
COMPONENTS = "etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the node agent"

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """The test bed's binary could not be built; the message names what and how to retry."""


@dataclass(frozen=True)
class Pins:
    """The versions ``testbed/go/go.mod`` pins, read from the file itself."""

    kubernetes: str
    etcd: str

    @classmethod
    def read(cls, go_mod: Path = GO_MODULE / "go.mod") -> Pins:
        text = go_mod.read_text()

        def pinned(module: str) -> str:
            found = re.search(rf"^\s*{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
            if found is None:
                raise BuildError(f"{go_mod}: no pinned version of {module} in its require block")
            return found.group(1)

        return cls(kubernetes=pinned("k8s.io/kubernetes"), etcd=pinned("go.etcd.io/etcd/server/v3"))


def cache_dir() -> Path:
    configured = os.environ.get("TESTBED_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tenant-lifecycle" / "testbed"


def source_hash(module: Path = GO_MODULE) -> str:
    """A hash of everything the binary is built from (go.mod, go.sum, every .go file)."""
    digest = hashlib.sha256()
    files = [module / "go.mod", module / "go.sum", *sorted(module.rglob("*.go"))]
    for path in files:
        digest.update(str(path.relative_to(module)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def binary_path(module: Path = GO_MODULE) -> Path:
    pins = Pins.read(module / "go.mod")
    key = f"k8s-{pins.kubernetes}-etcd-{pins.etcd}-{source_hash(module)}"
    return cache_dir() / key / "testbed"


def ldflags(pins: Pins) -> str:
    """Make ``/version`` report the pinned release, as an upstream build's would."""
    major, minor = pins.kubernetes.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": pins.kubernetes,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
    }
    flags = " ".join(f"-X k8s.io/component-base/version.{k}={v}" for k, v in values.items())
    return f"-s -w {flags}"


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            f"building the test bed ({COMPONENTS}) needs Go >= 1.25, and 'go' is not on PATH: "
            f"install Go, then rerun: {REBUILD}"
        )
    return go


def download(module: str, version: str, *, cwd: Path, why: str) -> dict[str, str]:
    """``go mod download -json MODULE@VERSION``: where the module and its go.mod are in the
    module cache (checked against go.sum or the checksum database)."""
    done = subprocess.run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        info = json.loads(done.stdout)
    except ValueError:
        info = {}
    if done.returncode != 0 or not info.get("Dir") or not info.get("GoMod"):
        reason = info.get("Error") or done.stderr.strip() or f"exit {done.returncode}"
        raise BuildError(
            f"downloading {module}@{version} ({why}) failed: {reason}; rerun: {REBUILD}"
        )
    return {key: str(value) for key, value in info.items()}


def ensure_binary(*, progress: Progress | None = None, module: Path = GO_MODULE) -> Path:
    """The path of the built binary, building it first when the cache has none for these sources.

    ``progress`` receives one-line updates while ``go`` downloads modules and compiles (a cold
    build takes many minutes on two cores; a warm one returns at once).
    """
    override = os.environ.get("TESTBED_BINARY")
    if override:
        # For developing the test bed itself: a binary built by hand, used as it is.
        if not Path(override).is_file():
            raise BuildError(f"TESTBED_BINARY={override}: no such file; unset it to build")
        return Path(override)
    target = binary_path(module)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time per cache entry: a second process waits and then finds the binary.
    with (target.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target
        _build(target, module=module, progress=progress or (lambda _line: None))
    return target


def _build(target: Path, *, module: Path, progress: Progress) -> None:
    pins = Pins.read(module / "go.mod")
    partial = target.with_name(target.name + ".partial")
    progress(
        f"building the test bed ({COMPONENTS}) from Kubernetes {pins.kubernetes} and "
        f"etcd {pins.etcd}: a cold build takes 10-20 minutes on 2 cores, later runs reuse it"
    )
    flags = ["-ldflags", ldflags(pins), "-o", str(partial), "./cmd/testbed"]
    try:
        go_build(flags, cwd=module, what=f"the test bed ({COMPONENTS})", progress=progress)
    except BuildError:
        partial.unlink(missing_ok=True)
        raise
    if not partial.is_file():
        raise BuildError(f"`go build` in {module} wrote no {partial}; rerun: {REBUILD}")
    partial.replace(target)


def go_build(flags: list[str], *, cwd: Path, what: str, progress: Progress) -> None:
    """``go build -v -trimpath -mod=readonly FLAGS`` in ``cwd``, reporting progress every 15 s;
    a failure is a :class:`BuildError` with the tail of go's output."""
    command = [_go(), "build", "-v", "-trimpath", "-mod=readonly", "-buildvcs=false", *flags]
    started = time.monotonic()
    tail: list[str] = []
    compiled = 0
    last_report = started
    with subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail[-40:], line.rstrip()]
            if not line.startswith(("go: ", "#")) and " " not in line.strip():
                compiled += 1  # `go build -v` names each package as it compiles it
            now = time.monotonic()
            if now - last_report >= 15:
                last_report = now
                progress(f"  ... {compiled} packages compiled, {now - started:.0f} s")
        code = proc.wait()
    if code != 0:
        details = "\n".join(line for line in tail if line)[-3000:]
        raise BuildError(
            f"building {what} failed: `go build` in {cwd} exited {code}.\n{details}\n"
            f"Fix the cause above, then rerun: {REBUILD}"
        )
    progress(f"built {what} in {time.monotonic() - started:.0f} s")
