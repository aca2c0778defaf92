"""Benchmarks on the real Argo Workflows controller (issue 17, item 7).

Both run on the test bed's real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and the node agent, which runs pods as local processes) with Argo Workflows
installed from its pinned release (workflow-controller, argo-server and every workflow pod's
argoexec are the real programs), installed as docs/install.md says: Argo's manifests, step 1's
``templateReferencing: Strict``, ``kubectl apply -k deploy/team-example``, and team namespaces
made from ``deploy/team-example/team.yaml``. The template's exit handler publishes results to a
Pub/Sub emulator started for the run.

* ``argo-fanout``: 200 one-second Jobs (``sleep 1``) over 20 team namespaces in 4 waves,
  submitted once (``argo submit --from workflowtemplate/tenant-lifecycle``) with parallelism 32,
  the template's largest level (issue 17 asks for 50, which the template rounds down to 32).
  Measured from the submit to the Workflow finished (its ``completed`` label seen by a watch),
  against (a) the ideal, waves x ceil(jobs per wave / parallelism) x (1 s + the pod start
  measured on the same cluster: median create -> Succeeded of 5 plain busybox ``true`` pods),
  and (b) the local engine (``tenantctl run --engine local --parallelism 32``, its own process)
  running the same Jobs on the same cluster. A second Argo run with the controller's
  ``DEFAULT_REQUEUE_TIME`` lowered from its 10 s default to 2 s shows what the default costs.
* ``argo-events``: N = 30 request events for distinct tenants with an operation no Job takes
  part in (an empty plan: only the orchestration is measured), each published twice, consumed
  by ``tenantctl listen`` (its own process, the cluster's kubeconfig): Workflows created and
  finished per second, against a raw create loop of the same 30 Workflows (the object
  ``tenantctl listen`` submits, POSTed one after another on one keep-alive HTTPS connection)
  on the same apiserver. Duplicates are counted: 30 Workflows expected from 60 messages.

Timestamps of pods and Workflows are taken when their watch events reach this process
(milliseconds; the API's own times have one-second precision and are kept as a cross-check).
Workflows are watched as metadata only (``PartialObjectMetadata``): the controller's
``workflows.argoproj.io/completed`` label says when one finished, without parsing its status.

**One Argo install per machine.** The controller's ports (6060, 9090) and argo-server's (2746)
are fixed and pods share the host network, so the benchmark holds ``/tmp/argo-tier.lock``
(``flock``) while its cluster runs, as the Argo test tier does; run under ``flock
/tmp/argo-tier.lock ...`` it sees the lock held by its ancestor and goes on. SIGTERM is turned
into KeyboardInterrupt while the cluster is up, so the control plane is always stopped.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import gzip
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from . import common
from .common import Report

LOCK_PATH = Path("/tmp/argo-tier.lock")  # the machine's agreed lock file
NAMESPACE = "tenant-lifecycle"
TEMPLATE = "tenant-lifecycle"
PREFIX = "tenant-lifecycle.dev"
TEAM_MANIFEST = common.ROOT / "deploy" / "team-example" / "team.yaml"
TENANTCTL = str(Path(common.PYTHON).with_name("tenantctl"))
STRICT_PATCH = '{"data":{"workflowRestrictions":"templateReferencing: Strict\\n"}}'
COMPLETED_LABEL = "workflows.argoproj.io/completed"
PHASE_LABEL = "workflows.argoproj.io/phase"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
FANOUT_OPERATION = "lifecycle.upsert"
EMPTY_OPERATION = "bench.nothing"  # no Job takes part in it: an empty plan
PROJECT = "bench-argo"
# The controller's workflow-queue requeue delay: its default, and the lower value tried.
REQUEUE_DEFAULT = "10s"
REQUEUE_TRIED = "2s"
# Every Argo pod's init container copies argoexec (152 MB) into the pod's emptyDir, a directory
# on this machine's disk. A first attempt filled the shared disk (44 GB): the node agent then
# kept volumes until a pod was deleted (it now tears them down when the pod ends, as the kubelet
# does) and the template's podGC deletes succeeded pods after 10 minutes. The benchmark's
# cluster deletes them at once (deleteDelayDuration 0s), and DiskGuard stops a run below 6 GB.
POD_GC_DELAY = "0s"
DISK_FLOOR_GB = 6.0


# -- the machine's Argo lock --------------------------------------------------------------------


def _ancestors() -> set[int]:
    pids: set[int] = set()
    pid = os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])
    return pids


def _lock_holders(path: Path) -> list[int]:
    """PIDs holding a flock on ``path`` (from /proc/locks; waiters are skipped)."""
    try:
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return []
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = []
    for line in table.splitlines():
        parts = line.split()
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue
        if parts[5] == ident:
            holders.append(int(parts[4]))
    return holders


@contextlib.contextmanager
def argo_lock(say: Callable[[str], None]) -> Iterator[str]:
    """Hold the machine's Argo lock (``flock`` on /tmp/argo-tier.lock) while the body runs; a
    lock already held by an ancestor (``flock /tmp/argo-tier.lock python -m bench ...``) is
    ours. Yields how it is held."""
    LOCK_PATH.touch(exist_ok=True)
    mine = [pid for pid in _lock_holders(LOCK_PATH) if pid in _ancestors()]
    if mine:
        yield f"held by the parent flock (pid {mine[0]})"
        return
    with LOCK_PATH.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for {LOCK_PATH} (held by pid {_lock_holders(LOCK_PATH)})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield "taken by the benchmark"
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the cluster runs, SIGTERM stops it cleanly (KeyboardInterrupt) instead of leaving
    its processes behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- watching the cluster -----------------------------------------------------------------------


class Watch:
    """A watch of one collection in a thread of this process: every ADDED/MODIFIED object goes
    to ``on_object(obj, now)`` with the wall-clock time its event arrived. Restarts (from a
    fresh list) when the server ends the stream or the version expired."""

    def __init__(
        self,
        plane: Any,
        path: str,
        on_object: Callable[[dict[str, Any], float], None],
        *,
        accept: str = "application/json",
    ) -> None:
        self.plane = plane
        self.path = path
        self.on_object = on_object
        self.accept = accept
        self.errors = 0
        self.connected = threading.Event()
        self._stopping = threading.Event()
        self._conn: http.client.HTTPSConnection | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)

    def start(self, timeout: float = 30) -> Watch:
        self._thread.start()
        if not self.connected.wait(timeout):
            raise RuntimeError(f"watch {self.path}: not connected after {timeout:.0f} s")
        return self

    def _run(self) -> None:
        version = ""
        context = self.plane.ssl_context()
        while not self._stopping.is_set():
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.plane.port, context=context, timeout=None
            )
            self._conn = conn
            try:
                query = "watch=true&allowWatchBookmarks=false"
                if version:
                    query += f"&resourceVersion={version}"
                sep = "&" if "?" in self.path else "?"
                conn.request("GET", f"{self.path}{sep}{query}", headers={"Accept": self.accept})
                reply = conn.getresponse()
                if reply.status != 200:
                    raise OSError(f"watch {self.path}: HTTP {reply.status}")
                self.connected.set()
                while not self._stopping.is_set():
                    line = reply.readline()
                    if not line:
                        break
                    now = time.time()
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        version = ""
                        break
                    version = (obj.get("metadata") or {}).get("resourceVersion", version)
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self.on_object(obj, now)
            except (OSError, ValueError, http.client.HTTPException):
                if self._stopping.is_set():
                    return
                self.errors += 1
                time.sleep(0.2)
            finally:
                conn.close()

    def stop(self) -> None:
        self._stopping.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(timeout=5)


@dataclass
class PodTimes:
    """One pod's transitions as seen by the watch (wall clock, seconds)."""

    namespace: str
    name: str
    labels: dict[str, str]
    cpu_request_m: int
    created: float
    scheduled: float | None = None
    running: float | None = None
    done: float | None = None
    phase: str = ""
    unschedulable: str = ""  # the scheduler's message when it ever refused the pod


