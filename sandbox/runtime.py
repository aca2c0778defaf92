"""The pod runtime: a worker per pod, every process group it started, and shutdown.

The API calls :meth:`PodRuntime.pod_created` and :meth:`PodRuntime.pod_deleting`; each pod's
life is a :class:`sandbox.pod_worker.PodWorker`. Deletion sends SIGTERM to each container's
process group and SIGKILL after the grace period; the pod object is removed once every process
is gone. :meth:`PodRuntime.shutdown` kills everything, so no process outlives the sandbox.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .api import Api
from .clock import rfc3339
from .mounts import HostDirs
from .pod_worker import NODE_NAME, PodWorker
from .status import ApiError

Obj = dict[str, Any]
__all__ = ["NODE_NAME", "PodRuntime", "PodWorker"]


def live_members(groups: set[int]) -> list[int]:
    """Pids of processes (zombies excepted) whose process group is one of ``groups``."""
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp in groups and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


class PodRuntime:
    """Starts a worker per pod; owns every process group it started."""

    def __init__(
        self,
        api: Api,
        *,
        workdir: Path,
        base_env: Mapping[str, str],
        issue_token: Callable[[str], str],
    ) -> None:
        self.api = api
        self.workdir = workdir
        self.base_env = dict(base_env)
        self.issue_token = issue_token
        self.host_dirs = HostDirs()
        pods = api.registry.lookup("", "v1", "pods")
        events = api.registry.lookup("", "v1", "events")
        assert pods is not None
        assert events is not None
        self.pods = pods
        self.events = events
        self._lock = threading.Lock()
        self._workers: dict[str, PodWorker] = {}
        self._finished: dict[str, PodWorker] = {}  # kept for their logs
        self._seen_events: set[tuple[str, str, str]] = set()
        self._closing = False
        self.groups: set[int] = set()  # process group ids of every container started
        self.record_events = True

    def pod_created(self, pod: Obj) -> None:
        worker = PodWorker(self, pod)
        with self._lock:
            if self._closing:
                return
            self._workers[worker.uid] = worker
        worker.thread.start()

    def pod_deleting(self, pod: Obj, grace_seconds: int) -> bool:
        with self._lock:
            worker = self._workers.get(pod["metadata"]["uid"])
        if worker is None:
            return False
        with worker.lock:
            if worker.done:
                return False
            worker.deleting = True
        worker.terminate(reason=None, grace=grace_seconds)
        self.event(pod, "Normal", "Killing", "Stopping container(s)")
        return True

    def live_pids(self) -> list[int]:
        """Process ids of every container process still running."""
        with self._lock:
            workers = list(self._workers.values())
        return [p.pid for w in workers for p in w.processes()]

    def pod_active(self, uid: str) -> bool:
        with self._lock:
            worker = self._workers.get(uid)
        if worker is None:
            return False
        with worker.lock:
            return not worker.done

    def forget(self, worker: PodWorker) -> None:
        with self._lock:
            self._workers.pop(worker.uid, None)
            self._finished[worker.uid] = worker
            while len(self._finished) > 5000:
                self._finished.pop(next(iter(self._finished)))

    def worker(self, uid: str) -> PodWorker | None:
        with self._lock:
            return self._workers.get(uid) or self._finished.get(uid)

    def kill(self, uid: str, reason: str) -> bool:
        with self._lock:
            worker = self._workers.get(uid)
        if worker is None:
            return False
        worker.terminate(reason=reason, grace=0)
        return True

    def forget_group_when_empty(self, pgid: int) -> None:
        """Stop tracking a container's process group once nothing in it runs.

        A group id is only killed at shutdown while it is still ours: once empty, the id could be
        reused by an unrelated process group.
        """
        deadline = time.monotonic() + 1.0
        while live_members({pgid}):
            if time.monotonic() >= deadline:
                return  # still dying: shutdown kills and waits for it
            time.sleep(0.01)
        self.groups.discard(pgid)

    @staticmethod
    def kill_group(pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def event(
        self,
        pod: Obj,
        etype: str,
        reason: str,
        message: str,
        *,
        once: bool = False,
        component: str = "kubelet",
    ) -> None:
        """Record a core/v1 Event about the pod, as the kubelet and scheduler do."""
        if not self.record_events:
            return
        meta = pod["metadata"]
        if once:
            key = (meta["uid"], reason, message)
            if key in self._seen_events:
                return
            self._seen_events.add(key)
        now = rfc3339()
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "kind": "Pod",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": "v1",
            },
            "reason": reason,
            "message": message,
            "type": etype,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": component, "host": NODE_NAME},
            "reportingComponent": component,
            "reportingInstance": NODE_NAME,
        }
        with contextlib.suppress(ApiError):
            self.api.create(self.events, meta["namespace"], body)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Kill every process group and wait for the workers to end."""
        with self._lock:
            self._closing = True
            workers = list(self._workers.values())
        for worker in workers:
            worker.terminate(reason="Killed", grace=0)
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        for worker in workers:
            for proc in worker.processes():
                self.kill_group(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(1.0)
        # Whatever a container left behind in its process group (a background child) dies too;
        # wait until the kernel has really ended them, so nothing outlives the sandbox.
        groups = set(self.groups)
        for pgid in groups:
            self.kill_group(pgid, signal.SIGKILL)
        while live_members(groups) and time.monotonic() < deadline + timeout:
            time.sleep(0.01)
        self.host_dirs.release_all()
