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
import os
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import images
from .clock import rfc3339
from .envvars import ConfigError, argv, resolve_env
from .logs import LogBuffer
from .mounts import Mount, MountError, MountPlan, plan, wrap
from .pod_status import PodStatus
from .status import ApiError
from .volumes import MissingSourceError, UnsupportedVolumeError, materialize

if TYPE_CHECKING:
    from .runtime import PodRuntime

log = logging.getLogger(__name__)
Obj = dict[str, Any]
NODE_NAME = "sandbox"
_RETRY = 0.5


@dataclass
class ContainerRun:
    """One run of a container: its process and log."""

    log: LogBuffer = field(default_factory=LogBuffer)
    process: subprocess.Popen[bytes] | None = None


class PodWorker:
    def __init__(self, runtime: PodRuntime, pod: Obj) -> None:
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
        self.host_dirs: list[Path] = []
        self.thread = threading.Thread(target=self._main, name=f"pod-{self.name}", daemon=True)

    # status ----------------------------------------------------------------------------------

    def _publish(self) -> None:
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
                self._publish()
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

    def _wait(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopped."""
        return self.stop.wait(seconds)

    def _all_containers(self) -> list[tuple[Obj, bool]]:
        return [(c, True) for c in self.spec.get("initContainers") or []] + [
            (c, False) for c in self.spec.get("containers") or []
        ]

    def _run(self) -> None:
        for container, init in self._all_containers():
            self.state.status_for(container, init)
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
            self._publish()
            self.runtime.event(
                self.pod,
                "Warning",
                "FailedScheduling",
                self.state.conditions["PodScheduled"]["message"],
                component="default-scheduler",
            )
            self.stop.wait()
            return
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
        self._publish()
        self.runtime.event(
            self.pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {self.namespace}/{self.name} to {NODE_NAME}",
            component="default-scheduler",
        )
        deadline = self.spec.get("activeDeadlineSeconds")
        timer = None
        if deadline is not None:
            timer = threading.Timer(float(deadline), self._deadline)
            timer.daemon = True
            timer.start()
        try:
            volumes = self._volumes()
            if volumes is None:
                self._final_after_stop()
                return
            self.state.condition("PodReadyToStartContainers", True)
            for container in self.spec.get("initContainers") or []:
                code = self._container_loop(container, True, volumes)
                if code is None or code != 0:
                    if code is not None:
                        self.state.phase = "Failed"
                        self.state.condition("Ready", False, "PodFailed")
                        self.state.condition("ContainersReady", False, "PodFailed")
                        self._publish()
                        return
                    self._final_after_stop()
                    return
            if self.spec.get("initContainers"):
                self.state.condition("Initialized", True)
                for container in self.spec.get("containers") or []:
                    self.state.waiting(container, False, "ContainerCreating")
                self._publish()
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
            self._publish()
        finally:
            if timer is not None:
                timer.cancel()

    def _container_thread(
        self, container: Obj, volumes: Mapping[str, Path], results: dict[str, int | None]
    ) -> None:
        try:
            results[container["name"]] = self._container_loop(container, False, volumes)
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
        self._publish()

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
                        volume, base, self.pod, self._lookup, self.runtime.issue_token
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
                self._publish()
                self.stop.wait()
                return None
            if self._wait(_RETRY):
                return None
        return None

    def _lookup(self, kind: str, name: str) -> Obj | None:
        return self.api.store.get(kind, self.namespace, name)

    # containers ------------------------------------------------------------------------------

    def _prepare(
        self, container: Obj, init: bool, volumes: Mapping[str, Path]
    ) -> tuple[list[str], dict[str, str], str | None, MountPlan | None] | None:
        """Wait until the container can start; None when the pod stopped first."""
        image = str(container.get("image", ""))
        name = container["name"]
        announced = False
        while not self.stop.is_set():
            if not images.is_valid_reference(image):
                self.state.waiting(
                    container,
                    init,
                    "InvalidImageName",
                    f'Failed to apply default image tag "{image}": couldn\'t parse image '
                    f'name "{image}": invalid reference format',
                )
            elif images.is_pull_error(image):
                self.state.waiting(
                    container,
                    init,
                    "ErrImagePull",
                    f'failed to pull and unpack image "{image}": failed to resolve '
                    f'reference "{image}": {image}: not found',
                )
                self._publish()
                self.runtime.event(
                    self.pod,
                    "Warning",
                    "Failed",
                    f'Failed to pull image "{image}": not found',
                    once=True,
                )
                if self._wait(0.3):
                    return None
                self.state.waiting(
                    container, init, "ImagePullBackOff", f'Back-off pulling image "{image}"'
                )
            elif images.is_create_error(image):
                self.state.waiting(
                    container,
                    init,
                    "CreateContainerError",
                    "sandbox: scripted create error for image " + image,
                )
            else:
                try:
                    base = dict(self.runtime.base_env)
                    base["HOSTNAME"] = self.name
                    env = resolve_env(self.pod, container, self._lookup, base)
                    command = argv(container, env)
                    if not command:
                        raise MountError(
                            f'container "{name}" has no command or args; the sandbox ignores '
                            "images, so give the container a command"
                        )
                    mounts = []
                    for vm in container.get("volumeMounts") or []:
                        source = volumes.get(vm.get("name", ""))
                        if source is None:
                            raise MountError(
                                f'volumeMount "{vm.get("name")}" names no volume of the pod'
                            )
                        if vm.get("subPath"):
                            source = source / vm["subPath"]
                        mounts.append(
                            Mount(source, vm.get("mountPath", ""), bool(vm.get("readOnly")))
                        )
                    working_dir = container.get("workingDir")
                    mount_plan = None
                    own_dir = self.dir / "containers" / name
                    own_dir.mkdir(parents=True, exist_ok=True)
                    cwd: str | None = str(own_dir)
                    if mounts or (working_dir and not os.path.isdir(working_dir)):
                        scratch = self.dir / "scratch" / f"{name}-{uuid.uuid4().hex[:6]}"
                        scratch.mkdir(parents=True)
                        mount_plan = plan(
                            mounts,
                            working_dir=working_dir,
                            scratch=scratch,
                            workdir=self.runtime.workdir,
                            host_dirs=self.runtime.host_dirs,
                            error_file=scratch.with_suffix(".err"),
                        )
                        self.host_dirs.extend(mount_plan.host_dirs)
                        cwd = None
                    elif working_dir:
                        cwd = working_dir
                    if not announced:
                        self.runtime.event(
                            self.pod,
                            "Normal",
                            "Pulled",
                            f'Container image "{image}" already present on machine',
                        )
                    return command, env, cwd, mount_plan
                except ConfigError as exc:
                    self.state.waiting(container, init, "CreateContainerConfigError", str(exc))
                    self.runtime.event(self.pod, "Warning", "Failed", f"Error: {exc}", once=True)
                except MountError as exc:
                    self.state.waiting(container, init, "CreateContainerError", str(exc))
                    self.runtime.event(self.pod, "Warning", "Failed", f"Error: {exc}", once=True)
                    self._publish()
                    self.stop.wait()
                    return None
            self._publish()
            announced = True
            if self._wait(_RETRY):
                return None
        return None

    def _container_loop(
        self, container: Obj, init: bool, volumes: Mapping[str, Path]
    ) -> int | None:
        """Run (and restart per restartPolicy) a container; its final exit code, None if stopped."""
        policy = self.spec.get("restartPolicy", "Always")
        if init and policy == "Always":
            policy = "OnFailure"
        backoff = 0.2
        while True:
            prepared = self._prepare(container, init, volumes)
            if prepared is None:
                return None
            code = self._execute(container, init, *prepared)
            if self.stop.is_set() or code is None:
                return None if code is None else code
            if not (policy == "Always" or (policy == "OnFailure" and code != 0)):
                return code
            status = self.state.status_for(container, init)
            status["lastState"] = {"terminated": status["state"]["terminated"]}
            status["restartCount"] += 1
            self.state.waiting(
                container,
                init,
                "CrashLoopBackOff",
                f"back-off {backoff:g}s restarting failed container={container['name']} "
                f"pod={self.name}_{self.namespace}({self.uid})",
            )
            self._publish()
            if self._wait(backoff):
                return None
            backoff = min(backoff * 2, 5.0)

    def _execute(  # noqa: PLR0917 - the prepared tuple, unpacked
        self,
        container: Obj,
        init: bool,
        command: list[str],
        env: dict[str, str],
        cwd: str | None,
        mount_plan: MountPlan | None,
    ) -> int | None:
        name = container["name"]
        run = ContainerRun()
        status = self.state.status_for(container, init)
        path = env.get("PATH", os.defpath)
        if "/" not in command[0] and shutil.which(command[0], path=path) is None:
            self.runs.setdefault(name, []).append(run)
            run.log.close()
            now = rfc3339()
            status["state"] = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": f"failed to create containerd task: failed to create shim task: OCI "
                    f"runtime create failed: runc create failed: unable to start container "
                    f'process: exec: "{command[0]}": executable file not found in $PATH: '
                    "unknown",
                    "startedAt": "1970-01-01T00:00:00Z",
                    "finishedAt": now,
                    "containerID": f"containerd://{uuid.uuid4().hex}",
                }
            }
            self._publish()
            return 128
        full = wrap(command, mount_plan) if mount_plan else command
        failed: OSError | None = None
        with self.lock:
            if self.stop.is_set():
                return None
            try:
                process = subprocess.Popen(
                    full,
                    env=env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                failed = exc
            else:
                run.process = process
                self.runtime.groups.add(process.pid)  # the container's process group id
            self.runs.setdefault(name, []).append(run)
        if failed is not None:
            run.log.close()
            status["state"] = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": f"sandbox: could not start {command[0]!r}: {failed}",
                    "startedAt": "1970-01-01T00:00:00Z",
                    "finishedAt": rfc3339(),
                }
            }
            self._publish()
            return 128
        started = rfc3339()
        container_id = f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}"
        with self.state.lock:
            status.update(
                {
                    "state": {"running": {"startedAt": started}},
                    "ready": not init,
                    "started": True,
                    "containerID": container_id,
                    "imageID": f"{container.get('image', '')}@sha256:{'0' * 64}",
                }
            )
        if not init and all(
            "running" in self.state.status_for(c, False)["state"]
            for c in self.spec.get("containers") or []
        ):
            self.state.phase = "Running"
            self.state.condition("Ready", True)
            self.state.condition("ContainersReady", True)
        elif not init:
            self.state.phase = "Running"
        self._publish()
        self.runtime.event(self.pod, "Normal", "Started", f"Started container {name}")
        reader = threading.Thread(
            target=self._read, args=(process, run.log), daemon=True, name=f"log-{self.name}-{name}"
        )
        reader.start()
        code = process.wait()
        # A container ends with its main process: whatever it left behind goes with it.
        self.runtime.kill_group(process.pid, signal.SIGKILL)
        threading.Thread(
            target=self.runtime.forget_group_when_empty, args=(process.pid,), daemon=True
        ).start()
        reader.join(2.0)
        if process.stdout is not None:
            process.stdout.close()
        run.log.close()
        if code < 0:
            code = 128 - code
        reason = "Completed" if code == 0 else "Error"
        message = None
        if mount_plan is not None:
            err = Path(str(self._scratch_err(mount_plan)))
            if code == 128 and err.exists():
                reason = "StartError"
                message = err.read_text(errors="replace").strip()
        if code == 137 and self.stop_reason is None and not self.stop.is_set():
            reason = "OOMKilled"
        if self.stop_reason == "NodeLost":
            reason = "ContainerStatusUnknown"
            message = "The container could not be located when the pod was terminated"
        terminated: Obj = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": rfc3339(),
            "containerID": container_id,
        }
        if message:
            terminated["message"] = message
        status["state"] = {"terminated": terminated}
        status["ready"] = False
        status["started"] = False
        if not init:
            self.state.condition(
                "Ready", False, "ContainersNotReady", self.state.not_ready_message()
            )
            self.state.condition(
                "ContainersReady", False, "ContainersNotReady", self.state.not_ready_message()
            )
        self._publish()
        return code

    @staticmethod
    def _scratch_err(mount_plan: MountPlan) -> str:
        # The plan's first line opens the error file: exec {ERR}>>'<path>'.
        first = mount_plan.script.split("\n", 1)[0]
        return first.split(">>", 1)[1].strip().strip("'")

    @staticmethod
    def _read(process: subprocess.Popen[bytes], buffer: LogBuffer) -> None:
        assert process.stdout is not None
        try:
            for line in iter(process.stdout.readline, b""):
                buffer.append(line)
        except (OSError, ValueError):
            pass

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
