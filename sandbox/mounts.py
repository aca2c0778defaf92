"""Making volumes appear at their ``mountPath`` without touching the host's view of the files.

Each container with volume mounts (or a missing ``workingDir``) runs under
``unshare -m --propagation private``: a private mount namespace, so every mount below dies with
the container and is invisible to the host. Inside it a small shell script:

1. mounts a tmpfs on the container's scratch directory (upper and work dirs for overlays);
2. for a mountPath whose parent directories do not exist, mounts an **overlay** on the nearest
   existing ancestor (lower: the ancestor itself, upper: the scratch tmpfs), so the missing
   directories are created in the private overlay only and the ancestor's content stays visible;
3. when that ancestor would be ``/`` (a new top-level directory such as ``/data``), overlaying the
   root is not safe: the sandbox creates the empty top-level directory on the host (reference
   counted, removed when the last container using it ends or the sandbox stops) and mounts a
   tmpfs on it inside the namespace;
4. bind-mounts each volume (read-only with a remount when ``readOnly``), sorted by depth;
5. ``cd``s to ``workingDir`` and ``exec``s the command, so the process group is the container.

Paths under ``/proc``, ``/sys`` and ``/dev`` are refused with ``CreateContainerError``, as is an
overlay whose ancestor holds the sandbox workdir on a different filesystem (the overlay would
hide it).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
from dataclasses import dataclass, field
from pathlib import Path

_FORBIDDEN = ("/proc", "/sys", "/dev")


class MountError(Exception):
    """A mountPath cannot be provided safely."""


class HostDirs:
    """Top-level directories the sandbox created on the host, reference counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Path, int] = {}

    def acquire(self, path: Path) -> None:
        with self._lock:
            if path not in self._counts:
                if path.exists():
                    self._counts[path] = 0  # someone else made it: never remove it
                    return
                path.mkdir(mode=0o755)
                self._counts[path] = 1
            elif self._counts[path] > 0:
                self._counts[path] += 1

    def release(self, path: Path) -> None:
        with self._lock:
            count = self._counts.get(path, 0)
            if count <= 0:
                return
            if count == 1:
                del self._counts[path]
                with contextlib.suppress(OSError):
                    path.rmdir()
            else:
                self._counts[path] = count - 1

    def release_all(self) -> None:
        with self._lock:
            for path, count in list(self._counts.items()):
                if count > 0:
                    with contextlib.suppress(OSError):
                        path.rmdir()
            self._counts.clear()


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False


@dataclass
class MountPlan:
    script: str
    host_dirs: list[Path] = field(default_factory=list)


def _nearest_existing(path: str) -> str:
    cur = path
    while not os.path.lexists(cur):
        cur = os.path.dirname(cur)
    return os.path.realpath(cur)


def _check_target(target: str) -> str:
    if not target.startswith("/"):
        raise MountError(f'mountPath "{target}" must be an absolute path')
    norm = os.path.normpath(target)
    if norm == "/":
        raise MountError('mountPath "/" cannot be mounted over')
    real = os.path.realpath(norm) if os.path.lexists(norm) else norm
    for bad in _FORBIDDEN:
        for candidate in (norm, real):
            if candidate == bad or candidate.startswith(bad + "/"):
                raise MountError(
                    f'mountPath "{target}" is under {bad}, which the sandbox cannot mount '
                    "over safely"
                )
    return norm


@dataclass
class _Layout:
    """What the mount script must create before binding: overlays on the nearest existing
    ancestors of missing targets, tmpfs tops for targets under a missing top-level directory,
    the directories and files to make, and the binds, parents before children."""

    overlays: list[str] = field(default_factory=list)
    tmpfs_tops: list[str] = field(default_factory=list)
    made: list[Path] = field(default_factory=list)
    dirs_to_make: list[str] = field(default_factory=list)
    files_to_make: list[str] = field(default_factory=list)
    binds: list[tuple[Mount, str]] = field(default_factory=list)


def plan(
    mounts: list[Mount],
    *,
    working_dir: str | None,
    scratch: Path,
    workdir: Path,
    host_dirs: HostDirs,
    error_file: Path,
) -> MountPlan:
    layout = _layout(mounts, working_dir=working_dir, workdir=workdir, host_dirs=host_dirs)
    script = _script(layout, working_dir=working_dir, scratch=scratch, error_file=error_file)
    return MountPlan(script=script, host_dirs=layout.made)