def _cpu_millis(value: str) -> int:
    if value.endswith("m"):
        return int(float(value[:-1]))
    return int(float(value) * 1000)


def pod_cpu_request(pod: dict[str, Any]) -> int:
    """What the scheduler counts: max(sum of the containers', each init container's) CPU
    requests, in millicores."""
    spec = pod.get("spec") or {}

    def request(c: dict[str, Any]) -> int:
        value = ((c.get("resources") or {}).get("requests") or {}).get("cpu")
        return _cpu_millis(str(value)) if value else 0

    containers = sum(request(c) for c in spec.get("containers") or [])
    inits = [request(c) for c in spec.get("initContainers") or []]
    return max([containers, *inits])


class PodClock:
    """Every pod of the cluster (or of the namespaces ``keep`` accepts), from a watch."""

    def __init__(self, plane: Any, keep: Callable[[str], bool] = lambda _ns: True) -> None:
        self.keep = keep
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.pods: dict[str, PodTimes] = {}
        self.watch = Watch(plane, "/api/v1/pods", self._seen)

    def _seen(self, pod: dict[str, Any], now: float) -> None:
        meta = pod.get("metadata") or {}
        namespace = str(meta.get("namespace", ""))
        if not self.keep(namespace):
            return
        key = f"{namespace}/{meta.get('name')}"
        status = pod.get("status") or {}
        with self.lock:
            times = self.pods.get(key)
            if times is None:
                times = PodTimes(
                    namespace, str(meta.get("name")), dict(meta.get("labels") or {}),
                    pod_cpu_request(pod), now,
                )  # fmt: skip
                self.pods[key] = times
            if times.scheduled is None and (pod.get("spec") or {}).get("nodeName"):
                times.scheduled = now
            for condition in status.get("conditions") or []:
                if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                    times.unschedulable = str(condition.get("message") or condition.get("reason"))
            states = [s.get("state") or {} for s in status.get("containerStatuses") or []]
            if times.running is None and any("running" in s or "terminated" in s for s in states):
                times.running = now
            phase = str(status.get("phase") or "")
            times.phase = phase
            if times.done is None and phase in ("Succeeded", "Failed"):
                times.done = now
            self.changed.notify_all()

    def wait_done(self, key: str, timeout: float) -> PodTimes | None:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                times = self.pods.get(key)
                if times is not None and times.done is not None:
                    return times
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(min(left, 0.5))

    def snapshot(self) -> list[PodTimes]:
        with self.lock:
            return [PodTimes(**vars(p)) for p in self.pods.values()]


class WorkflowClock:
    """Workflows of the namespace, metadata only: first seen, and when the controller's
    ``completed`` label appeared (with the phase label's value)."""

    def __init__(self, plane: Any, disk: DiskGuard | None = None) -> None:
        self.disk = disk
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.created: dict[str, float] = {}
        self.completed: dict[str, float] = {}
        self.phase: dict[str, str] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self.watch = Watch(
            plane,
            f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/workflows",
            self._seen,
            accept=METADATA_ONLY,
        )

    def _seen(self, obj: dict[str, Any], now: float) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name"))
        labels = dict(meta.get("labels") or {})
        with self.lock:
            self.created.setdefault(name, now)
            self.labels[name] = labels
            self.phase[name] = labels.get(PHASE_LABEL, "")
            if labels.get(COMPLETED_LABEL) == "true":
                self.completed.setdefault(name, now)
            self.changed.notify_all()

    def wait(self, names: Callable[[], set[str]], count: int, timeout: float) -> bool:
        """Until ``count`` of the Workflows ``names()`` picks have completed."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                wanted = names()
                if len(wanted) >= count and all(n in self.completed for n in wanted):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if self.disk is not None:
                    self.disk.check()
                self.changed.wait(min(left, 0.5))

    def by_label(self, key: str, values: set[str]) -> set[str]:
        """Names of the Workflows whose label ``key`` is one of ``values`` (lock held)."""
        return {n for n, labels in self.labels.items() if labels.get(key) in values}


# -- CPU accounting -----------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")
_TESTBED = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "node-agent")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores, /proc/stat), so far."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _TICK


def _cpu_of(pid: int, *, children: bool = False) -> float:
    """utime + stime of a process; with ``children``, cutime + cstime instead: what its exited
    children it waited for used."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / _TICK


