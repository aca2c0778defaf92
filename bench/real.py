"""The real backend of the benchmarks: the test bed's kube-apiserver (``testbed/``).

What the sandbox gives the benchmarks from inside their own process (a byte counter on its
writer, its CPU time as the benchmark's), the real control plane gives from outside:

* **Server CPU** = utime + stime of the kube-apiserver and etcd processes, read from
  ``/proc/PID/stat`` before and after a client run (kube-controller-manager is read too and
  reported apart: it is not the server of a LIST).
* **Bytes and requests** come from the apiserver's own ``/metrics``: the delta of
  ``apiserver_response_sizes_sum`` (response bodies of GET and LIST, as written by the
  apiserver, before TLS; no headers) and of ``apiserver_request_total``, both for the resources
  the clients read (``jobs``, ``namespaces``). The controller manager only watches those, so
  while one client runs the delta is that client's.

Seeding goes through the API (namespaces, then Jobs): POSTs from a small thread pool, each
thread on its own keep-alive HTTPS connection with the admin's client certificate. It is timed
and reported, never counted in the figures.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager")
SERVER = ("kube-apiserver", "etcd")  # what "server CPU" is on the real backend
READ_RESOURCES = frozenset({"jobs", "namespaces"})


def ensure_binary(progress: Any = None) -> Path:
    """The test bed's binary (built when the cache has none; ``TESTBED_BINARY`` overrides)."""
    from testbed import ensure_binary as _ensure

    return _ensure(progress=progress)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads), from /proc/PID/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may contain spaces.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    """The process's high-water RSS (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return 0.0


def component_pids(root: Path) -> dict[str, int]:
    """PIDs of the control plane's processes, found by their command lines: each component is
    ``<binary> <component> ...`` with a path under the plane's own directory ``root``."""
    found: dict[str, int] = {}
    marker = str(root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) < 2:
            continue
        name = argv[1].decode(errors="replace")
        if name in COMPONENTS and any(marker in a.decode(errors="replace") for a in argv[2:]):
            found[name] = int(entry.name)
    return found


