"""Running one container: waiting for what it needs, starting its process, reporting its end.

A :class:`ContainerRunner` serves one pod worker. ``run`` waits until the container can start
(image checks and scripted image states, env and config references, mount plan), starts the
process group (inside ``unshare -m`` when it mounts volumes), timestamps its output line by line,
reports running/terminated with exit code and reason, and restarts it as ``restartPolicy`` says.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import images
from .clock import rfc3339
from .envvars import ConfigError, argv, resolve_env
from .logs import LogBuffer
from .mounts import Mount, MountError, MountPlan, plan, wrap
from .pod_host import ContainerRun, Pod

Obj = dict[str, Any]
_RETRY = 0.5
__all__ = ["ContainerRun", "ContainerRunner", "Launch"]


@dataclass(frozen=True)
class Launch:
    """What a container starts with, once everything it needs is there."""

    command: list[str]
    env: dict[str, str]
    #: The process's working directory; None when the mount plan's script changes into it.
    cwd: str | None
    mount_plan: MountPlan | None


class ContainerRunner:
    def __init__(self, worker: Pod) -> None:
        self.w = worker

    def _failed_event(self, exc: Exception) -> None:
        self.w.runtime.event(self.w.pod, "Warning", "Failed", f"Error: {exc}", once=True)

    # waiting until it can start --------------------------------------------------------------

    def _prepare(self, container: Obj, init: bool, volumes: Mapping[str, Path]) -> Launch | None:
        """Wait until the container can start; None when the pod stopped first."""
        image = str(container.get("image", ""))
        announced = False
        while not self.w.stop.is_set():
            blocked = self._image_blocks(container, init, image)
            if blocked is None:
                return None
            if not blocked:
                try:
                    launch = self._launch(container, volumes)
                except ConfigError as exc:
                    self.w.state.waiting(container, init, "CreateContainerConfigError", str(exc))
                    self._failed_event(exc)
                except MountError as exc:
                    self.w.state.waiting(container, init, "CreateContainerError", str(exc))
                    self._failed_event(exc)
                    self.w.publish()
                    self.w.stop.wait()
                    return None
                else:
                    if not announced:
                        self.w.runtime.event(
                            self.w.pod,
                            "Normal",
                            "Pulled",
                            f'Container image "{image}" already present on machine',
                        )
                    return launch
            self.w.publish()
            announced = True
            if self.w.wait(_RETRY):
                return None
        return None

    def _image_blocks(self, container: Obj, init: bool, image: str) -> bool | None:
        """Whether the image keeps the container waiting (the reason is set); None if the pod
        stopped during the pull back-off."""
        if not images.is_valid_reference(image):
            self.w.state.waiting(
                container,
                init,
                "InvalidImageName",
                f'Failed to apply default image tag "{image}": couldn\'t parse image '
                f'name "{image}": invalid reference format',
            )
            return True
        if images.is_pull_error(image):
            self.w.state.waiting(
                container,
                init,
                "ErrImagePull",
                f'failed to pull and unpack image "{image}": failed to resolve '
                f'reference "{image}": {image}: not found',
            )
            self.w.publish()
            self.w.runtime.event(
                self.w.pod,
                "Warning",
                "Failed",
                f'Failed to pull image "{image}": not found',
                once=True,
            )
            if self.w.wait(0.3):
                return None
            self.w.state.waiting(
                container, init, "ImagePullBackOff", f'Back-off pulling image "{image}"'
            )
            return True
        if images.is_create_error(image):
            self.w.state.waiting(
                container,
                init,
                "CreateContainerError",
                "sandbox: scripted create error for image " + image,
            )
            return True
        return False

    def _launch(self, container: Obj, volumes: Mapping[str, Path]) -> Launch:
        """Command, environment and mounts; ConfigError or MountError when one is missing."""
        name = container["name"]
        base = dict(self.w.runtime.base_env)
        base["HOSTNAME"] = self.w.name
        env = resolve_env(self.w.pod, container, self.w.lookup, base)
        command = argv(container, env)
        if not command:
            raise MountError(
                f'container "{name}" has no command or args; the sandbox ignores '
                "images, so give the container a command"
            )
        mounts = _mounts(container, volumes)
        working_dir = container.get("workingDir")
        own_dir = self.w.dir / "containers" / name
        own_dir.mkdir(parents=True, exist_ok=True)
        if mounts or (working_dir and not os.path.isdir(working_dir)):
            scratch = self.w.dir / "scratch" / f"{name}-{uuid.uuid4().hex[:6]}"
            scratch.mkdir(parents=True)
            mount_plan = plan(
                mounts,
                working_dir=working_dir,
                scratch=scratch,
                workdir=self.w.runtime.workdir,
                host_dirs=self.w.runtime.host_dirs,
                error_file=scratch.with_suffix(".err"),
            )
            self.w.host_dirs.extend(mount_plan.host_dirs)
            return Launch(command, env, None, mount_plan)
        return Launch(command, env, working_dir or str(own_dir), None)

    # running and restarting ------------------------------------------------------------------

    def run(self, container: Obj, init: bool, volumes: Mapping[str, Path]) -> int | None:
        """Run (and restart per restartPolicy) a container; its final exit code, None if stopped."""
        policy = self.w.spec.get("restartPolicy", "Always")
        if init and policy == "Always":
            policy = "OnFailure"
        backoff = 0.2
        while True:
            launch = self._prepare(container, init, volumes)
            if launch is None:
                return None
            code = self._execute(container, init, launch)
            if self.w.stop.is_set() or code is None:
                return None if code is None else code
            if not (policy == "Always" or (policy == "OnFailure" and code != 0)):
                return code
            status = self.w.state.status_for(container, init)
            status["lastState"] = {"terminated": status["state"]["terminated"]}
            status["restartCount"] += 1
            self.w.state.waiting(
                container,
                init,
                "CrashLoopBackOff",
                f"back-off {backoff:g}s restarting failed container={container['name']} "
                f"pod={self.w.name}_{self.w.namespace}({self.w.uid})",
            )
            self.w.publish()
            if self.w.wait(backoff):
                return None
            backoff = min(backoff * 2, 5.0)

    def _execute(self, container: Obj, init: bool, launch: Launch) -> int | None:
        """One run: start, report running, wait for the end, report terminated."""
        name = container["name"]
        run = ContainerRun()
        status = self.w.state.status_for(container, init)
        command = launch.command
        path = launch.env.get("PATH", os.defpath)
        if "/" not in command[0] and shutil.which(command[0], path=path) is None:
            self.w.runs.setdefault(name, []).append(run)
            run.log.close()
            status["state"] = _start_error(
                f"failed to create containerd task: failed to create shim task: OCI "
                f"runtime create failed: runc create failed: unable to start container "
                f'process: exec: "{command[0]}": executable file not found in $PATH: '
                "unknown",
                container_id=f"containerd://{uuid.uuid4().hex}",
            )
            self.w.publish()
            return 128
        started_process = self._start(name, run, launch)
        if started_process is None:
            return None
        if isinstance(started_process, OSError):
            run.log.close()
            status["state"] = _start_error(
                f"sandbox: could not start {command[0]!r}: {started_process}"
            )
            self.w.publish()
            return 128
        process = started_process
        started = rfc3339()
        container_id = f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}"
        self._report_running(container, init, status, started, container_id)
        code = self._wait_for_end(name, process, run)
        self._report_terminated(
            container,
            init,
            status,
            code,
            started=started,
            container_id=container_id,
            mount_plan=launch.mount_plan,
        )
        return code

    def _start(
        self, name: str, run: ContainerRun, launch: Launch
    ) -> subprocess.Popen[bytes] | OSError | None:
        """The container's process group, the OSError that kept it from starting, or None when
        the pod stopped first. Under the pod's lock, so a terminate never misses a process."""
        full = wrap(launch.command, launch.mount_plan) if launch.mount_plan else launch.command
        failed: OSError | None = None
        with self.w.lock:
            if self.w.stop.is_set():
                return None
            try:
                process = subprocess.Popen(
                    full,
                    env=launch.env,
                    cwd=launch.cwd,
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
                self.w.runtime.groups.add(process.pid)  # the container's process group id
            self.w.runs.setdefault(name, []).append(run)
        return failed if failed is not None else process

    def _report_running(
        self, container: Obj, init: bool, status: Obj, started: str, container_id: str
    ) -> None:
        with self.w.state.lock:
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
            "running" in self.w.state.status_for(c, False)["state"]
            for c in self.w.spec.get("containers") or []
        ):
            self.w.state.phase = "Running"
            self.w.state.condition("Ready", True)
            self.w.state.condition("ContainersReady", True)
        elif not init:
            self.w.state.phase = "Running"
        self.w.publish()
        self.w.runtime.event(
            self.w.pod, "Normal", "Started", f"Started container {container['name']}"
        )

    def _wait_for_end(self, name: str, process: subprocess.Popen[bytes], run: ContainerRun) -> int:
        """The exit code (128 + signal when killed), once the output is read to its end."""
        reader = threading.Thread(
            target=self._read,
            args=(process, run.log),
            daemon=True,
            name=f"log-{self.w.name}-{name}",
        )
        reader.start()
        code = process.wait()
        # A container ends with its main process: whatever it left behind goes with it.
        self.w.runtime.kill_group(process.pid, signal.SIGKILL)
        threading.Thread(
            target=self.w.runtime.forget_group_when_empty, args=(process.pid,), daemon=True
        ).start()
        reader.join(2.0)
        if process.stdout is not None:
            process.stdout.close()
        run.log.close()
        return 128 - code if code < 0 else code

    def _report_terminated(
        self,
        container: Obj,
        init: bool,
        status: Obj,
        code: int,
        *,
        started: str,
        container_id: str,
        mount_plan: MountPlan | None,
    ) -> None:
        reason = "Completed" if code == 0 else "Error"
        message = None
        if mount_plan is not None:
            err = Path(str(self._scratch_err(mount_plan)))
            if code == 128 and err.exists():
                reason = "StartError"
                message = err.read_text(errors="replace").strip()
        if code == 137 and self.w.stop_reason is None and not self.w.stop.is_set():
            reason = "OOMKilled"
        if self.w.stop_reason == "NodeLost":
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
            self.w.state.condition(
                "Ready", False, "ContainersNotReady", self.w.state.not_ready_message()
            )
            self.w.state.condition(
                "ContainersReady", False, "ContainersNotReady", self.w.state.not_ready_message()
            )
        self.w.publish()

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


def _mounts(container: Obj, volumes: Mapping[str, Path]) -> list[Mount]:
    """The container's volumeMounts on the pod's materialized volumes."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        source = volumes.get(vm.get("name", ""))
        if source is None:
            raise MountError(f'volumeMount "{vm.get("name")}" names no volume of the pod')
        if vm.get("subPath"):
            source = source / vm["subPath"]
        mounts.append(Mount(source, vm.get("mountPath", ""), bool(vm.get("readOnly"))))
    return mounts


def _start_error(message: str, *, container_id: str | None = None) -> Obj:
    """The state of a container whose process never started."""
    terminated: Obj = {
        "exitCode": 128,
        "reason": "StartError",
        "message": message,
        "startedAt": "1970-01-01T00:00:00Z",
        "finishedAt": rfc3339(),
    }
    if container_id is not None:
        terminated["containerID"] = container_id
    return {"terminated": terminated}