def component_pids(root: Path) -> dict[str, int]:
    """The control plane's processes (``<binary> <component>`` under ``root``) and Argo's
    controller and server (the only ones on the machine: the lock)."""
    found: dict[str, int] = {}
    marker = str(root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = [
                a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0")
            ]
        except OSError:
            continue
        if len(argv) >= 2 and argv[1] in _TESTBED and any(marker in a for a in argv[2:]):
            found[argv[1]] = int(entry.name)
        elif argv and Path(argv[0]).name == "workflow-controller":
            found["workflow-controller"] = int(entry.name)
        elif len(argv) >= 2 and Path(argv[0]).name == "argo" and argv[1] == "server":
            found["argo-server"] = int(entry.name)
    return found


class CpuMeter:
    """CPU used over an interval: the machine's (all processes, including other sessions'),
    and the control plane's and Argo's processes one by one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pids: dict[str, int] = {}
        self._start: dict[str, float] = {}
        self._machine = 0.0
        self._wall = 0.0
        self._load = 0.0

    def begin(self) -> None:
        self.pids = component_pids(self.root)
        self._start = self._read()
        self._machine = machine_busy_seconds()
        self._wall = time.monotonic()
        self._load = os.getloadavg()[0]

    def _read(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError, ValueError):
                out[name] = _cpu_of(pid)
        # The node agent waits for every container (through its container-init): its children's
        # CPU is what the pods' containers that ended used.
        if "node-agent" in self.pids:
            with contextlib.suppress(OSError, ValueError):
                out["pods (containers that ended)"] = _cpu_of(
                    self.pids["node-agent"], children=True
                )
        return out

    def end(self) -> dict[str, Any]:
        now = self._read()
        wall = time.monotonic() - self._wall
        machine = machine_busy_seconds() - self._machine
        per = {n: round(now[n] - self._start[n], 2) for n in now if n in self._start}
        return {
            "wall_s": round(wall, 2),
            "machine_busy_cpu_s": round(machine, 1),
            "machine_capacity_cpu_s": round(wall * (os.cpu_count() or 1), 1),
            "machine_busy_share": common.ratio(machine, wall * (os.cpu_count() or 1)),
            "components_cpu_s": per,
            "load_average_1m_before_after": [round(self._load, 2), round(os.getloadavg()[0], 2)],
        }


class DiskGuard:
    """Watches the free space of the file system the cluster lives on: the lowest seen, and
    ``low`` set when it falls under ``floor_gb`` (the waits then stop the run, so that one
    benchmark cannot fill a disk other sessions share)."""

    def __init__(self, path: Path, *, floor_gb: float = DISK_FLOOR_GB) -> None:
        self.path = path
        self.floor = floor_gb * 1e9
        self.low = threading.Event()
        self.start_free = self.free()
        self.min_free = self.start_free
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-guard", daemon=True)

    def free(self) -> float:
        st = os.statvfs(self.path)
        return float(st.f_bavail * st.f_frsize)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            free = self.free()
            self.min_free = min(self.min_free, free)
            if free < self.floor:
                self.low.set()

    def start(self) -> DiskGuard:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check(self) -> None:
        if self.low.is_set():
            raise RuntimeError(
                f"free disk space fell under {self.floor / 1e9:.0f} GB on {self.path} "
                f"({self.min_free / 1e9:.1f} GB left): run stopped"
            )

    def figures(self) -> dict[str, float]:
        return {
            "free_gb_at_start": round(self.start_free / 1e9, 1),
            "free_gb_lowest": round(self.min_free / 1e9, 1),
            "used_gb_peak": round((self.start_free - self.min_free) / 1e9, 1),
        }


# -- the cluster --------------------------------------------------------------------------------


def _say(line: str) -> None:
    print(f"  [argo] {line}", flush=True)


@dataclass
class ArgoBench:
    """The running cluster with Argo and the project installed."""

    plane: Any
    argo_cli: Path
    emulator_host: str
    results_topic: str
    results_subscription: str
    lock: str
    disk: DiskGuard
    setup_s: float = 0.0
    teams: list[str] = field(default_factory=list)

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        out: str = self.plane.kubectl(*args, stdin=stdin, timeout=timeout)
        return out

    def argo(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [str(self.argo_cli), "--kubeconfig", str(self.plane.kubeconfig), "-n", NAMESPACE,
             *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"argo {' '.join(args)} exited {done.returncode}: "
                               f"{(done.stderr or done.stdout).strip()[-1500:]}")  # fmt: skip
        return done.stdout

    def apply(self, objects: Sequence[dict[str, Any]]) -> None:
        self.kubectl(
            "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(list(objects)),
            timeout=300,
        )  # fmt: skip

    def add_teams(self, names: Sequence[str]) -> None:
        """docs/install.md step 3 per team: team.yaml with the namespace renamed."""
        text = TEAM_MANIFEST.read_text()
        stream = "\n---\n".join(text.replace("team-example", name) for name in names)
        self.kubectl("apply", "-f", "-", stdin=stream, timeout=300)
        self.teams.extend(names)

    def workflow(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.plane.request(
            "GET", f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/workflows/{name}"
        )
        return found

    def controller_env(self, name: str, value: str) -> None:
        """Set an environment variable of the workflow-controller: scaled to 0 first (its ports
        are on the host network: a rolling update's new pod could not bind them), then 1."""
        deploy = "deployment/workflow-controller"
        self.kubectl("-n", "argo", "scale", deploy, "--replicas=0")
        self.kubectl("-n", "argo", "wait", "--for=delete", "pod",
                     "-l", "app=workflow-controller", "--timeout=120s", timeout=130)  # fmt: skip
        self.kubectl("-n", "argo", "set", "env", deploy, f"{name}={value}")
        self.kubectl("-n", "argo", "scale", deploy, "--replicas=1")
        self.kubectl("-n", "argo", "rollout", "status", deploy, "--timeout=180s", timeout=190)


@contextlib.contextmanager
def argo_cluster(workdir: Path, *, emulator_host: str | None = None) -> Iterator[ArgoBench]:
    """The machine's Argo lock, a Pub/Sub emulator, and the real control plane with Argo and
    the project installed; everything stopped afterwards."""
    from orchestrator.pubsub import ensure_topology
    from testbed import ControlPlane
    from testbed import argo as pinned_argo

    from .events import _emulator_env

    started = time.monotonic()
    binaries = pinned_argo.ensure_binaries(progress=_say)  # a cold build is minutes: before
    with (
        argo_lock(_say) as how,
        _sigterm_as_interrupt(),
        common.pubsub_emulator(emulator_host) as host,
        _emulator_env(host),
    ):
        _say(f"lock {LOCK_PATH}: {how}; starting the control plane")
        tag = uuid.uuid4().hex[:8]
        results, results_sub = f"argo-results-{tag}", f"argo-results-{tag}-sub"
        ensure_topology(PROJECT, topics=[results], subscriptions={results_sub: results})
        plane = ControlPlane(
            workdir=workdir / "real", image_map=pinned_argo.image_map(binaries), progress=None
        )
        disk = DiskGuard(workdir).start()
        try:
            plane.start()  # idempotent stop below, also after a failed start
            pinned_argo.install(plane, progress=_say)
            plane.kubectl(
                "-n", "argo", "patch", "configmap", "workflow-controller-configmap",
                "--type", "merge", "-p", STRICT_PATCH,
            )  # fmt: skip
            plane.kubectl("apply", "-k", str(common.ROOT / "deploy" / "team-example"), timeout=120)
            plane.kubectl(
                "-n", NAMESPACE, "patch", "workflowtemplate", TEMPLATE, "--type", "merge",
                "-p", json.dumps({"spec": {"podGC": {"deleteDelayDuration": POD_GC_DELAY}}}),
            )  # fmt: skip
            settings = {
                "TENANTCTL_PROJECT": PROJECT,
                "TENANTCTL_RESULTS_TOPIC": results,
                "PUBSUB_EMULATOR_HOST": host,
            }
            plane.kubectl(
                "-n", NAMESPACE, "patch", "configmap", "tenant-lifecycle-settings",
                "--type", "merge", "-p", json.dumps({"data": settings}),
            )  # fmt: skip
            bench = ArgoBench(
                plane=plane,
                argo_cli=binaries / "argo",
                emulator_host=host,
                results_topic=results,
                results_subscription=results_sub,
                lock=how,
                disk=disk,
            )
            bench.setup_s = round(time.monotonic() - started, 1)
            _say(f"Argo {pinned_argo.pinned_version()} and the project installed in "
                 f"{bench.setup_s:.0f} s")  # fmt: skip
            yield bench
        finally:
            plane.stop()
            disk.stop()
            _say("control plane stopped")


def _when(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def workflow_nodes(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """The Workflow's nodes, from ``status.nodes`` or the controller's ``compressedNodes``
    (gzip + base64, used above its size limit)."""
    status = workflow.get("status") or {}
    nodes = status.get("nodes")
    if not nodes and status.get("compressedNodes"):
        nodes = json.loads(gzip.decompress(base64.b64decode(status["compressedNodes"])))
    return list((nodes or {}).values())


def _node_param(node: dict[str, Any], name: str) -> str | None:
    for parameter in (node.get("inputs") or {}).get("parameters") or []:
        if parameter.get("name") == name:
            return str(parameter.get("value"))
    return None


def _span(values: Sequence[tuple[float | None, float | None]]) -> float | None:
    starts = [s for s, _ in values if s is not None]
    ends = [e for _, e in values if e is not None]
    if not starts or not ends:
        return None
    return round(max(ends) - min(starts), 3)


def _peak_concurrency(pods: Sequence[PodTimes]) -> int:
    """Most pods scheduled and not yet finished at one moment."""
    edges: list[tuple[float, int]] = []
    for p in pods:
        if p.scheduled is not None and p.done is not None:
            edges += [(p.scheduled, 1), (p.done, -1)]
    peak = current = 0
    for _, step in sorted(edges):
        current += step
        peak = max(peak, current)
    return peak


def _refusals(pods: Sequence[PodTimes]) -> list[str]:
    """A few of the scheduler's refusals, each with its pod."""
    return [f"{p.namespace}/{p.name}: {p.unschedulable[:160]}" for p in pods[:3]]


def _node_cpu_m(plane: Any) -> int:
    node = plane.request("GET", "/api/v1/nodes")["items"][0]
    return _cpu_millis(str((node.get("status") or {}).get("allocatable", {}).get("cpu", "0")))


# -- 1. fan-out -------------------------------------------------------------------------------


def fanout_jobs(namespaces: Sequence[str], per_namespace: int, waves: int) -> list[dict[str, Any]]:
    """``per_namespace`` suspended ``sleep 1`` Jobs per namespace; job g in wave g % waves."""
    jobs = []
    for k, namespace in enumerate(namespaces):
        for j in range(per_namespace):
            g = k * per_namespace + j
            jobs.append(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {
                        "name": f"step-{j:02d}",
                        "namespace": namespace,
                        "labels": {f"{PREFIX}/enabled": "true"},
                        "annotations": {
                            f"{PREFIX}/operations": FANOUT_OPERATION,
                            f"{PREFIX}/wave": str(g % waves),
                        },
                    },
                    "spec": {
                        "suspend": True,
                        "backoffLimit": 0,
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [
                                    {"name": "main", "image": "busybox:1.36",
                                     "command": ["sleep", "1"]}
                                ],
                            }
                        },
                    },
                }
            )  # fmt: skip
    return jobs


def pod_start_seconds(bench: ArgoBench, clock: PodClock, samples: int) -> list[float]:
    """Create -> Succeeded of plain busybox ``true`` pods, one after another."""
    namespace = "bench-podstart"
    bench.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}])

    def has_account() -> bool:  # pods are refused until the namespace's default account exists
        try:
            bench.plane.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
        except OSError:  # urllib's HTTPError (404) is an OSError
            return False
        return True

    common.wait_until(has_account, timeout=60, interval=0.2)
    found = []
    for i in range(samples):
        name = f"true-{i}"
        started = time.time()
        bench.plane.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
                },
            },
        )
        times = clock.wait_done(f"{namespace}/{name}", timeout=120)
        if times is None or times.done is None:
            raise RuntimeError(f"pod {namespace}/{name} did not finish in 120 s")
        found.append(round(times.done - started, 3))
    return found


