"""One pod's life in the runtime: scheduling, volumes, init containers, containers, the end.

A :class:`PodWorker` thread walks its pod through what a kubelet does and reports it through
:class:`sandbox.pod_status.PodStatus`: phase Pending -> Running -> Succeeded/Failed, container
states waiting/running/terminated with reasons and exit codes, conditions, startTime. Containers
run as process groups (in a private mount namespace when they mount volumes); their output is
timestamped line by line into a :class:`sandbox.logs.LogBuffer` per run.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from . import images
from .api import Api
from .clock import rfc3339
from .containers import ContainerRunner
from .envvars import ConfigError
from .pod_host import ContainerRun, Node
from .pod_status import PodStatus
from .resources import ResourceType
from .status import ApiError
from .volumes import MissingSourceError, UnsupportedVolumeError, materialize

log = logging.getLogger(__name__)
Obj = dict[str, Any]
NODE_NAME = "sandbox"
_RETRY = 0.5


class PodHost(Node, Protocol):
    """The runtime as a pod's worker sees it (``runtime.PodRuntime``, which starts the workers
    and is told when one ends): the seam that keeps the two modules from importing each other."""

    @property
    def api(self) -> Api: ...

    @property
    def pods(self) -> ResourceType: ...

    @property
    def issue_token(self) -> Callable[[str], str]: ...

    def forget(self, worker: PodWorker) -> None:
        """The worker ended: keep it only for its logs."""
        ...


class PodWorker:
    def __init__(self, runtime: PodHost, pod: Obj) -> None:
        self.runtime = runtime
        self.api = runtime.api
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.pod = pod
        self.spec: Obj = pod.get("spec") or {}
        self.dir = runtime.workdir / "pods" / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.lock = threading.Lock()
        self.stop = threading.Event()  # deleting, killed, evicted or deadline
        self.stop_reason: str | None = (
            None  # None (deleted) | "Killed" | "Evicted" | "DeadlineExceeded"
        )
        self.deleting = False
        self.done = False
        self.runs: dict[str, list[ContainerRun]] = {}
        self.state = PodStatus(self.spec)
        self.containers = ContainerRunner(self)
        self.host_dirs: list[Path] = []
        self.thread = threading.Thread(target=self._main, name=f"pod-{self.name}", daemon=True)

    # status ----------------------------------------------------------------------------------

    def publish(self) -> None:
        status = self.state.snapshot()
        spec_patch = status.pop("_spec", None)

        def change(pod: Obj) -> None:
            pod["status"] = status
            if spec_patch:
                pod.setdefault("spec", {}).update(spec_patch)

        self.api.update_with(self.runtime.pods, self.namespace, self.name, change)

    # main ------------------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("sandbox pod %s/%s failed in the runtime", self.namespace, self.name)
            self.state.phase = "Failed"
            self.state.extra["reason"] = "SandboxError"
            self.state.extra["message"] = "the sandbox runtime failed; see the sandbox log"
            with contextlib.suppress(ApiError):
                self.publish()
        finally:
            self._finish()

    def _finish(self) -> None:
        for path in self.host_dirs:
            self.runtime.host_dirs.release(path)
        with self.lock:
            self.done = True
            deleting = self.deleting
        if deleting:
            self.api.finish_pod_deletion(self.namespace, self.name, self.uid)
        self.runtime.forget(self)

    def wait(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopped."""
        return self.stop.wait(seconds)

    def _all_containers(self) -> list[tuple[Obj, bool]]:
        return [(c, True) for c in self.spec.get("initContainers") or []] + [
            (c, False) for c in self.spec.get("containers") or []
        ]

    def _run(self) -> None:
        for container, init in self._all_containers():
            self.state.status_for(container, init)
        if not self._schedule():
            return
        timer = self._deadline_timer()
        try:
            volumes = self._volumes()
            if volumes is None:
                self._final_after_stop()
                return
            self.state.condition("PodReadyToStartContainers", True)
            if self._run_init_containers(volumes):
                self._run_containers(volumes)
        finally:
            if timer is not None:
                timer.cancel()

    def _schedule(self) -> bool:
        """Bind the pod to the node, as the scheduler does, and set its first conditions; False
        when no node fits (the pod then stays Pending until it is stopped)."""
        unschedulable = [
            c for c, _ in self._all_containers() if images.is_unschedulable(str(c.get("image", "")))
        ]
        if unschedulable:
            self.state.condition(
                "PodScheduled",
                False,
                "Unschedulable",
                "0/1 nodes are available: 1 node(s) didn't match Pod's node "
                "affinity/selector. preemption: 0/1 nodes are available: 1 "
                "Preemption is not helpful for scheduling.",
            )
            self.state.statuses.clear()
            self.state.init_statuses.clear()
            self.publish()
            self.runtime.event(
                self.pod,
                "Warning",
                "FailedScheduling",
                self.state.conditions["PodScheduled"]["message"],
                component="default-scheduler",
            )
            self.stop.wait()
            return False
        self.state.condition("PodScheduled", True)
        self.state.condition("PodReadyToStartContainers", False)
        self.state.condition(
            "Initialized",
            not self.spec.get("initContainers"),
            None if not self.spec.get("initContainers") else "ContainersNotInitialized",
            None
            if not self.spec.get("initContainers")
            else "containers with incomplete status: ["
            + " ".join(c["name"] for c in self.spec["initContainers"])
            + "]",
        )
        self.state.condition("Ready", False, "ContainersNotReady", self.state.not_ready_message())
        self.state.condition(
            "ContainersReady", False, "ContainersNotReady", self.state.not_ready_message()
        )
        self.state.extra.update(
            {
                "hostIP": "127.0.0.1",
                "hostIPs": [{"ip": "127.0.0.1"}],
                "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}],
                "startTime": rfc3339(),
                "_spec": {"nodeName": NODE_NAME},
            }
        )
        self.publish()
        self.runtime.event(
            self.pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {self.namespace}/{self.name} to {NODE_NAME}",
            component="default-scheduler",
        )
        return True

    def _deadline_timer(self) -> threading.Timer | None:
        """activeDeadlineSeconds: a timer that stops the pod, started now (None without one)."""
        deadline = self.spec.get("activeDeadlineSeconds")
        if deadline is None:
            return None
        timer = threading.Timer(float(deadline), self._deadline)
        timer.daemon = True
        timer.start()
        return timer

    def _run_init_containers(self, volumes: Mapping[str, Path]) -> bool:
        """The init containers one after the other; False when one failed or the pod stopped
        (the pod's final state is then published)."""
        for container in self.spec.get("initContainers") or []:
            code = self.containers.run(container, True, volumes)
            if code is None or code != 0:
                if code is not None:
                    self.state.phase = "Failed"
                    self.state.condition("Ready", False, "PodFailed")
                    self.state.condition("ContainersReady", False, "PodFailed")
                    self.publish()
                    return False
                self._final_after_stop()
                return False
        if self.spec.get("initContainers"):
            self.state.condition("Initialized", True)
            for container in self.spec.get("containers") or []:
                self.state.waiting(container, False, "ContainerCreating")
            self.publish()
        return True

    def _run_containers(self, volumes: Mapping[str, Path]) -> None:
        """The app containers side by side, then the pod's phase from their exit codes."""
        threads = []
        results: dict[str, int | None] = {}
        for container in self.spec.get("containers") or []:
            thread = threading.Thread(
                target=self._container_thread,
                args=(container, volumes, results),
                name=f"ctr-{self.name}-{container['name']}",
                daemon=True,
            )
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        if self.stop.is_set():
            self._final_after_stop()
            return
        codes = list(results.values())
        self.state.phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
        reason = "PodCompleted" if self.state.phase == "Succeeded" else "PodFailed"
        self.state.condition("Ready", False, reason)
        self.state.condition("ContainersReady", False, reason)
        self.publish()

    def _container_thread(
        self, container: Obj, volumes: Mapping[str, Path], results: dict[str, int | None]
    ) -> None:
        try:
            results[container["name"]] = self.containers.run(container, False, volumes)
        except Exception:
            log.exception(
                "sandbox: container %s of pod %s/%s failed in the runtime",
                container["name"],
                self.namespace,
                self.name,
            )
            results[container["name"]] = 128

    def _final_after_stop(self) -> None:
        """The pod stopped because of a delete, a kill, an eviction or its deadline."""
        reason = self.stop_reason
        if reason == "DeadlineExceeded":
            self.state.phase = "Failed"
            self.state.extra["reason"] = "DeadlineExceeded"
            self.state.extra["message"] = (
                "Pod was active on the node longer than the specified deadline"
            )
        elif reason == "Evicted":
            self.state.phase = "Failed"
            self.state.extra["reason"] = "Evicted"
            self.state.extra["message"] = "The node was low on resource: memory. "
            self.state.condition(
                "DisruptionTarget",
                True,
                "TerminationByKubelet",
                "The node was low on resource: memory. ",
            )
        elif reason == "NodeLost":
            # What the control plane reports for the pods of a node that died: the kubelet
            # never says how the containers ended, and PodGC fails the pod.
            self.state.phase = "Failed"
            self.state.condition(
                "DisruptionTarget", True, "DeletionByPodGC", "PodGC: node no longer exists"
            )
        elif reason == "Killed":
            self.state.phase = "Failed"
        else:
            codes = [
                s["state"].get("terminated", {}).get("exitCode")
                for s in self.state.statuses.values()
            ]
            if codes and all(c == 0 for c in codes):
                self.state.phase = "Succeeded"
            elif any(c is not None for c in codes):
                self.state.phase = "Failed"
        if self.state.phase in ("Failed", "Succeeded"):
            why = "PodCompleted" if self.state.phase == "Succeeded" else "PodFailed"
            self.state.condition("Ready", False, why)
            self.state.condition("ContainersReady", False, why)
        self.publish()

    def _deadline(self) -> None:
        self.terminate(reason="DeadlineExceeded", grace=0)
        self.runtime.event(
            self.pod,
            "Normal",
            "DeadlineExceeded",
            "Pod was active on the node longer than the specified deadline",
        )

    # volumes ---------------------------------------------------------------------------------

    def _volumes(self) -> dict[str, Path] | None:
        while not self.stop.is_set():
            try:
                out: dict[str, Path] = {}
                for volume in self.spec.get("volumes") or []:
                    base = self.dir / "volumes" / volume["name"]
                    if base.exists():
                        shutil.rmtree(base)
                    out[volume["name"]] = materialize(
                        volume, base, self.pod, self.lookup, self.runtime.issue_token
                    )
                return out
            except MissingSourceError as exc:
                self.runtime.event(
                    self.pod,
                    "Warning",
                    "FailedMount",
                    f"MountVolume.SetUp failed: {exc}",
                    once=True,
                )
            except (UnsupportedVolumeError, ConfigError) as exc:
                for container, init in self._all_containers():
                    self.state.waiting(container, init, "CreateContainerError", str(exc))
                self.publish()
                self.stop.wait()
                return None
            if self.wait(_RETRY):
                return None
        return None

    def lookup(self, kind: str, name: str) -> Obj | None:
        return self.api.store.get(kind, self.namespace, name)

    # control ---------------------------------------------------------------------------------

    def processes(self) -> list[subprocess.Popen[bytes]]:
        with self.lock:
            return [
                run.process
                for runs in self.runs.values()
                for run in runs
                if run.process is not None and run.process.poll() is None
            ]

    def terminate(self, *, reason: str | None, grace: float) -> None:
        """Stop the pod: SIGTERM now, SIGKILL after ``grace`` seconds (at once when 0)."""
        with self.lock:
            if reason and self.stop_reason is None and not self.stop.is_set():
                self.stop_reason = reason
            self.stop.set()
            procs = [
                run.process
                for runs in self.runs.values()
                for run in runs
                if run.process is not None and run.process.poll() is None
            ]
        sig = signal.SIGKILL if grace <= 0 else signal.SIGTERM
        for proc in procs:
            self.runtime.kill_group(proc.pid, sig)
        if grace > 0 and procs:
            timer = threading.Timer(grace, self._kill_all)
            timer.daemon = True
            timer.start()

    def _kill_all(self) -> None:
        for proc in self.processes():
            self.runtime.kill_group(proc.pid, signal.SIGKILL)

    def log_runs(self, container: str) -> list[ContainerRun]:
        with self.lock:
            return list(self.runs.get(container, []))
