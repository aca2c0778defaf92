"""One local server process (an emulator) in its own process group: free ports to give it,
start, wait until it answers, stop the whole group, and errors that quote its log.

The lifecycle every emulator in ``emulators.py`` shares; a subclass only says how to launch it
(``_argv``), how to tell it answers (``_answers``) and what to clean up (``_cleanup``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

#: Log lines quoted in an error message.
LOG_TAIL_LINES = 20


class EmulatorError(RuntimeError):
    """An emulator is missing, exited, or did not answer in time (the message says which)."""


class EmulatorCancelledError(EmulatorError):
    """``wait_ready`` gave up because the caller's ``cancel`` event was set."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all probed at once, so distinct).

    A port can still be taken by someone else before the server binds it; the context
    managers retry the start for that reason."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """One free TCP port on 127.0.0.1."""
    return free_ports(1)[0]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a process log ('' when it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def stop_process_group(process: subprocess.Popen[bytes], *, grace: float) -> None:
    """SIGTERM the process group, wait up to ``grace`` seconds, then SIGKILL the group.

    The SIGKILL is sent even when the leader exited: children of the group (a JVM under its
    wrapper script) may outlive it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


class EmulatorProcess:
    """One server process in its own process group, with a log file and a readiness probe."""

    name = "the emulator"

    def __init__(
        self, *, log_path: Path, start_timeout: float, stop_grace: float, attempts: int
    ) -> None:
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.attempts = max(1, attempts)
        self.process: subprocess.Popen[bytes] | None = None

    # Subclasses say how to launch (with fresh ports) and how to tell it answers.
    def _argv(self) -> tuple[list[str], Path]:
        raise NotImplementedError

    def _answers(self) -> bool:
        raise NotImplementedError

    def _cleanup(self) -> None:
        """Remove what the instance created for itself (after the process is gone)."""

    def start(self) -> Self:
        """Launch the process (fresh free ports); returns at once, see :meth:`wait_ready`."""
        if self.process is not None and self.process.poll() is None:
            raise EmulatorError(f"{self.name} is already running")
        argv, cwd = self._argv()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                start_new_session=True,  # its own process group: stop() kills it whole
            )
        return self

    def wait_ready(
        self, *, timeout: float | None = None, cancel: threading.Event | None = None
    ) -> None:
        """Block until the service answers; :class:`EmulatorError` when it exits or does not
        answer within ``timeout`` (default: ``start_timeout``), :class:`EmulatorCancelledError`
        as soon as ``cancel`` is set."""
        process = self.process
        if process is None:
            raise EmulatorError(f"{self.name} was not started")
        limit = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            if cancel is not None and cancel.is_set():
                raise EmulatorCancelledError(f"{self.name}: start-up cancelled")
            if process.poll() is not None:
                raise EmulatorError(
                    f"{self.name} exited with {process.returncode} "
                    f"(log {self.log_path}):\n{log_tail(self.log_path)}"
                )
            if self._answers():
                return
            if time.monotonic() > deadline:
                raise EmulatorError(
                    f"{self.name} did not answer within {limit:.0f}s "
                    f"(log {self.log_path}):\n{log_tail(self.log_path)}"
                )
            if cancel is not None:
                cancel.wait(0.1)
            else:
                time.sleep(0.1)

    def stop(self) -> None:
        """Kill the process group (SIGTERM, ``stop_grace`` seconds, SIGKILL); idempotent."""
        if self.process is not None:
            stop_process_group(self.process, grace=self.stop_grace)
        self._cleanup()

    def __enter__(self) -> Self:
        # A probed free port can be taken before the server binds it: retry with new ports.
        for attempt in range(1, self.attempts + 1):
            self.start()
            try:
                self.wait_ready()
                return self
            except EmulatorError:
                self.stop()
                if attempt == self.attempts:
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