def _warm_up(bench: ArgoBench, workflows: WorkflowClock, tenant: str) -> float:
    """One empty-plan Workflow through the controller (template cache, informers, first pods),
    not counted; seconds it took."""
    started = time.monotonic()
    name = bench.argo(
        "submit", "--from", f"workflowtemplate/{TEMPLATE}", "-o", "name",
        "-p", f"operation={EMPTY_OPERATION}", "-p", f"tenant-env-id={tenant}",
        "-p", f"batch-operation-id=warm-{uuid.uuid4().hex[:10]}",
    ).strip()  # fmt: skip
    if not workflows.wait(lambda: {name}, 1, timeout=300):
        raise RuntimeError(f"the warm-up Workflow {name} did not finish in 300 s")
    return round(time.monotonic() - started, 1)


def _argo_fanout(
    bench: ArgoBench,
    pods: PodClock,
    workflows: WorkflowClock,
    *,
    tenant: str,
    parallelism: int,
    waves_of: dict[str, int],
    timeout: float,
) -> dict[str, Any]:
    """Submit the fan-out once; wait for the Workflow to finish; what the cluster recorded."""
    batch = f"bench-fanout-{uuid.uuid4().hex[:10]}"
    meter = CpuMeter(bench.plane.root)
    meter.begin()
    submitted_at = time.time()
    name = bench.argo(
        "submit", "--from", f"workflowtemplate/{TEMPLATE}", "-o", "name",
        "-p", f"operation={FANOUT_OPERATION}", "-p", f"tenant-env-id={tenant}",
        "-p", f"batch-operation-id={batch}", "-p", f"parallelism={parallelism}",
    ).strip()  # fmt: skip
    submit_returned = time.time()
    finished = workflows.wait(lambda: {name}, 1, timeout=timeout)
    cpu = meter.end()
    if not finished:
        with contextlib.suppress(RuntimeError):
            bench.argo("stop", name)
        raise RuntimeError(f"Workflow {name} not finished after {timeout:.0f} s")
    with workflows.lock:
        completed_at = workflows.completed[name]
        phase = workflows.phase.get(name, "")
    workflow = bench.workflow(name)
    status = workflow.get("status") or {}
    nodes = workflow_nodes(workflow)
    bridge = [n for n in nodes if n.get("type") == "Pod" and n.get("templateName") == "bridge"]
    discover = [n for n in nodes if n.get("type") == "Pod" and n.get("templateName") == "discover"]
    on_exit = [n for n in nodes if n.get("type") == "Pod" and n.get("templateName") not in
               ("bridge", "discover")]  # fmt: skip
    per_wave: dict[int, list[tuple[float | None, float | None]]] = {}
    for node in bridge:
        wave = waves_of.get(_node_param(node, "job") or "", -1)
        per_wave.setdefault(wave, []).append((_when(node.get("startedAt")),
                                              _when(node.get("finishedAt"))))  # fmt: skip
    # Millisecond view from the pod watch: the team pods this run's bridges made.
    team = [p for p in pods.snapshot()
            if p.labels.get(f"{PREFIX}/batch") == batch]  # fmt: skip
    argo_pods = [p for p in pods.snapshot()
                 if p.labels.get("workflows.argoproj.io/workflow") == name]  # fmt: skip
    team_wave: dict[int, list[tuple[float | None, float | None]]] = {}
    for p in team:
        key = f"{p.namespace}/{p.labels.get(f'{PREFIX}/job', '')}"
        team_wave.setdefault(waves_of.get(key, -1), []).append((p.created, p.done))
    discover_s = _span([(_when(n.get("startedAt")), _when(n.get("finishedAt"))) for n in discover])
    exit_s = _span([(_when(n.get("startedAt")), _when(n.get("finishedAt"))) for n in on_exit])
    bridge_pods = [p for p in argo_pods if "-bridge-" in p.name]
    pending = sorted(p.scheduled - p.created for p in team if p.scheduled is not None)
    unschedulable = [p for p in [*team, *argo_pods] if p.unschedulable]
    return {
        "workflow": name,
        "phase": phase or status.get("phase"),
        "submit_to_finished_s": round(completed_at - submitted_at, 3),
        "argo_submit_cli_s": round(submit_returned - submitted_at, 3),
        "status_started_to_finished_s": (
            round(f - s, 1)
            if (s := _when(status.get("startedAt"))) is not None
            and (f := _when(status.get("finishedAt"))) is not None
            else None
        ),
        "bridge_nodes": len(bridge),
        "bridge_nodes_succeeded": sum(1 for n in bridge if n.get("phase") == "Succeeded"),
        "discover_node_s": discover_s,
        "exit_handler_node_s": exit_s,
        "wave_spans_nodes_s": [_span(per_wave[w]) for w in sorted(per_wave)],
        "wave_spans_team_pods_s": [_span(team_wave[w]) for w in sorted(team_wave)],
        "team_pods": len(team),
        "argo_pods": len(argo_pods),
        "team_pod_pending_median_s": round(common.median(pending), 3),
        "team_pod_pending_max_s": round(max(pending), 3) if pending else None,
        "pods_refused_by_scheduler": len(unschedulable),
        "scheduler_messages": _refusals(unschedulable),
        "peak_pods_running": _peak_concurrency([*team, *argo_pods]),
        "peak_team_pods_running": _peak_concurrency(team),
        "cpu_request_bridge_pod_m": max((p.cpu_request_m for p in bridge_pods), default=0),
        "cpu_request_team_pod_m": max((p.cpu_request_m for p in team), default=0),
        "cpu": cpu,
    }