def _layout(
    mounts: list[Mount], *, working_dir: str | None, workdir: Path, host_dirs: HostDirs
) -> _Layout:
    layout = _Layout()
    wanted: list[tuple[str, bool]] = [(_check_target(m.target), m.source.is_dir()) for m in mounts]
    if working_dir:
        wanted.append((_check_target(working_dir), True))
    for target, is_dir in wanted:
        if os.path.lexists(target):
            continue
        parent = os.path.dirname(target) if not is_dir else target
        ancestor = _nearest_existing(parent)
        if ancestor == "/":
            top = "/" + os.path.normpath(target).lstrip("/").split("/", 1)[0]
            if top not in layout.tmpfs_tops:
                host_dirs.acquire(Path(top))
                layout.made.append(Path(top))
                layout.tmpfs_tops.append(top)
        elif ancestor not in layout.overlays and not any(
            ancestor == t or ancestor.startswith(t + "/") for t in layout.tmpfs_tops
        ):
            _check_target(ancestor + "/x")
            work_real = os.path.realpath(workdir)
            if (work_real == ancestor or work_real.startswith(ancestor.rstrip("/") + "/")) and (
                os.stat(work_real).st_dev != os.stat(ancestor).st_dev
            ):
                raise MountError(
                    f"creating the missing parents of {target} needs an overlay on {ancestor}, "
                    f"which would hide the sandbox workdir {workdir} (another filesystem)"
                )
            layout.overlays.append(ancestor)
        (layout.dirs_to_make if is_dir else layout.files_to_make).append(target)
    for mount, (target, _) in zip(mounts, wanted, strict=False):
        layout.binds.append((mount, target))
    layout.binds.sort(key=lambda b: b[1].count("/"))
    return layout


def _script(layout: _Layout, *, working_dir: str | None, scratch: Path, error_file: Path) -> str:
    q = shlex.quote
    binds = layout.binds
    # Sources and the error file are opened before any overlay: an overlay on an ancestor of the
    # sandbox workdir would otherwise redirect them into its private upper layer. Binding
    # /proc/self/fd/N (without canonicalization) reaches the real directory whatever covers it.
    lines = [f"exec {{ERR}}>>{q(str(error_file))}"]
    steps: list[str] = []
    for i, (mount, _) in enumerate(binds):
        steps.append(f"exec {{S{i}}}<{q(str(mount.source))}")
    steps.append(f"mount -t tmpfs sandbox-scratch {q(str(scratch))}")
    for i, ancestor in enumerate(sorted(layout.overlays, key=lambda a: a.count("/"))):
        up, wk = f"{scratch}/u{i}", f"{scratch}/w{i}"
        steps.append(f"mkdir -p {q(up)} {q(wk)}")
        steps.append(
            f"mount -t overlay sandbox-overlay -o "
            f"{q(f'lowerdir={ancestor},upperdir={up},workdir={wk}')} {q(ancestor)}"
        )
    for top in layout.tmpfs_tops:
        steps.append(f"mount -t tmpfs sandbox-top {q(top)}")
    for d in layout.dirs_to_make:
        steps.append(f"mkdir -p {q(d)}")
    for f in layout.files_to_make:
        steps.append(f"mkdir -p {q(os.path.dirname(f))} && touch {q(f)}")
    for i, (mount, target) in enumerate(binds):
        steps.append(f'mount --no-canonicalize --bind "/proc/self/fd/$S{i}" {q(target)}')
        if mount.read_only:
            steps.append(f"mount -o remount,bind,ro {q(target)}")
    if working_dir:
        steps.append(f"cd {q(working_dir)}")
    # A failed step leaves its message in the error file and exits 128, which the runtime
    # reports as StartError, the way a container runtime reports a failed container setup.
    for step in steps:
        lines.append(
            f"{{ {step}; }} 2>&$ERR || {{ echo {q('failed: ' + step)} >&$ERR; exit 128; }}"
        )
    lines += [f"exec {{S{i}}}<&-" for i in range(len(binds))]
    lines += ["exec {ERR}>&-", 'exec "$@"']
    return "\n".join(lines)


def wrap(argv: list[str], mount_plan: MountPlan) -> list[str]:
    """The argv that runs ``argv`` inside a private mount namespace after the plan's mounts."""
    return [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "--",
        "/bin/bash",
        "-c",
        mount_plan.script,
        "sandbox-mount",
        *argv,
    ]
