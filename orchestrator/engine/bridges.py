"""The real launcher: ``python -m bridge run`` as a subprocess (discovery: :mod:`.discovery`).

Why subprocesses rather than calling the bridge in-process: a bridge in Argo is a process that
receives SIGTERM when the workflow is stopped, deletes its pod and exits 143. Running the very
same command locally means Ctrl-C exercises that exact code path (and a bridge that hangs cannot
take the engine with it). Each bridge gets its own session so a terminal's Ctrl-C reaches only
``tenantctl``, which then terminates the bridges itself -- one path, whether cancelled from a
terminal, a test or the orchestrator.

Tenant data (environment, changeset) is written to private temporary files (mode 0600) that the
bridge reads with ``--environment FILE``; it never appears on a command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from bridge.errors import LifecycleError
from bridge.invocation import RunInvocation
from bridge.result import EXIT_CANCELLED
from bridge.timefmt import utc_now

from .launcher import BridgeSpec, LineSink
from .result import CANCELLED, ERROR

# The bridge's exit code when SIGTERM cancelled it (bridge/result.py).
EXIT_TERMINATED = EXIT_CANCELLED
_STDERR_TAIL = 20

# Deletes the pods of a killed bridge's run: (settings, spec) -> names deleted.
Reaper = Callable[["BridgeSettings", BridgeSpec], list[str]]


@dataclass(frozen=True)
class BridgeSettings:
    """How to start ``python -m bridge``: interpreter, Kubernetes connection, contract keys."""

    python: str = sys.executable
    kubeconfig: str | None = None
    context: str | None = None
    prefix: str | None = None
    legacy_key: str | None = None
    skip_invalid: bool = False
    # Seconds a bridge has after SIGTERM to delete its pod (with the pod's own grace period,
    # 30 s by default) before it is killed -- and the engine deletes the pod itself.
    terminate_grace_seconds: float = 40.0
    discovery_timeout_seconds: float = 120.0
    env: Mapping[str, str] = field(default_factory=dict)

    def connection_args(self) -> list[str]:
        args: list[str] = []
        if self.kubeconfig:
            args += ["--kubeconfig", self.kubeconfig]
        if self.context:
            args += ["--context", self.context]
        return args

    def contract_args(self) -> list[str]:
        args: list[str] = []
        if self.prefix:
            args += ["--prefix", self.prefix]
        if self.legacy_key:
            args += ["--legacy-key", self.legacy_key]
        return args

    def discovery_args(self) -> list[str]:
        return ["--skip-invalid"] if self.skip_invalid else []

    def process_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"  # log lines reach us as the pod writes them
        return env


def write_private(directory: Path, name: str, data: Mapping[str, Any]) -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(dict(data), handle, sort_keys=True)
    return path


class SubprocessBridge:
    """:class:`BridgeHandle` for one ``python -m bridge run`` process."""

    def __init__(
        self,
        spec: BridgeSpec,
        *,
        argv: Sequence[str],
        workdir: tempfile.TemporaryDirectory[str],
        result_path: Path,
        settings: BridgeSettings,
        on_line: LineSink,
        reap: Reaper,
    ) -> None:
        self.spec = spec
        self._reap_pods = reap
        self._workdir = workdir
        self._result_path = result_path
        self._settings = settings
        self._stderr_tail: list[str] = []
        self._terminated = threading.Event()
        self._killed = False
        self._on_line = on_line
        self._started_at = utc_now()
        self.process = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=settings.process_env(),
            start_new_session=True,
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers = [
            threading.Thread(
                target=self._pump,
                args=(self.process.stdout, "stdout", on_line),
                name=f"bridge-out-{spec.job.key}",
                daemon=True,
            ),
            threading.Thread(
                target=self._pump,
                args=(self.process.stderr, "stderr", on_line),
                name=f"bridge-err-{spec.job.key}",
                daemon=True,
            ),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, pipe: IO[bytes], stream: str, on_line: LineSink) -> None:
        with pipe:
            for raw in pipe:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if stream == "stderr":
                    self._stderr_tail = [*self._stderr_tail[-_STDERR_TAIL + 1 :], line]
                on_line(self.spec.job, line, stream)

    def terminate(self) -> None:
        if self._terminated.is_set() or self.process.poll() is not None:
            return
        self._terminated.set()
        _signal(self.process, signal.SIGTERM)
        # The bridge deletes its pod and exits 143; one that does not within the grace period
        # is killed (its pod is then left for `python -m bridge sweep`).
        timer = threading.Timer(self._settings.terminate_grace_seconds, self._kill)
        timer.daemon = True
        timer.start()

    def _kill(self) -> None:
        if self.process.poll() is None:
            self._killed = True
            _signal(self.process, signal.SIGKILL)

    def wait(self) -> Mapping[str, Any]:
        try:
            code = self.process.wait()
            for reader in self._readers:
                reader.join()
            result = self._result(code)
            if self._killed:
                result = self._reap(result)
            return result
        finally:
            self._workdir.cleanup()

    def _reap(self, result: Mapping[str, Any]) -> Mapping[str, Any]:
        """The bridge ignored SIGTERM and was killed: delete the pods it left, ourselves."""
        grace = self._settings.terminate_grace_seconds
        try:
            deleted = self._reap_pods(self._settings, self.spec)
            note = (
                f"the bridge did not stop within {grace:g}s of SIGTERM and was killed; the "
                f"engine deleted its pods: {', '.join(deleted) or 'none left'}"
            )
        except LifecycleError as exc:
            note = (
                f"the bridge did not stop within {grace:g}s of SIGTERM and was killed; deleting "
                f"its pods failed: {exc} (python -m bridge sweep removes them)"
            )
        self._on_line(self.spec.job, f"engine: {note}", "engine")
        out = dict(result)
        out["message"] = f"{out.get('message') or ''}; {note}".lstrip("; ")
        return out

    def _result(self, code: int) -> Mapping[str, Any]:
        try:
            data = json.loads(self._result_path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "status" in data:
                return data
        except (OSError, ValueError):
            pass
        # No result file: the bridge died before writing it (killed, crashed, bad arguments).
        cancelled = code in (EXIT_TERMINATED, -signal.SIGTERM, -signal.SIGKILL) and (
            self._terminated.is_set()
        )
        tail = "; ".join(line for line in self._stderr_tail if line.strip())
        return self.spec.unreported_result(
            status=CANCELLED if cancelled else ERROR,
            exit_code=code,
            reason="Terminated" if cancelled else "NoResult",
            message=tail or f"the bridge exited with {code} without writing a result",
            started_at=self._started_at,
        )


def delete_run_pods(settings: BridgeSettings, spec: BridgeSpec) -> list[str]:
    """Delete every pod (and its per-run Secret) of one job's run; the names deleted.

    The pods are found with the bridge's own run selector (:class:`bridge.podspec.RunIdentity`:
    managed-by, batch and job labels), so this finds exactly what ``python -m bridge run``
    created for this batch, every attempt.
    """
    from bridge.contract import DEFAULT_PREFIX  # noqa: PLC0415
    from bridge.errors import NotFoundError  # noqa: PLC0415
    from bridge.kube import PODS, SECRETS, Kube, KubeSettings  # noqa: PLC0415 - heavy
    from bridge.podspec import RunIdentity  # noqa: PLC0415

    identity = RunIdentity(
        prefix=settings.prefix or DEFAULT_PREFIX,
        namespace=spec.job.namespace,
        job=spec.job.name,
        operation=spec.operation,
        tenant_env_id=spec.tenant_env_id,
        batch_operation_id=spec.batch_operation_id,
    )
    namespace = spec.job.namespace
    deleted: list[str] = []
    kube_settings = KubeSettings(kubeconfig=settings.kubeconfig, context=settings.context)
    with Kube(settings=kube_settings) as kube:
        for pod in list(kube.list(PODS, namespace=namespace, label_selector=identity.selector())):
            name = str(pod["metadata"]["name"])
            for resource in (PODS, SECRETS):
                with contextlib.suppress(NotFoundError):
                    kube.delete(resource, name, namespace=namespace, grace_period_seconds=0)
            deleted.append(name)
    return deleted


def run_args(settings: BridgeSettings, spec: BridgeSpec) -> list[str]:
    """``python -m bridge run``'s arguments for one job, but its documents and result file:
    what every launcher runs a bridge with (the rest comes from ``BRIDGE_*``)."""
    return invocation(settings, spec).args()


def invocation(
    settings: BridgeSettings,
    spec: BridgeSpec,
    *,
    environment: Path | None = None,
    changeset: Path | None = None,
    result: Path | None = None,
) -> RunInvocation:
    """One job's ``python -m bridge run`` with this engine's connection and contract flags."""
    return RunInvocation(
        namespace=spec.job.namespace,
        job=spec.job.name,
        operation=spec.operation,
        tenant_env_id=spec.tenant_env_id,
        batch_operation_id=spec.batch_operation_id,
        environment=None if environment is None else str(environment),
        changeset=None if changeset is None else str(changeset),
        source_batch_operation_id=spec.source_batch_operation_id or None,
        result=None if result is None else str(result),
        extra=(*settings.connection_args(), *settings.contract_args()),
    )


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)


class SubprocessBridgeLauncher:
    """:class:`BridgeLauncher` starting ``python -m bridge run`` for each job."""

    def __init__(self, settings: BridgeSettings, *, reap: Reaper | None = None) -> None:
        self.settings = settings
        self.reap: Reaper = reap or delete_run_pods

    def cleanup(self, spec: BridgeSpec) -> list[str]:
        """Delete the pods a bridge left for its rerun (it exited 75) when there will be none."""
        return self.reap(self.settings, spec)

    def command(
        self, spec: BridgeSpec, *, environment: Path, changeset: Path, result: Path
    ) -> list[str]:
        run = invocation(
            self.settings, spec, environment=environment, changeset=changeset, result=result
        )
        return run.argv(python=self.settings.python)

    def launch(self, spec: BridgeSpec, *, on_line: LineSink) -> SubprocessBridge:
        workdir = tempfile.TemporaryDirectory(prefix="tenantctl-bridge-")
        try:
            directory = Path(workdir.name)
            environment = write_private(directory, "environment.yaml", spec.environment)
            changeset = write_private(directory, "changeset.yaml", spec.changeset)
            result = directory / "result.json"
            argv = self.command(spec, environment=environment, changeset=changeset, result=result)
            return SubprocessBridge(
                spec,
                argv=argv,
                workdir=workdir,
                result_path=result,
                settings=self.settings,
                on_line=on_line,
                reap=self.reap,
            )
        except BaseException:
            workdir.cleanup()
            raise
