"""The thread launcher (the default): each bridge is a ``bridge.runner.Runner`` in a thread.

Why the default (issue 21): a ``python -m bridge run`` subprocess costs an interpreter start and
its imports per job -- at parallelism 50 on 2 cores that start-up was the whole fan-out's
bottleneck (docs/performance.md, "Fan-out on the local engine": 107 s process, 12 s threads).

What stays the same as :class:`~orchestrator.engine.bridges.SubprocessBridgeLauncher`:

* **Settings.** The bridge's settings come from ``python -m bridge run``'s own option
  definitions (:func:`bridge.cli.run_command.run_params`): the same arguments the subprocess gets
  (:func:`~orchestrator.engine.bridges.run_args`) and every ``BRIDGE_*`` variable of the
  environment the subprocess would have (``os.environ`` + ``BridgeSettings.env``): grace
  periods, retries, timeouts, storage config and ``BRIDGE_STORAGE_*``, workflow namespace,
  in-cluster connection. A mistake there ends the job as the process would (exit 2,
  ``NoResult``). (``KUBECONFIG`` and ``KUBERNETES_SERVICE_*`` are this process's own.)
* **Output.** The same lines to ``on_line``: the pod's log as ``stdout``, ``bridge: ...``
  messages and the final ``bridge: <status>: <reason>`` line as ``stderr``; the same result
  dict (the bridge's result JSON).
* **Cancel.** ``terminate()`` is ``Runner.cancel()`` -- the very call the bridge's SIGTERM
  handler makes: the pod is deleted and the result is ``cancelled``.
* **A hung bridge.** Where the process launcher SIGKILLs a bridge that has not stopped
  ``terminate_grace_seconds`` after SIGTERM, a watchdog here gives up on the thread after the
  same time: it deletes the run's pods and Secrets itself (:func:`delete_run_pods`, found by the
  bridge's run labels), ends the job ``cancelled`` with a note saying so, and ignores whatever
  the thread does later (a thread cannot be killed; it is a daemon and holds no lock of the
  engine's). ``--launcher process`` keeps full isolation for whoever wants it.

The bridges of one launcher share one :class:`bridge.kube.Kube` per connection setting: the
client keeps no per-call state, and one pool lets a bridge reuse the TLS connections earlier
bridges opened (each bridge holds a watch and a log stream for its whole run, and makes its
unary calls beside them) instead of opening and handshaking its own; the pool keeps up to
``POOL_SIZE`` connections, enough for every stream of a wide wave.
"""

from __future__ import annotations

import dataclasses
import io
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from bridge.errors import LifecycleError, RefusedError, UnavailableError, UsageError
from bridge.result import EXIT_INFRASTRUCTURE
from bridge.timefmt import utc_now

from .bridges import (
    EXIT_TERMINATED,
    BridgeSettings,
    Reaper,
    delete_run_pods,
    run_args,
)
from .launcher import BridgeSpec, LineSink
from .result import CANCELLED, ERROR

# Connections the shared client keeps for reuse: 3 per running bridge at parallelism ~80.
POOL_SIZE = 256

# The exit codes `python -m bridge run` uses for an error raised before it has a result.
_EXIT_USAGE = 2
_EXIT_FAILED = 1

# (kube, setup, hooks, out, emit_info) -> a runner: ``run() -> RunResult`` and ``cancel()``;
# ``setup`` is a ``bridge.cli.run_command.RunSetup``. The default builds a ``bridge.runner.Runner``;
# tests pass stand-ins.
RunnerFactory = Callable[[Any, Any, Any, TextIO, Callable[[str], None]], Any]


def _bridge_runner(
    kube: Any, setup: Any, hooks: Any, out: TextIO, emit_info: Callable[[str], None]
) -> Any:
    from bridge.runner import Runner  # noqa: PLC0415 - the bridge's machinery, once needed

    class _Runner(Runner):
        def emit_info(self, message: str) -> None:  # stderr of the subprocess
            emit_info(message)

    return _Runner(kube, setup.request, settings=setup.settings, hooks=hooks, out=out)


class _Clients:
    """One :class:`bridge.kube.Kube` per connection setting, shared by a launcher's bridges."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[Any, Any] = {}

    def get(self, settings: Any) -> Any:
        from bridge.kube import Kube  # noqa: PLC0415

        shared = dataclasses.replace(settings, connection_pool_size=POOL_SIZE)
        with self._lock:
            client = self._clients.get(shared)
            if client is None:
                client = self._clients[shared] = Kube(settings=shared)
            return client


class _LineWriter(io.StringIO):
    """The bridge's ``out``: every complete line written goes to ``emit`` as ``stdout``."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        super().__init__()
        self._emit = emit
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._emit(line.rstrip("\r"))
        return len(text)


