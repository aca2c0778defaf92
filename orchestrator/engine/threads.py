"""The thread launcher: each bridge is a ``bridge.runner.Runner`` in a thread of the engine.

Why: a ``python -m bridge run`` subprocess costs ~0.9 CPU-seconds of interpreter start and
imports (mostly ``kubernetes``); at parallelism 50 on 2 cores that start-up is the whole
fan-out's bottleneck (docs/performance.md, "Fan-out on the local engine": 112 s -> 16 s).

What stays the same as :class:`~orchestrator.engine.bridges.SubprocessBridgeLauncher`: the
same ``Runner`` (re-check, attempts, supervision, storage hooks from :func:`load_hooks`), the
same lines to ``on_line`` (the pod's log as ``stdout``, ``bridge: ...`` messages and the final
``bridge: <status>: <reason>`` line as ``stderr``), the same result dict (the bridge's result
JSON), and cancel is ``Runner.cancel()`` -- the very call the bridge's SIGTERM handler makes, so
the pod is deleted and the result is ``cancelled``.

What it gives up (why ``process`` stays the default): a bridge that hangs cannot be killed
after a grace period (a thread cannot be), and the ``BRIDGE_*`` environment options of
``python -m bridge run`` are not read (the bridge's defaults apply; the contract prefix and the
connection come from :class:`BridgeSettings`).

Each bridge gets its own :class:`bridge.kube.Kube`: the client itself keeps no per-call state,
but its connection pool is sized for one process's calls (``cpu_count * 5``) while every
bridge holds a watch and a log stream open for its whole run; one client per bridge keeps
those streams from competing for (and overflowing) one pool, and closes them with the bridge.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping
from typing import Any

from bridge.errors import LifecycleError, RefusedError, UnavailableError, UsageError

from .bridges import EXIT_INFRASTRUCTURE, BridgeSettings, Reaper, delete_run_pods
from .launcher import BridgeSpec, LineSink
from .result import ERROR, rfc3339, utc_now

# The exit codes `python -m bridge run` uses for an error raised before it has a result.
_EXIT_USAGE = 2
_EXIT_FAILED = 1


class _LineWriter(io.StringIO):
    """The bridge's ``out``: every complete line written goes to ``on_line`` as ``stdout``."""

    def __init__(self, spec: BridgeSpec, on_line: LineSink) -> None:
        super().__init__()
        self._spec = spec
        self._on_line = on_line
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._on_line(self._spec.job, line.rstrip("\r"), "stdout")
        return len(text)