def _local_fanout(
    bench: ArgoBench, pods: PodClock, *, tenant: str, parallelism: int, workdir: Path
) -> dict[str, Any]:
    """``tenantctl run --engine local`` on the same cluster, its own process."""
    batch = f"bench-local-{uuid.uuid4().hex[:10]}"
    argv = [
        TENANTCTL, "run", FANOUT_OPERATION, "--engine", "local", "--tenant-env-id", tenant,
        "--batch-operation-id", batch, "--parallelism", str(parallelism), "--logs", "none",
        "--output", "json", "--kubeconfig", str(bench.plane.kubeconfig),
    ]  # fmt: skip
    env = common.child_env()
    env.pop("TENANTCTL_LAUNCHER", None)  # the product's default launcher
    meter = CpuMeter(bench.plane.root)
    meter.begin()
    out_path, err_path = workdir / "local.out", workdir / "local.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        launch = common.MeasuredLaunch(
            argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env
        )
        code, wall, rss = launch.wait(timeout=1800)
    cpu = meter.end()
    text = out_path.read_text(errors="replace")
    try:
        result = json.loads(text[text.find("{") :]) if "{" in text else {}
    except ValueError:
        result = {}
    jobs = result.get("jobs") or []
    started, ended = _when(result.get("startedAt")), _when(result.get("finishedAt"))
    team = [p for p in pods.snapshot() if p.labels.get(f"{PREFIX}/batch") == batch]
    pending = sorted(p.scheduled - p.created for p in team if p.scheduled is not None)
    return {
        "exit": code,
        "engine_s": round(ended - started, 3) if started and ended else None,
        "process_wall_s": round(wall, 3),
        "process_peak_rss_mb": round(rss, 1),
        "process_cpu_s": round(launch.cpu, 2),
        "jobs": len(jobs),
        "jobs_succeeded": sum(1 for j in jobs if j.get("status") == "succeeded"),
        "team_pods": len(team),
        "team_pod_pending_median_s": round(common.median(pending), 3),
        "team_pod_pending_max_s": round(max(pending), 3) if pending else None,
        "pods_refused_by_scheduler": sum(1 for p in team if p.unschedulable),
        "scheduler_messages": _refusals([p for p in team if p.unschedulable]),
        "peak_team_pods_running": _peak_concurrency(team),
        "cpu": cpu,
        "stderr_tail": err_path.read_text(errors="replace")[-800:] if code else "",
    }