class ThreadBridge:
    """:class:`~orchestrator.engine.launcher.BridgeHandle` for one bridge in a thread."""

    def __init__(
        self,
        spec: BridgeSpec,
        *,
        settings: BridgeSettings,
        on_line: LineSink,
        reap: Reaper = delete_run_pods,
        runner_factory: RunnerFactory = _bridge_runner,
        clients: _Clients | None = None,
    ) -> None:
        self.spec = spec
        self._clients = clients or _Clients()
        self._settings = settings
        self._on_line = on_line
        self._reap = reap
        self._runner_factory = runner_factory
        self._lock = threading.Lock()
        self._runner: Any = None  # the runner once built (imports kept lazy)
        self._terminated = False
        self._abandoned = False  # the watchdog gave up on the thread: ignore it from now on
        self._done = threading.Event()
        self._result: Mapping[str, Any] = {}
        self._started_at = utc_now()
        self._watchdog: threading.Timer | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"bridge-{spec.job.key}", daemon=True
        )
        self._thread.start()

    # -- output (nothing once abandoned: the job's result is already out) -------------------

    def _emit(self, line: str, stream: str) -> None:
        if not self._abandoned:
            self._on_line(self.spec.job, line, stream)

    def _stderr(self, line: str) -> None:
        self._emit(line, "stderr")

    def _finish(self, result: Mapping[str, Any]) -> None:
        with self._lock:
            if self._abandoned:
                return
            self._result = result
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._done.set()

    # -- the bridge thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            result = self._run_bridge()
        except LifecycleError as exc:  # before the runner had a result: as the CLI would exit
            self._stderr(f"error: {exc}")
            result = self._no_result(exc)
        except Exception as exc:  # a bug: the engine still gets a result, as from a crash
            self._stderr(f"bridge: internal error: {type(exc).__name__}: {exc}")
            result = self._no_result(exc)
        self._finish(result)

    def _run_bridge(self) -> Mapping[str, Any]:
        from bridge.cli.run_command import prepare_run, run_params  # noqa: PLC0415
        from bridge.runner import load_hooks  # noqa: PLC0415

        s = self._settings
        spec = self.spec
        # Exactly what `python -m bridge run` would run with, in the subprocess's environment.
        env = {**os.environ, **s.env}
        params = run_params(run_args(s, spec), env)
        setup = prepare_run(
            params, environment=dict(spec.environment), changeset=dict(spec.changeset)
        )
        # A storage operation's BRIDGE_STORAGE_* may come from BridgeSettings.env (the demo's do).
        hooks = load_hooks(setup.request.operation, storage_config=setup.storage_config, env=env)
        out = _LineWriter(lambda line: self._emit(line, "stdout"))
        kube = self._clients.get(setup.settings.kube)
        runner = self._runner_factory(
            kube, setup, hooks, out, lambda message: self._stderr(f"bridge: {message}")
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
        data: Mapping[str, Any] = result.to_json()
        return data

    def _no_result(self, exc: Exception) -> Mapping[str, Any]:
        """The dict the subprocess launcher makes when the bridge exited without a result."""
        code = _EXIT_FAILED
        if isinstance(exc, UsageError | RefusedError):
            code = _EXIT_USAGE
        elif isinstance(exc, UnavailableError):
            code = EXIT_INFRASTRUCTURE
        return self._made_result(ERROR, code, "NoResult", f"error: {exc}")

    def _made_result(self, status: str, code: int, reason: str, message: str) -> Mapping[str, Any]:
        return self.spec.unreported_result(
            status=status,
            exit_code=code,
            reason=reason,
            message=message,
            started_at=self._started_at,
        )

    # -- cancel and the watchdog -----------------------------------------------------------

    def terminate(self) -> None:
        """SIGTERM's path in the bridge: ``Runner.cancel()`` (sets a flag, interrupts the watch;
        the runner deletes its pod and returns ``cancelled``), and a watchdog for a bridge that
        does not stop. Never blocks."""
        with self._lock:
            if self._terminated or self._done.is_set():
                return
            self._terminated = True
            runner = self._runner
            self._watchdog = threading.Timer(self._settings.terminate_grace_seconds, self._give_up)
            self._watchdog.daemon = True
            self._watchdog.start()
        if runner is not None:
            runner.cancel()

    def _give_up(self) -> None:
        """The bridge did not stop within the grace period: delete its pods ourselves and end
        the job ``cancelled``; the thread, if it ever ends, is ignored."""
        with self._lock:
            if self._done.is_set():
                return
            self._abandoned = True  # from here on the thread's output and result are ignored
        grace = self._settings.terminate_grace_seconds
        try:
            deleted = self._reap(self._settings, self.spec)
            note = (
                f"the bridge did not stop within {grace:g}s of being cancelled and was "
                f"abandoned; the engine deleted its pods: {', '.join(deleted) or 'none left'}"
            )
        except LifecycleError as exc:
            note = (
                f"the bridge did not stop within {grace:g}s of being cancelled and was "
                f"abandoned; deleting its pods failed: {exc} (python -m bridge sweep removes them)"
            )
        self._on_line(self.spec.job, f"engine: {note}", "engine")
        self._result = self._made_result(CANCELLED, EXIT_TERMINATED, "Terminated", note)
        self._done.set()

    def wait(self) -> Mapping[str, Any]:
        self._done.wait()
        return self._result


class ThreadBridgeLauncher:
    """:class:`~orchestrator.engine.launcher.BridgeLauncher` running each bridge in a thread."""

    def __init__(
        self,
        settings: BridgeSettings,
        *,
        reap: Reaper | None = None,
        runner_factory: RunnerFactory | None = None,
    ) -> None:
        self.settings = settings
        self.reap: Reaper = reap or delete_run_pods
        self._runner_factory = runner_factory or _bridge_runner
        self._clients = _Clients()

    def cleanup(self, spec: BridgeSpec) -> list[str]:
        """Delete the pods a bridge left for its rerun (it exited 75) when there will be none."""
        return self.reap(self.settings, spec)

    def launch(self, spec: BridgeSpec, *, on_line: LineSink) -> ThreadBridge:
        return ThreadBridge(
            spec,
            settings=self.settings,
            on_line=on_line,
            reap=self.reap,
            runner_factory=self._runner_factory,
            clients=self._clients,
        )