class ThreadBridge:
    """:class:`~orchestrator.engine.launcher.BridgeHandle` for one bridge in a thread."""

    def __init__(self, spec: BridgeSpec, *, settings: BridgeSettings, on_line: LineSink) -> None:
        self.spec = spec
        self._settings = settings
        self._on_line = on_line
        self._lock = threading.Lock()
        self._runner: Any = None  # bridge.runner.Runner once built (imports kept lazy)
        self._terminated = False
        self._result: Mapping[str, Any] = {}
        self._started_at = utc_now()
        self._thread = threading.Thread(
            target=self._run, name=f"bridge-{spec.job.key}", daemon=True
        )
        self._thread.start()

    def _stderr(self, line: str) -> None:
        self._on_line(self.spec.job, line, "stderr")

    def _run(self) -> None:
        try:
            self._result = self._run_bridge()
        except LifecycleError as exc:  # before the runner had a result: as the CLI would exit
            self._stderr(f"error: {exc}")
            self._result = self._no_result(exc)
        except Exception as exc:  # a bug: the engine still gets a result, as from a crash
            self._stderr(f"bridge: internal error: {type(exc).__name__}: {exc}")
            self._result = self._no_result(exc)

    def _run_bridge(self) -> Mapping[str, Any]:
        from bridge.contract import DEFAULT_PREFIX, ContractSettings  # noqa: PLC0415
        from bridge.kube import Kube, KubeSettings  # noqa: PLC0415 - kubernetes is heavy
        from bridge.runner import Runner, RunRequest, load_hooks  # noqa: PLC0415
        from bridge.settings import BridgeSettings as RunnerSettings  # noqa: PLC0415

        s = self._settings
        spec = self.spec
        settings = RunnerSettings(
            contract=ContractSettings(prefix=s.prefix or DEFAULT_PREFIX, legacy_key=s.legacy_key),
            kube=KubeSettings(kubeconfig=s.kubeconfig, context=s.context),
        )
        request = RunRequest(
            namespace=spec.job.namespace,
            job=spec.job.name,
            operation=spec.operation,
            tenant_env_id=spec.tenant_env_id,
            batch_operation_id=spec.batch_operation_id,
            environment=dict(spec.environment),
            changeset=dict(spec.changeset),
            workflow_namespace=os.environ.get("POD_NAMESPACE") or None,
            source_batch_operation_id=spec.source_batch_operation_id or None,
        )
        # As `python -m bridge run`: --storage-config is BRIDGE_STORAGE_CONFIG when not given.
        storage_config = s.env.get("BRIDGE_STORAGE_CONFIG") or os.environ.get(
            "BRIDGE_STORAGE_CONFIG"
        )
        hooks = load_hooks(request.operation, storage_config=storage_config)
        bridge = self

        class _Runner(Runner):
            def emit_info(self, message: str) -> None:  # stderr of the subprocess
                bridge._stderr(f"bridge: {message}")

        with Kube(settings=settings.kube) as kube:
            runner = _Runner(
                kube, request, settings=settings, hooks=hooks, out=_LineWriter(spec, self._on_line)
            )
            with self._lock:
                self._runner = runner
                if self._terminated:  # cancelled while the bridge was starting
                    runner.cancel()
            result = runner.run()
        summary = f"bridge: {result.status.value}: {result.reason}"
        if result.message:
            summary += f": {result.message}"
        self._stderr(summary)
        return result.to_json()

    def _no_result(self, exc: Exception) -> Mapping[str, Any]:
        """The dict the subprocess launcher makes when the bridge exited without a result."""
        code = _EXIT_FAILED
        if isinstance(exc, UsageError | RefusedError):
            code = _EXIT_USAGE
        elif isinstance(exc, UnavailableError):
            code = EXIT_INFRASTRUCTURE
        spec = self.spec
        finished = utc_now()
        return {
            "namespace": spec.job.namespace,
            "job": spec.job.name,
            "operation": spec.operation,
            "tenantEnvId": spec.tenant_env_id,
            "batchOperationId": spec.batch_operation_id,
            "status": ERROR,
            "exitCode": code,
            "reason": "NoResult",
            "message": f"error: {exc}",
            "attempts": [],
            "startedAt": rfc3339(self._started_at),
            "finishedAt": rfc3339(finished),
            "durationSeconds": round((finished - self._started_at).total_seconds(), 3),
        }

    def terminate(self) -> None:
        """SIGTERM's path in the bridge: ``Runner.cancel()`` (sets a flag, interrupts the watch;
        the runner deletes its pod and returns ``cancelled``). Never blocks."""
        with self._lock:
            self._terminated = True
            runner = self._runner
        if runner is not None:
            runner.cancel()

    def wait(self) -> Mapping[str, Any]:
        self._thread.join()
        return self._result


class ThreadBridgeLauncher:
    """:class:`~orchestrator.engine.launcher.BridgeLauncher` running each bridge in a thread."""

    def __init__(self, settings: BridgeSettings, *, reap: Reaper | None = None) -> None:
        self.settings = settings
        self.reap: Reaper = reap or delete_run_pods

    def cleanup(self, spec: BridgeSpec) -> list[str]:
        """Delete the pods a bridge left for its rerun (it exited 75) when there will be none."""
        return self.reap(self.settings, spec)

    def launch(self, spec: BridgeSpec, *, on_line: LineSink) -> ThreadBridge:
        return ThreadBridge(spec, settings=self.settings, on_line=on_line)