def run_fanout(*, quick: bool, workdir: Path, emulator_host: str | None = None) -> Report:
    from workflows.settings import WorkflowSettings

    namespaces_n, per_ns, waves, requested = (2, 2, 2, 2) if quick else (20, 10, 4, 50)
    level = WorkflowSettings().parallelism_level(requested)
    total = namespaces_n * per_ns
    per_wave = total // waves
    report = Report("argo-fanout", "fan-out through the real Argo controller vs ideal and local",
                    quick)  # fmt: skip
    report.parameters = {
        "jobs": total,
        "namespaces": namespaces_n,
        "waves": waves,
        "jobs_per_wave": per_wave,
        "parallelism_requested": requested,
        "parallelism": level,
        "jobCommand": "sleep 1",
        "argo": "argo submit --from workflowtemplate/tenant-lifecycle -p parallelism="
        f"{level}, real workflow-controller v4.1.4 on the test bed's control plane",
        "local": f"tenantctl run --engine local --parallelism {level} (default launcher), "
        "same cluster, same Jobs",
        "ideal": "waves x ceil(jobs_per_wave / parallelism) x (1 s + median create -> "
        "Succeeded of a busybox `true` pod on the same cluster)",
        "requeue_tried": f"DEFAULT_REQUEUE_TIME={REQUEUE_TRIED} on the controller "
        f"(default {REQUEUE_DEFAULT}), a second Argo run",
        "podGC": f"the template's deleteDelayDuration 10m patched to {POD_GC_DELAY} in the "
        "benchmark's cluster (each Argo pod holds a 152 MB argoexec copy on this disk)",
    }
    if level != requested:
        report.notes.append(
            f"parallelism {requested} (the issue's) rounds down to {level}: the template's "
            f"levels are {list(WorkflowSettings().parallelism_levels)} (Argo cannot take a "
            f"template's parallelism from a parameter); both engines run with {level}"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    teams = [f"fan-{k:02d}" for k in range(namespaces_n)]
    jobs = fanout_jobs(teams, per_ns, waves)
    waves_of = {
        f"{j['metadata']['namespace']}/{j['metadata']['name']}":
            int(j["metadata"]["annotations"][f"{PREFIX}/wave"])
        for j in jobs
    }  # fmt: skip
    with argo_cluster(workdir, emulator_host=emulator_host) as bench:
        keep = set(teams) | {NAMESPACE, "bench-podstart"}
        pods = PodClock(bench.plane, lambda ns: ns in keep)
        workflows = WorkflowClock(bench.plane, bench.disk)
        pods.watch.start()
        workflows.watch.start()
        try:
            starts = pod_start_seconds(bench, pods, 2 if quick else 5)
            start_s = common.median(starts)
            bench.add_teams(teams)
            bench.apply(jobs)
            warm = _warm_up(bench, workflows, "t-warm-0")
            timeout = 600 if quick else 1800
            _say(f"Argo fan-out: {total} jobs, parallelism {level}")
            argo_default = _argo_fanout(
                bench, pods, workflows, tenant="t-fanout-argo", parallelism=level,
                waves_of=waves_of, timeout=timeout,
            )  # fmt: skip
            _say(f"  {argo_default['submit_to_finished_s']:.1f} s; local engine next")
            local = _local_fanout(
                bench, pods, tenant="t-fanout-local", parallelism=level, workdir=workdir
            )
            _say(f"  {local['engine_s']} s; Argo with DEFAULT_REQUEUE_TIME={REQUEUE_TRIED} next")
            bench.controller_env("DEFAULT_REQUEUE_TIME", REQUEUE_TRIED)
            warm_requeue = _warm_up(bench, workflows, "t-warm-1")
            argo_requeue = _argo_fanout(
                bench, pods, workflows, tenant="t-fanout-argo-requeue", parallelism=level,
                waves_of=waves_of, timeout=timeout,
            )  # fmt: skip
            node_cpu_m = _node_cpu_m(bench.plane)
        finally:
            pods.watch.stop()
            workflows.watch.stop()
        setup_s = bench.setup_s
        lock = bench.lock
    disk = bench.disk.figures()

    rounds = waves * math.ceil(per_wave / level)
    ideal = rounds * (1.0 + start_s)
    argo_s = argo_default["submit_to_finished_s"]
    requeue_s = argo_requeue["submit_to_finished_s"]
    local_s = local["engine_s"] if local["engine_s"] is not None else local["process_wall_s"]
    per_job_m = argo_default["cpu_request_bridge_pod_m"] + argo_default["cpu_request_team_pod_m"]
    report.figures = {
        "argo_submit_to_finished_s": argo_s,
        "argo_phase": argo_default["phase"],
        "argo_jobs_succeeded": argo_default["bridge_nodes_succeeded"],
        "argo_requeue_2s_submit_to_finished_s": requeue_s,
        "argo_requeue_2s_phase": argo_requeue["phase"],
        "argo_requeue_2s_jobs_succeeded": argo_requeue["bridge_nodes_succeeded"],
        "local_engine_s": local_s,
        "local_process_wall_s": local["process_wall_s"],
        "local_jobs_succeeded": local["jobs_succeeded"],
        "argo": argo_default,
        "argo_requeue_2s": argo_requeue,
        "local": local,
    }
    report.baselines = {
        "ideal_s": round(ideal, 3),
        "ideal_rounds": rounds,
        "pod_start_true_create_to_succeeded_median_s": round(start_s, 3),
        "pod_start_samples_s": starts,
        "node_allocatable_cpu_m": node_cpu_m,
        "cpu_request_per_job_m_bridge_plus_team_pod": per_job_m,
        "jobs_the_node_fits_at_once_by_cpu_requests": node_cpu_m // per_job_m
        if per_job_m
        else None,
        "warm_up_workflow_s": [warm, warm_requeue],
        "disk": disk,
        "setup_s_not_measured": setup_s,
        "argo_lock": lock,
    }
    report.ratios = {
        "argo_over_ideal": common.ratio(argo_s, ideal),
        "argo_requeue_2s_over_ideal": common.ratio(requeue_s, ideal),
        "local_over_ideal": common.ratio(local_s, ideal),
        "argo_over_local": common.ratio(argo_s, local_s),
        "argo_requeue_2s_over_local": common.ratio(requeue_s, local_s),
        "argo_over_argo_requeue_2s": common.ratio(argo_s, requeue_s),
    }
    report.target("Argo fan-out / ideal (controller defaults)", report.ratios["argo_over_ideal"],
                  "<=", 2)  # fmt: skip
    report.target("Argo fan-out / ideal (DEFAULT_REQUEUE_TIME=2s)",
                  report.ratios["argo_requeue_2s_over_ideal"], "<=", 2)  # fmt: skip
    for label, run in (("Argo", argo_default), ("Argo requeue 2s", argo_requeue)):
        if run["bridge_nodes_succeeded"] != total or run["phase"] != "Succeeded":
            report.notes.append(
                f"{label}: {run['bridge_nodes_succeeded']} of {total} jobs succeeded, "
                f"phase {run['phase']}"
            )
    if local["jobs_succeeded"] != total:
        report.notes.append(
            f"local engine: {local['jobs_succeeded']} of {total} jobs succeeded (exit "
            f"{local['exit']}): {local['stderr_tail']}"
        )
    report.notes.append(
        "submit_to_finished: from starting `argo submit` (its CLI's start included: "
        f"{argo_default['argo_submit_cli_s']:.2f} s) to the watch seeing the controller's "
        "completed label; it includes the discover and exit-handler pods, which the ideal "
        "does not; local_engine_s is the engine's own startedAt -> finishedAt (discovery "
        "included, interpreter start not)"
    )
    report.notes.append(
        "pods are processes of the test bed's node agent on this machine (2 cores shared with "
        "the control plane, Argo and other sessions); the node advertises its cores as "
        "allocatable CPU and the scheduler places pods by their CPU requests"
    )
    return report


# -- 2. events ----------------------------------------------------------------------------------


def _request_event(batch: str, tenant: str) -> dict[str, Any]:
    from .events import request_event

    event = request_event(batch, tenant)
    event["data"]["operation"] = EMPTY_OPERATION
    return event


def _publish(topic: str, events: Sequence[dict[str, Any]]) -> float:
    from google.cloud import pubsub_v1

    from orchestrator.pubsub import _close_channel

    publisher = pubsub_v1.PublisherClient()
    path = f"projects/{PROJECT}/topics/{topic}"
    started = time.monotonic()
    try:
        futures = [
            publisher.publish(
                path,
                json.dumps(event).encode(),
                **{"ce-id": str(event["id"]), "ce-type": str(event["type"])},
            )
            for event in events
        ]
        for future in futures:
            future.result(timeout=120)
    finally:
        publisher.stop()
        _close_channel(publisher)
    return time.monotonic() - started


def _pull_all(subscription: str, *, quiet_s: float = 3.0, timeout: float = 60) -> list[Any]:
    """Every message on ``subscription`` until none came for ``quiet_s`` (acked)."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(PROJECT, subscription)
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - last < quiet_s:
            try:
                reply = subscriber.pull(request={"subscription": path, "max_messages": 100},
                                        timeout=5)  # fmt: skip
            except gexc.DeadlineExceeded:
                continue
            if reply.received_messages:
                last = time.monotonic()
                subscriber.acknowledge(request={"subscription": path, "ack_ids": [
                    m.ack_id for m in reply.received_messages]})  # fmt: skip
                found.extend(m.message for m in reply.received_messages)
            else:
                time.sleep(0.3)
    finally:
        subscriber.close()
    return found


class _RawCreator:
    """POSTs Workflows one after another on one keep-alive HTTPS connection (admin cert)."""

    def __init__(self, plane: Any) -> None:
        self.conn = http.client.HTTPSConnection(
            "127.0.0.1", plane.port, context=plane.ssl_context(), timeout=60
        )

    def create(self, body: dict[str, Any]) -> int:
        self.conn.request(
            "POST",
            f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/workflows",
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        reply = self.conn.getresponse()
        reply.read()
        return reply.status

    def close(self) -> None:
        self.conn.close()


def _rates(spans: dict[str, tuple[float, float | None]], start: float) -> dict[str, Any]:
    """Rates of a batch of Workflows: name -> (first seen, completed or None)."""
    created = [c for c, _ in spans.values()]
    completed = [d for _, d in spans.values() if d is not None]
    n = len(created)
    first, last = (min(created), max(created)) if created else (start, start)
    done = max(completed) if completed else None
    return {
        "workflows": n,
        "completed": len(completed),
        "created_per_s_first_to_last": round((n - 1) / (last - first), 2) if last > first else None,
        "created_per_s_from_start": round(n / (last - start), 2) if last > start else None,
        "finished_per_s_from_first_created": (
            round(len(completed) / (done - first), 3) if done and done > first else None
        ),
        "finished_per_s_from_start": (
            round(len(completed) / (done - start), 3) if done and done > start else None
        ),
        "start_to_first_created_s": round(first - start, 3),
        "start_to_last_created_s": round(last - start, 3),
        "start_to_last_finished_s": round(done - start, 3) if done else None,
        "workflow_created_to_completed_median_s": round(
            common.median([d - c for c, d in spans.values() if d is not None]), 3
        ),
        "workflow_created_to_completed_max_s": round(
            max((d - c for c, d in spans.values() if d is not None), default=0.0), 3
        ),
    }


def run_events(*, quick: bool, workdir: Path, emulator_host: str | None = None) -> Report:
    from orchestrator.argo.submit import build_workflow
    from orchestrator.events import LifecycleRequest
    from orchestrator.pubsub import ensure_topology

    n = 3 if quick else 30
    copies = 2
    report = Report("argo-events", "request events -> Workflows through tenantctl listen on the "
                    "real Argo controller vs a raw create loop", quick)  # fmt: skip
    report.parameters = {
        "requests": n,
        "copies_published_per_request": copies,
        "operation": f"{EMPTY_OPERATION} (no Job takes part: an empty plan; each Workflow runs "
        "its discover pod and its exit handler's pod)",
        "tenants": "distinct (the template's per-tenant mutex never waits)",
        "consumer": "tenantctl listen --engine argo (defaults: 8 handler threads, track on), "
        "its own process, the cluster's admin kubeconfig, Pub/Sub emulator",
        "baseline": "the same Workflow objects (orchestrator.argo.submit.build_workflow), POSTed "
        "one after another on one keep-alive HTTPS connection, same apiserver and controller",
        "podGC": f"the template's deleteDelayDuration 10m patched to {POD_GC_DELAY} in the "
        "benchmark's cluster (each Argo pod holds a 152 MB argoexec copy on this disk)",
    }
    tag = uuid.uuid4().hex[:8]
    topic, dead = f"req-{tag}", f"dead-{tag}"
    sub = f"req-{tag}-listen"
    ours_ids = [f"bench-ev-{tag}-{i:03d}" for i in range(n)]
    raw_ids = [f"bench-raw-{tag}-{i:03d}" for i in range(n)]
    workdir.mkdir(parents=True, exist_ok=True)
    with argo_cluster(workdir, emulator_host=emulator_host) as bench:
        ensure_topology(PROJECT, topics=[topic, dead], subscriptions={sub: topic},
                        ack_deadline_seconds=60)  # fmt: skip
        pods = PodClock(bench.plane, lambda ns: ns == NAMESPACE)
        workflows = WorkflowClock(bench.plane, bench.disk)
        pods.watch.start()
        workflows.watch.start()
        batch_label = f"{PREFIX}/batch"
        try:
            warm = _warm_up(bench, workflows, "t-warm-events")
            events = [_request_event(b, f"t-ev-{i:03d}") for i, b in enumerate(ours_ids)]
            publish_s = _publish(topic, events * copies)
            log_path = workdir / "listen.log"
            argv = [
                TENANTCTL, "listen", "--project", PROJECT, "--subscription", sub,
                "--results-topic", bench.results_topic, "--dead-letter-topic", dead,
                "--kubeconfig", str(bench.plane.kubeconfig), "--metrics-port", "-1",
            ]  # fmt: skip
            env = common.child_env(PUBSUB_EMULATOR_HOST=bench.emulator_host)
            meter = CpuMeter(bench.plane.root)
            meter.begin()
            with log_path.open("wb") as log:
                launch = common.MeasuredLaunch(
                    argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, start_new_session=True,
                )  # fmt: skip
                listen_start = time.time()
                ours_set = set(ours_ids)
                ok = workflows.wait(lambda: workflows.by_label(batch_label, ours_set), n,
                                    timeout=120 if quick else 1200)  # fmt: skip
                ours_cpu = meter.end()
                time.sleep(5.0)  # the tracker publishes results after the completed label
                launch.process.send_signal(signal.SIGTERM)
                code, _wall, rss = launch.wait(timeout=90)
            if not ok:
                raise RuntimeError(f"not all {n} Workflows from tenantctl listen finished")
            with workflows.lock:
                names = workflows.by_label(batch_label, ours_set)
                ours = _rates({x: (workflows.created[x], workflows.completed.get(x))
                               for x in names}, listen_start)  # fmt: skip
            # The raw loop: the same Workflows (other batch ids), straight to the apiserver.
            requests = [LifecycleRequest(batch_operation_id=b, tenant_env_id=f"t-raw-{i:03d}",
                                         operation=EMPTY_OPERATION, region="eu-west-1",
                                         environment={"applications": ["catalog", "search"]},
                                         source="tenant-manager")
                        for i, b in enumerate(raw_ids)]  # fmt: skip
            bodies = [build_workflow(r) for r in requests]
            meter.begin()
            raw_start = time.time()
            creator = _RawCreator(bench.plane)
            try:
                statuses = [creator.create(body) for body in bodies]
            finally:
                creator.close()
            raw_loop_s = time.time() - raw_start
            raw_set = set(raw_ids)
            ok = workflows.wait(lambda: workflows.by_label(batch_label, raw_set), n,
                                timeout=120 if quick else 1200)  # fmt: skip
            raw_cpu = meter.end()
            if not ok:
                raise RuntimeError(f"not all {n} raw Workflows finished")
            with workflows.lock:
                names_raw = workflows.by_label(batch_label, raw_set)
                raw = _rates({x: (workflows.created[x], workflows.completed.get(x))
                              for x in names_raw}, raw_start)  # fmt: skip
                phases = {x: workflows.phase.get(x, "") for x in names | names_raw}
            listed = (
                bench.plane.request(
                    "GET", f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/workflows"
                ).get("items")
                or []
            )
            stored_batches = [
                ((w.get("metadata") or {}).get("labels") or {}).get(batch_label) for w in listed
            ]
            results = _pull_all(bench.results_subscription)
        finally:
            pods.watch.stop()
            workflows.watch.stop()
        seen = pods.snapshot()
        wf_pods = [p for p in seen if "workflows.argoproj.io/workflow" in p.labels]
        others = [p for p in seen if "workflows.argoproj.io/workflow" not in p.labels]
        setup_s = bench.setup_s
        lock = bench.lock
    disk = bench.disk.figures()

    text = log_path.read_text(errors="replace")
    summary: dict[str, Any] = {}
    for line in text.splitlines():
        if line.startswith("stopped: {"):
            with contextlib.suppress(ValueError):
                summary = json.loads(line[len("stopped: ") :])
    ours_stored = [b for b in stored_batches if b in ours_set]
    raw_stored = [b for b in stored_batches if b in raw_set]
    duplicates = (len(ours_stored) - len(set(ours_stored))) + abs(len(set(ours_stored)) - n)
    result_ids = [str(json.loads(m.data).get("id")) for m in results]
    ours_results = [r for r in result_ids if r in ours_set]
    raw_results = [r for r in result_ids if r in raw_set]
    unsched = [p for p in wf_pods if p.unschedulable]
    report.figures = {
        "listen": ours,
        "messages_published": n * copies,
        "workflows_stored_for_the_requests": len(ours_stored),
        "unique_batches_stored": len(set(ours_stored)),
        "duplicate_workflows": duplicates,
        "listen_summary": summary,
        "listen_exit_code": code,
        "listen_peak_rss_mb": round(rss, 1),
        "listen_cpu_s": round(launch.cpu, 2),
        "phases": sorted(set(phases.values())),
        "result_events_for_the_requests": len(ours_results),
        "unique_result_events_for_the_requests": len(set(ours_results)),
        "cpu_listen_phase": ours_cpu,
        "workflow_pods": len(wf_pods),
        "workflow_pods_refused_by_scheduler": len(unsched),
        "scheduler_messages": _refusals(unsched),
        "other_pods_in_namespace": [f"{p.name}: {p.phase or 'Pending'}" for p in others][:5],
        "other_pods_refused_by_scheduler": _refusals([p for p in others if p.unschedulable]),
        "peak_workflow_pods_running": _peak_concurrency(wf_pods),
    }
    report.baselines = {
        "raw": raw,
        "raw_create_loop_s": round(raw_loop_s, 3),
        "raw_create_statuses": sorted(set(statuses)),
        "raw_workflows_stored": len(raw_stored),
        "raw_result_events": len(raw_results),
        "cpu_raw_phase": raw_cpu,
        "publish_s_not_measured": round(publish_s, 2),
        "warm_up_workflow_s": warm,
        "disk": disk,
        "setup_s_not_measured": setup_s,
        "argo_lock": lock,
    }
    report.ratios = {
        "created_per_s_ours_over_raw": common.ratio(
            ours["created_per_s_from_start"] or 0, raw["created_per_s_from_start"] or 0
        ),
        "finished_per_s_ours_over_raw": common.ratio(
            ours["finished_per_s_from_start"] or 0, raw["finished_per_s_from_start"] or 0
        ),
        "last_finished_raw_over_ours": common.ratio(
            raw["start_to_last_finished_s"] or 0, ours["start_to_last_finished_s"] or 0
        ),
    }
    report.target("duplicate Workflows", float(duplicates), "<=", 0)
    if sorted(set(phases.values())) != ["Succeeded"]:
        report.notes.append(f"Workflow phases: {sorted(set(phases.values()))}")
    report.notes.append(
        "_from_start rates count from the listener's process start (interpreter, imports, "
        "Pub/Sub and Kubernetes clients included) or from the raw loop's first POST; "
        "_first_to_last from the first Workflow created to the last; finished = the "
        "controller's completed label seen by the watch (exit handler done)"
    )
    return report
