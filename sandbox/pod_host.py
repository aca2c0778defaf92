"""The seams between the pod runtime, a pod's worker and its container runners.

The runtime (``runtime.py``) starts a worker per pod (``pod_worker.py``), which starts a runner
per container (``containers.py``); each calls back into its owner (events, status, process
groups). The owners import what they own; the owned see their owner only through these
protocols, so the three modules form a line instead of a circle, and each protocol says exactly
how much of its owner a piece relies on.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .logs import LogBuffer
from .mounts import HostDirs
from .pod_status import PodStatus

Obj = dict[str, Any]


@dataclass
class ContainerRun:
    """One run of a container: its process and log."""

    log: LogBuffer = field(default_factory=LogBuffer)
    process: subprocess.Popen[bytes] | None = None


class Node(Protocol):
    """The node as a pod's worker and its containers see it (``runtime.PodRuntime``)."""

    @property
    def base_env(self) -> Mapping[str, str]: ...

    @property
    def workdir(self) -> Path: ...

    @property
    def host_dirs(self) -> HostDirs: ...

    @property
    def groups(self) -> set[int]:
        """Process group ids of every container started: what shutdown kills."""
        ...

    def event(
        self,
        pod: Obj,
        etype: str,
        reason: str,
        message: str,
        *,
        once: bool = False,
        component: str = "kubelet",
    ) -> None: ...

    def kill_group(self, pid: int, sig: int) -> None: ...

    def forget_group_when_empty(self, pgid: int) -> None: ...


class Pod(Protocol):
    """A pod as its container runners see it (``pod_worker.PodWorker``)."""

    @property
    def runtime(self) -> Node: ...

    @property
    def pod(self) -> Obj: ...

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def uid(self) -> str: ...

    @property
    def spec(self) -> Obj: ...

    @property
    def dir(self) -> Path: ...

    @property
    def host_dirs(self) -> list[Path]: ...

    @property
    def lock(self) -> threading.Lock: ...

    @property
    def stop(self) -> threading.Event: ...

    @property
    def stop_reason(self) -> str | None: ...

    @property
    def state(self) -> PodStatus: ...

    @property
    def runs(self) -> dict[str, list[ContainerRun]]: ...

    def publish(self) -> None: ...

    def wait(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopped."""
        ...

    def lookup(self, kind: str, name: str) -> Obj | None: ...