_METRIC = re.compile(r"^(apiserver_response_sizes_sum|apiserver_request_total)\{([^}]*)\}\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Snapshot:
    cpu: dict[str, float]
    bytes: float
    requests: float


@dataclass
class Delta:
    """What the server did while one client ran."""

    bytes: int
    requests: int
    server_cpu: float  # kube-apiserver + etcd
    cpu: dict[str, float] = field(default_factory=dict)  # per component


class RealBackend:
    """A started :class:`testbed.ControlPlane` (API and controllers, no node), instrumented."""

    name = "real"

    def __init__(self, plane: Any) -> None:
        self.plane = plane
        self.pids = component_pids(plane.root)
        missing = [c for c in COMPONENTS if c not in self.pids]
        if missing:
            raise RuntimeError(f"no process found for {missing} under {plane.root}")

    @property
    def kubeconfig(self) -> str:
        return str(self.plane.kubeconfig)

    # -- measuring ------------------------------------------------------------------------
    def cpu(self) -> dict[str, float]:
        return {name: process_cpu(pid) for name, pid in self.pids.items()}

    def _scrape(self) -> list[tuple[str, dict[str, str], float]]:
        text = self.plane.request("GET", "/metrics").get("raw", "")
        found = []
        for line in text.splitlines():
            match = _METRIC.match(line)
            if match is not None:
                labels = dict(_LABEL.findall(match.group(2)))
                found.append((match.group(1), labels, float(match.group(3))))
        return found

    def metrics(self) -> tuple[float, float]:
        """(response bytes, requests) so far for the resources the clients read."""
        sizes = requests = 0.0
        for metric, labels, value in self._scrape():
            if labels.get("resource") not in READ_RESOURCES or labels.get("subresource"):
                continue
            if labels.get("verb") not in ("GET", "LIST"):
                continue
            if metric == "apiserver_response_sizes_sum":
                sizes += value
            else:
                requests += value
        return sizes, requests

    def writes(self) -> float:
        """Mutating requests the apiserver has served so far (any client, any resource)."""
        return sum(
            value
            for metric, labels, value in self._scrape()
            if metric == "apiserver_request_total"
            and labels.get("verb") in ("POST", "PUT", "PATCH", "DELETE", "APPLY")
        )

    def before(self) -> Snapshot:
        sizes, requests = self.metrics()  # the scrape itself stays outside the CPU window
        return Snapshot(self.cpu(), sizes, requests)

    def after(self, start: Snapshot) -> Delta:
        cpu = self.cpu()
        sizes, requests = self.metrics()
        spent = {name: round(cpu[name] - start.cpu[name], 3) for name in cpu}
        return Delta(
            bytes=int(sizes - start.bytes),
            requests=int(requests - start.requests),
            server_cpu=round(sum(spent[name] for name in SERVER), 3),
            cpu=spent,
        )

    def peak_rss(self) -> dict[str, float]:
        return {name: peak_rss_mb(pid) for name, pid in self.pids.items()}

    def wait_quiet(
        self, *, cores: float = 0.25, window: float = 1.0, settle: int = 3, timeout: float = 600
    ) -> float:
        """Wait until the control plane is done with what seeding set off -- the Job controller
        writes every suspended Job's condition, the namespace controllers a ServiceAccount and a
        ConfigMap per namespace: ``settle`` windows in a row with no write served by the
        apiserver and less than ``cores`` of CPU used by it, etcd and the controller manager.
        (Writes, not only CPU: on a machine shared with other work a busy process gets little
        CPU and would look idle.) Returns the seconds waited."""
        started = time.monotonic()
        quiet = 0
        last_cpu, last_writes = sum(self.cpu().values()), self.writes()
        while quiet < settle and time.monotonic() - started < timeout:
            time.sleep(window)
            cpu, writes = sum(self.cpu().values()), self.writes()
            idle = writes == last_writes and (cpu - last_cpu) / window < cores
            quiet = quiet + 1 if idle else 0
            last_cpu, last_writes = cpu, writes
        return round(time.monotonic() - started, 1)

    def idle_cpu_per_second(self, seconds: float = 3.0) -> float:
        """Server (apiserver + etcd) CPU per second with no client: the background a figure
        carries."""
        before = self.cpu()
        time.sleep(seconds)
        after = self.cpu()
        return round(sum(after[n] - before[n] for n in SERVER) / seconds, 4)


# -- seeding through the API ------------------------------------------------------------------

# (collection path, object, status to write after the create or None)
Create = tuple[str, dict[str, Any], dict[str, Any] | None]


def suspended_job_status() -> dict[str, Any]:
    """The status kube-controller-manager's Job controller gives a Job created suspended."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    condition = {
        "type": "Suspended",
        "status": "True",
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": "JobSuspended",
        "message": "Job suspended",
    }
    return {"conditions": [condition], "ready": 0, "terminating": 0,
            "uncountedTerminatedPods": {}}  # fmt: skip


class ApiSeeder:
    """POSTs objects to the real apiserver from ``threads`` threads, each on its own keep-alive
    HTTPS connection (admin client certificate), and writes their status when told to.
    409 AlreadyExists counts as done; 429, 5xx and dropped connections are retried."""

    def __init__(self, plane: Any, *, threads: int = 8) -> None:
        self.plane = plane
        self.threads = threads
        self._context = plane.ssl_context()
        self._local = threading.local()
        self._lock = threading.Lock()
        self.created = 0
        self.retries = 0
        self._connections: list[http.client.HTTPSConnection] = []

    def _connection(self) -> http.client.HTTPSConnection:
        conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.plane.port, context=self._context, timeout=60
            )
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def post(self, path: str, body: dict[str, Any], status: dict[str, Any] | None = None) -> None:
        """Create ``body`` at ``path``; with ``status``, then write the created object's status
        (a 409 there means its controller wrote it first: done as well)."""
        created = self._send("POST", path, body)
        if status is not None and created is not None:
            created["status"] = status
            self._send("PUT", f"{path}/{created['metadata']['name']}/status", created)

    def _send(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The reply's object, or None when it already existed (409)."""
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        for attempt in range(8):
            try:
                conn = self._connection()
                conn.request(method, path, body=data, headers=headers)
                reply = conn.getresponse()
                text = reply.read()
            except (OSError, http.client.HTTPException):
                self._drop()
                self._retry(attempt)
                continue
            if reply.status == 409:
                return None
            if reply.status in (200, 201, 202):
                if method == "POST":
                    with self._lock:
                        self.created += 1
                parsed: dict[str, Any] = json.loads(text)
                return parsed
            if reply.status == 429 or reply.status >= 500:
                self._retry(attempt)
                continue
            raise RuntimeError(f"{method} {path}: {reply.status} {text[:500]!r}")
        raise RuntimeError(f"{method} {path}: gave up after 8 attempts")

    def _retry(self, attempt: int) -> None:
        with self._lock:
            self.retries += 1
        time.sleep(min(2.0, 0.05 * 2**attempt))

    def run(self, batches: Iterable[Sequence[Create]]) -> None:
        """Each batch (e.g. one namespace's Jobs) goes in order on one thread's connection."""

        def send(batch: Sequence[Create]) -> None:
            for path, body, status in batch:
                self.post(path, body, status)

        try:
            with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="seed") as pool:
                for future in [pool.submit(send, b) for b in batches]:
                    future.result()
        finally:
            with self._lock:
                for conn in self._connections:
                    conn.close()
                self._connections.clear()


@contextlib.contextmanager
def control_plane(workdir: Path, *, progress: Any = None) -> Iterator[RealBackend]:
    """A real control plane (etcd, kube-apiserver, kube-controller-manager; no node agent)."""
    from testbed import ControlPlane

    with ControlPlane(workdir=workdir, node_agent=False, progress=progress) as plane:
        yield RealBackend(plane)
