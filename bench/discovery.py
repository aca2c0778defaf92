"""Benchmark 1: discovery at scale, on the sandbox and on the real kube-apiserver.

Each backend holds N namespaces (all opted in) of 30 Jobs each: 5 lifecycle Jobs (labelled,
annotated, suspended), one of which is annotated for the measured operation, and 25 ordinary
Jobs (not labelled). Full size: 2,000 namespaces, 60,000 Jobs, 10,000 lifecycle Jobs, 2,000 for
the operation.

Measured, each as its own process against the same backend over its HTTPS listener:

(a) ours: ``python -m bridge discover`` (the real code path, plan written to a file);
(b) naive: every Job, paginated, annotations filtered in the client (``bench.workers list``);
(c) floor: one paginated, label-selected LIST, raw JSON (``bench.workers list --label-selector``).

The backends, one after the other in the same run (``BENCH_DISCOVERY_BACKENDS`` picks one):

* **sandbox** (``discovery.json``): Jobs go straight into the sandbox's store (one defaulted
  prototype per kind of Job, copied with fresh metadata), which is what makes 60,000 Jobs take
  seconds; its CPU, bytes and requests are counted inside this process.
* **real** (``discovery-real.json``): the test bed's etcd, kube-apiserver and
  kube-controller-manager (``testbed.ControlPlane``, no node agent), seeded through the API with
  every Job ``suspend: true`` (the real Job controller would otherwise start pods); server CPU,
  bytes and requests come from /proc and the apiserver's /metrics (see :mod:`bench.real`).

Seeding is never measured. (a)'s peak RSS is measured twice -- with only the lifecycle Jobs
seeded, and again with all of them -- to show it does not depend on Jobs that do not match.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from . import common, real
from .common import Report

OPERATION = "lifecycle.suspend"
PREFIX = "tenant-lifecycle.dev"
SELECTOR = f"{PREFIX}/enabled=true"
OTHER_OPERATIONS = (
    "lifecycle.upsert,lifecycle.decommission",
    "lifecycle.backup",
    "lifecycle.restore,lifecycle.migrate-in",
    "lifecycle.migrate-out",
)
JOBS_PER_NAMESPACE = 30
LIFECYCLE_PER_NAMESPACE = 5


def _container(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": f"registry.example.com/team/{name}:1.4.2",
        "command": ["python3", "-m", name.replace("-", "_")],
        "args": ["--tenant", "$(LIFECYCLE_TENANT_ENV_ID)"],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "DATABASE_HOST", "value": "postgres.team.svc.cluster.local"},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
    }


def lifecycle_job(operations: str, wave: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "proto",
            "labels": {f"{PREFIX}/enabled": "true", "app.kubernetes.io/part-of": "team"},
            "annotations": {f"{PREFIX}/operations": operations, f"{PREFIX}/wave": str(wave)},
        },
        "spec": {
            "suspend": True,
            "backoffLimit": 1,
            "activeDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "lifecycle"}},
                "spec": {"restartPolicy": "Never", "containers": [_container("lifecycle-step")]},
            },
        },
    }


def ordinary_job(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "proto",
            "labels": {"app.kubernetes.io/name": "report", "app.kubernetes.io/part-of": "team"},
            "annotations": {"example.com/owner": "team", "example.com/run": str(index)},
        },
        "spec": {
            "backoffLimit": 3,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "report"}},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [_container("nightly-report")],
                },
            },
        },
    }


class Seeder:
    """Puts Jobs into the sandbox's store directly (the API's create path is for clients)."""

    def __init__(self, sb: Any) -> None:
        self.sb = sb
        self.jobs = sb.resource("batch", "v1", "jobs")
        self.namespaces = sb.resource("", "v1", "namespaces")
        self._protos: dict[str, dict[str, Any]] = {}

    def namespace(self, name: str) -> None:
        self.sb.api.create(
            self.namespaces,
            "",
            {"metadata": {"name": name, "labels": {f"{PREFIX}/enabled": "true"}}},
        )

    def _proto(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        proto = self._protos.get(key)
        if proto is None:
            # The API's own defaulting and validation, once: every copy is a valid stored Job.
            proto = self.sb.api.create(self.jobs, "default", body, dry_run=True)
            self._protos[key] = proto
        return proto

    def job(self, namespace: str, name: str, key: str, body: dict[str, Any]) -> None:
        proto = self._proto(key, body)
        meta = dict(proto["metadata"])
        meta.update(
            name=name,
            namespace=namespace,
            uid=str(uuid.uuid4()),
            labels=dict(meta.get("labels") or {}, **{"job-name": name}),
        )
        store = self.sb.store
        rv = store.next_rv()
        meta["resourceVersion"] = str(rv)
        obj = {
            **proto,
            "metadata": meta,
        }  # spec and status are shared: stored objects are immutable
        store.put(self.jobs.key, obj, rv=rv, event="ADDED")


def _namespaces(n: int) -> list[str]:
    return [f"team-{i:04d}" for i in range(n)]


def seed_lifecycle(seeder: Seeder, namespaces: list[str]) -> None:
    for ns in namespaces:
        seeder.namespace(ns)
        for j in range(LIFECYCLE_PER_NAMESPACE):
            if j == 0:
                ops, key = f"{OPERATION},lifecycle.resume", "measured"
            else:
                ops, key = OTHER_OPERATIONS[j - 1], f"other-{j}"
            seeder.job(ns, f"lifecycle-{j}", key, lifecycle_job(ops, wave=j % 3))


def seed_ordinary(seeder: Seeder, namespaces: list[str]) -> None:
    for ns in namespaces:
        for j in range(JOBS_PER_NAMESPACE - LIFECYCLE_PER_NAMESPACE):
            seeder.job(ns, f"report-{j:02d}", f"ordinary-{j % 5}", ordinary_job(j % 5))


# -- the real apiserver: the same Jobs, through its API ------------------------------------------

Batch = list[real.Create]


def _real_job(namespace: str, name: str, body: dict[str, Any]) -> real.Create:
    doc: dict[str, Any] = json.loads(json.dumps(body))
    doc["metadata"]["name"] = name
    # Every Job suspended: the real Job controller would otherwise start 50,000 pods. The
    # ordinary Jobs stay without the lifecycle label, so discovery still never reads them.
    doc["spec"]["suspend"] = True
    # Its status as the Job controller leaves a suspended Job, written right after the create:
    # the controller writes at most 20 requests/s (its client's QPS), a status and an Event per
    # Job, ~100 minutes for 60,000. With the status in place it has nothing to write, as in a
    # cluster that has held these Jobs for a while, and the measurements start on a quiet one.
    return f"/apis/batch/v1/namespaces/{namespace}/jobs", doc, real.suspended_job_status()


def real_namespaces(namespaces: list[str]) -> list[Batch]:
    labels = {f"{PREFIX}/enabled": "true"}
    return [
        [("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": ns, "labels": labels}}, None)]
        for ns in namespaces
    ]  # fmt: skip


def real_lifecycle_jobs(namespaces: list[str]) -> list[Batch]:
    protos = [lifecycle_job(f"{OPERATION},lifecycle.resume", wave=0)]
    protos += [lifecycle_job(OTHER_OPERATIONS[j - 1], wave=j % 3) for j in range(1, 5)]
    return [
        [_real_job(ns, f"lifecycle-{j}", protos[j]) for j in range(LIFECYCLE_PER_NAMESPACE)]
        for ns in namespaces
    ]


def real_ordinary_jobs(namespaces: list[str]) -> list[Batch]:
    protos = [ordinary_job(k) for k in range(5)]
    count = JOBS_PER_NAMESPACE - LIFECYCLE_PER_NAMESPACE
    return [
        [_real_job(ns, f"report-{j:02d}", protos[j % 5]) for j in range(count)] for ns in namespaces
    ]


# -- measuring one client run, on either backend -------------------------------------------------


class Meter(Protocol):
    """What a backend tells about one client run: bytes and requests it served, its CPU."""

    name: str

    @property
    def kubeconfig(self) -> str: ...

    def before(self) -> Any: ...

    def after(self, start: Any) -> real.Delta: ...


class SandboxMeter:
    """The sandbox runs in this process (which otherwise only waits): its CPU time over a run is
    the server's; bytes and requests come from the counter on its handlers' writer."""

    name = "sandbox"

    def __init__(self, sb: Any) -> None:
        self._kubeconfig = str(sb.kubeconfig_path())  # starts the HTTPS listener
        self.counter = common.byte_counter()

    @property
    def kubeconfig(self) -> str:
        return self._kubeconfig

    def before(self) -> tuple[tuple[int, int], float]:
        return self.counter.snapshot(), time.process_time()

    def after(self, start: tuple[tuple[int, int], float]) -> real.Delta:
        cpu = round(time.process_time() - start[1], 3)
        total, requests = self.counter.snapshot()
        return real.Delta(total - start[0][0], requests - start[0][1], cpu, {"sandbox": cpu})


LOAD: list[float] = []  # the 1-minute load average as each measured run started


@dataclass
class Row:
    """One measured client run: the process, what the server sent it, what the server spent."""

    run: common.Measured
    bytes: int
    requests: int
    server_cpu: float
    out: dict[str, Any]
    cpu: dict[str, float] = field(default_factory=dict)


def _measure(meter: Meter, argv: list[str]) -> tuple[common.Measured, real.Delta]:
    LOAD.append(round(os.getloadavg()[0], 2))
    start = meter.before()
    run = common.run_measured(argv, env=common.child_env())
    delta = meter.after(start)
    if run.returncode != 0:
        raise RuntimeError(
            f"{meter.name}: {argv[2:4]} failed ({run.returncode}): {run.stderr[-2000:]}"
        )
    return run, delta


def _discover(meter: Meter, workdir: Path) -> Row:
    """(a): the real ``python -m bridge discover``."""
    plan_path = workdir / f"plan-{uuid.uuid4().hex[:6]}.json"
    argv = [common.PYTHON, "-m", "bridge", "discover", "--tenant-env-id", "bench"]
    argv += ["--kubeconfig", meter.kubeconfig, "--operation", OPERATION]
    argv += ["--output", str(plan_path)]
    run, d = _measure(meter, argv)
    plan = json.loads(plan_path.read_text())
    plan_path.unlink()
    planned = sum(len(w["jobs"]) for w in plan["waves"])
    return Row(run, d.bytes, d.requests, d.server_cpu, {"planned": planned}, d.cpu)


def _list(meter: Meter, *, selector: str) -> Row:
    argv = [common.PYTHON, "-m", "bench.workers", "list", "--kubeconfig", meter.kubeconfig]
    argv += ["--operation", OPERATION]
    if selector:
        argv += ["--label-selector", selector]
    run, d = _measure(meter, argv)
    return Row(run, d.bytes, d.requests, d.server_cpu, json.loads(run.stdout), d.cpu)


@dataclass
class Runs:
    """The rows of one backend: (a) ours (and with only the lifecycle Jobs), (b), (c)."""

    ours: list[Row]
    floor: list[Row]
    naive: Row
    small: Row | None


def _runs(meter: Meter, workdir: Path, *, repeats: int, quick: bool, seed_ordinary: Any) -> Runs:
    # Quick (smoke) mode skips the extra variant (lifecycle Jobs only): it only means
    # something at scale.
    small = None if quick else _discover(meter, workdir)
    seed_ordinary()
    ours: list[Row] = []
    floor: list[Row] = []
    for _ in range(repeats):  # interleaved: load from other processes drifts alike for all
        ours.append(_discover(meter, workdir))
        floor.append(_list(meter, selector=SELECTOR))
    naive = _list(meter, selector="")
    return Runs(ours, floor, naive, small)


# -- reports -------------------------------------------------------------------------------------


@dataclass
class BackendReport(Report):
    """A report that names its backend; the sandbox's carries the real backend's as a companion,
    printed after it and written beside it (``discovery-real.json``)."""

    backend: str = "sandbox"
    companions: list[Report] = field(default_factory=list)
    finished: float | None = None  # when its backend's part ended (not when it is written)

    def to_json(self, machine: Mapping[str, Any]) -> dict[str, Any]:
        data = super().to_json(machine)
        if self.finished is not None:
            data["durationSeconds"] = round(self.finished - self.started, 1)
        return {"benchmark": data.pop("benchmark"), "backend": self.backend, **data}

    def print(self, out: IO[str] = sys.stdout) -> None:
        super().print(out)
        for companion in self.companions:
            companion.print(out)

    def write(self, directory: Path, machine: Mapping[str, Any]) -> Path:
        path = super().write(directory, machine)
        for companion in self.companions:
            print(f"  -> {companion.write(directory, machine)}", flush=True)
        return path


def _parameters(n_ns: int, repeats: int) -> dict[str, Any]:
    return {
        "namespaces": n_ns,
        "namespacesOptedIn": n_ns,
        "jobs": n_ns * JOBS_PER_NAMESPACE,
        "lifecycleJobs": n_ns * LIFECYCLE_PER_NAMESPACE,
        "jobsForOperation": n_ns,
        "operation": OPERATION,
        "pageSize": 500,
        "repeats": repeats,
        "naive": "every Job, paginated (limit 500, as kubectl does), raw JSON, filtered in the "
        "client; no model objects (the official client's models would only make it slower)",
    }


def _fill(report: Report, runs: Runs, *, server: str, n_ns: int) -> None:
    """Figures, baselines, ratios and targets of one backend; ``server`` names its CPU keys."""
    ours, floor, naive, small = runs.ours, runs.floor, runs.naive, runs.small

    def med(rows: list[Row]) -> float:
        return round(common.median([r.run.wall for r in rows]), 3)

    def cpu(rows: list[Row]) -> float:
        return common.median([r.run.cpu + r.server_cpu for r in rows])

    def med_cpu(rows: list[Row]) -> float:
        return round(common.median([r.server_cpu for r in rows]), 3)

    a_wall, c_wall, b_wall = med(ours), med(floor), round(naive.run.wall, 3)
    small_rss = round(small.run.max_rss_mb, 1) if small else None
    a_rss = round(max(r.run.max_rss_mb for r in ours), 1)
    report.figures = {
        "ours_wall_s": a_wall,
        "ours_peak_rss_mb": a_rss,
        "ours_bytes_received_mb": common.mb(ours[-1].bytes),
        "ours_requests": ours[-1].requests,
        f"ours_{server}_cpu_s": med_cpu(ours),
        "ours_client_cpu_s": round(common.median([r.run.cpu for r in ours]), 3),
        "ours_jobs_planned": ours[-1].out["planned"],
        "ours_peak_rss_mb_lifecycle_jobs_only": small_rss,
        "ours_wall_s_all_runs": [round(r.run.wall, 3) for r in ours],
    }
    report.baselines = {
        "naive_wall_s": b_wall,
        "naive_peak_rss_mb": round(naive.run.max_rss_mb, 1),
        "naive_bytes_received_mb": common.mb(naive.bytes),
        "naive_requests": naive.requests,
        f"naive_{server}_cpu_s": round(naive.server_cpu, 3),
        "naive_client_cpu_s": round(naive.run.cpu, 3),
        "naive_jobs_listed": naive.out["items"],
        "naive_jobs_matched": naive.out["matched"],
        "floor_wall_s": c_wall,
        "floor_peak_rss_mb": round(max(r.run.max_rss_mb for r in floor), 1),
        "floor_bytes_received_mb": common.mb(floor[-1].bytes),
        "floor_requests": floor[-1].requests,
        f"floor_{server}_cpu_s": med_cpu(floor),
        "floor_client_cpu_s": round(common.median([r.run.cpu for r in floor]), 3),
        "floor_list_only_s": round(common.median([r.out["seconds"] for r in floor]), 3),
        "floor_jobs_listed": floor[-1].out["items"],
        "floor_wall_s_all_runs": [round(r.run.wall, 3) for r in floor],
    }
    report.ratios = {
        "ours_over_floor_wall": common.ratio(a_wall, c_wall),
        "naive_over_ours_wall": common.ratio(b_wall, a_wall),
        "naive_over_floor_wall": common.ratio(b_wall, c_wall),
        # CPU (client + server) is what a loaded machine distorts least: shown beside walls.
        "ours_over_floor_cpu": common.ratio(cpu(ours), cpu(floor)),
        "naive_over_ours_cpu": common.ratio(cpu([naive]), cpu(ours)),
        "ours_over_floor_bytes": common.ratio(ours[-1].bytes, floor[-1].bytes),
        "naive_over_ours_bytes": common.ratio(naive.bytes, ours[-1].bytes),
        "ours_rss_all_jobs_over_lifecycle_only": common.ratio(a_rss, small_rss or 0.0),
    }
    report.target("(a)/(c) wall", report.ratios["ours_over_floor_wall"], "<=", 1.3)
    if server == "sandbox":  # issue 11's target; issue 16 sets only the three others on real
        report.target("(b)/(a) wall", report.ratios["naive_over_ours_wall"], ">=", 5)
    report.target("peak RSS of (a)", a_rss, "<=", 150, " MB")
    if small is not None:
        report.target(
            "RSS(a) all Jobs / lifecycle Jobs only",
            report.ratios["ours_rss_all_jobs_over_lifecycle_only"],
            "<=",
            1.1,
        )
    checks = [("discovery", ours[-1].out["planned"]), ("naive", naive.out["matched"])]
    if small is not None:
        checks.append(("discovery with only lifecycle Jobs", small.out["planned"]))
    for label, got in checks:
        if got != n_ns:
            report.notes.append(f"{label} found {got} jobs for {OPERATION}, expected {n_ns}")


# -- the two backends ----------------------------------------------------------------------------

BACKENDS = ("sandbox", "real")


def _backends() -> list[str]:
    chosen = [b.strip() for b in os.environ.get("BENCH_DISCOVERY_BACKENDS", "").split(",")]
    chosen = [b for b in chosen if b] or list(BACKENDS)
    unknown = [b for b in chosen if b not in BACKENDS]
    if unknown:
        raise ValueError(f"BENCH_DISCOVERY_BACKENDS: unknown {unknown}; choose from {BACKENDS}")
    return chosen


def run(*, quick: bool, workdir: Path) -> Report:
    """Discovery on the sandbox and on the real kube-apiserver, one after the other; the
    sandbox's report carries the real one (``discovery-real.json``).
    ``BENCH_DISCOVERY_BACKENDS=sandbox`` (or ``real``) runs one."""
    backends = _backends()
    if "real" in backends:
        # Before anything is measured: a missing binary is a cold Go build (minutes), and a
        # failed one should stop the benchmark now, not after the sandbox's part.
        real.ensure_binary(progress=lambda line: print(f"  testbed: {line}", flush=True))
    n_ns = 10 if quick else 2000
    workdir.mkdir(parents=True, exist_ok=True)
    reports: list[BackendReport] = []
    if "sandbox" in backends:
        reports.append(run_sandbox(quick=quick, workdir=workdir, n_ns=n_ns))
    if "real" in backends:
        try:
            reports.append(run_real(quick=quick, workdir=workdir, n_ns=n_ns))
        except Exception:
            for report in reports:  # what was measured is not lost with the failure
                report.print()
            raise
    if len(reports) == 2:
        _compare(reports[1], reports[0])
    first = reports[0]
    first.companions = list[Report](reports[1:])
    return first


def run_sandbox(*, quick: bool, workdir: Path, n_ns: int) -> BackendReport:
    repeats = 1 if quick else 3
    LOAD.clear()
    report = BackendReport(
        "discovery",
        "sandbox: discovery at scale: ours vs naive vs one raw LIST",
        quick,
        backend="sandbox",
    )
    report.parameters = {
        "backend": "sandbox",
        **_parameters(n_ns, repeats),
        "transport": "HTTPS (the sandbox kubeconfig), keep-alive, one client process per run",
    }
    namespaces = _namespaces(n_ns)
    with common.sandbox(workdir / "sandbox") as sb:
        meter = SandboxMeter(sb)  # starts the HTTPS listener before anything is measured
        seeder = Seeder(sb)
        t0 = time.monotonic()
        seed_lifecycle(seeder, namespaces)
        seeded = time.monotonic() - t0

        def ordinary() -> None:
            nonlocal seeded
            t1 = time.monotonic()
            seed_ordinary(seeder, namespaces)
            seeded += time.monotonic() - t1

        runs = _runs(meter, workdir, repeats=repeats, quick=quick, seed_ordinary=ordinary)
        total_jobs = sb.store.count(seeder.jobs.key)
    _fill(report, runs, server="sandbox", n_ns=n_ns)
    report.baselines["seeding_s_not_measured"] = round(seeded, 1)
    report.baselines["jobs_in_sandbox"] = total_jobs
    report.baselines["load_average_1m_at_runs"] = list(LOAD)
    report.notes.append(
        "wall = whole process (interpreter start, imports, kubeconfig, listing), median of the "
        "interleaved repeats; peak RSS = the process's own (wait4 through a small launcher). "
        "Bytes = what the sandbox wrote to the client (headers + body, before TLS), counted "
        "server side while only that client ran. sandbox_cpu_s = CPU the sandbox process spent "
        "serving that run; client_cpu_s = the client process's own CPU."
    )
    errors_note = common.sandbox_errors_note(sb.bench_errors)
    if errors_note:
        report.notes.append(errors_note)
    report.finished = time.time()
    return report


def run_real(*, quick: bool, workdir: Path, n_ns: int) -> BackendReport:
    repeats = 1 if quick else 3
    LOAD.clear()
    report = BackendReport(
        "discovery-real",
        "real kube-apiserver: discovery at scale: ours vs naive vs one raw LIST",
        quick,
        backend="real",
    )
    threads = 8
    report.parameters = {
        "backend": "real",
        **_parameters(n_ns, repeats),
        "transport": "HTTPS (the test bed's admin kubeconfig: client certificate), keep-alive, "
        "one client process per run",
        "controlPlane": "testbed: etcd, kube-apiserver, kube-controller-manager (no node agent)",
        "seeding": f"through the API: POST from {threads} threads, one keep-alive connection "
        "each; every Job suspend: true, its status (condition Suspended) written after the "
        "create as the Job controller would",
    }
    namespaces = _namespaces(n_ns)
    quiet_timeout, window = (60.0, 0.5) if quick else (900.0, 1.0)
    progress = (lambda line: print(f"  testbed: {line}", flush=True)) if not quick else None
    t_start = time.monotonic()
    with real.control_plane(workdir / "real", progress=progress) as backend:
        started = time.monotonic() - t_start
        version = backend.plane.request("GET", "/version").get("gitVersion", "?")
        seeder = real.ApiSeeder(backend.plane, threads=threads)
        seeding: dict[str, float] = {}
        waited: dict[str, float] = {}

        def seed(label: str, batches: list[Batch]) -> None:
            t0 = time.monotonic()
            seeder.run(batches)
            seeding[label] = round(time.monotonic() - t0, 1)
            waited[label] = backend.wait_quiet(window=window, timeout=quiet_timeout)
            if not quick:
                print(
                    f"  real: seeded {label} in {seeding[label]:.0f} s "
                    f"(then {waited[label]:.0f} s until the control plane was quiet)",
                    flush=True,
                )

        seed("namespaces", real_namespaces(namespaces))
        seed("lifecycle jobs", real_lifecycle_jobs(namespaces))
        idle = backend.idle_cpu_per_second(1.0 if quick else 5.0)
        runs = _runs(
            backend,
            workdir,
            repeats=repeats,
            quick=quick,
            seed_ordinary=lambda: seed("ordinary jobs", real_ordinary_jobs(namespaces)),
        )
        server_rss = backend.peak_rss()
        total_jobs = _count_jobs(backend)
    _fill(report, runs, server="server", n_ns=n_ns)
    rows = {"ours": runs.ours[-1], "floor": runs.floor[-1], "naive": runs.naive}
    for label, row in rows.items():
        for component, spent in row.cpu.items():
            report.baselines[f"{label}_{component.replace('-', '_')}_cpu_s"] = spent
    report.baselines.update(
        {
            "server_idle_cpu_s_per_s": idle,
            "seeding_s_not_measured": round(sum(seeding.values()), 1),
            "seeding_s_by_kind": seeding,
            "seeding_objects_per_s": round(seeder.created / max(sum(seeding.values()), 1e-9), 1),
            "seeding_retries": seeder.retries,
            "quiet_wait_s_not_measured": waited,
            "control_plane_start_s": round(started, 1),
            "server_peak_rss_mb": server_rss,
            "jobs_in_apiserver": total_jobs,
            "kubernetes_version": version,
            "load_average_1m_at_runs": list(LOAD),
        }
    )
    report.notes.append(
        "wall = whole process (interpreter start, imports, kubeconfig, listing), median of the "
        "interleaved repeats; peak RSS = the process's own (wait4 through a small launcher). "
        "server_cpu_s = CPU time of the kube-apiserver + etcd processes during the run "
        "(/proc/PID/stat; kube-controller-manager shown apart), with server_idle_cpu_s_per_s of "
        "background in it. Bytes = the apiserver's own count (apiserver_response_sizes_sum of "
        "/metrics, GET and LIST of jobs and namespaces: response bodies before TLS, no headers, "
        "uncompressed as the Python clients send no Accept-Encoding), requests = "
        "apiserver_request_total of the same; server side, while only that client ran. "
        "The sandbox's bytes include headers: compare bodies by the (c) rows."
    )
    report.finished = time.time()
    return report


def _count_jobs(backend: real.RealBackend) -> int:
    page = backend.plane.request("GET", "/apis/batch/v1/jobs?limit=1")
    meta = page.get("metadata") or {}
    return len(page.get("items") or []) + int(meta.get("remainingItemCount") or 0)


def _compare(real_report: Report, sandbox_report: Report) -> None:
    """The real figures over the sandbox's, in the real report."""
    pairs = {
        "ours_wall_real_over_sandbox": ("ours_wall_s", "ours_wall_s"),
        "floor_wall_real_over_sandbox": ("floor_wall_s", "floor_wall_s"),
        "naive_wall_real_over_sandbox": ("naive_wall_s", "naive_wall_s"),
        "ours_server_cpu_real_over_sandbox": ("ours_server_cpu_s", "ours_sandbox_cpu_s"),
        "ours_peak_rss_real_over_sandbox": ("ours_peak_rss_mb", "ours_peak_rss_mb"),
    }
    for key, (real_key, sandbox_key) in pairs.items():
        mine = real_report.figures.get(real_key, real_report.baselines.get(real_key))
        theirs = sandbox_report.figures.get(sandbox_key, sandbox_report.baselines.get(sandbox_key))
        if isinstance(mine, int | float) and isinstance(theirs, int | float):
            real_report.ratios[key] = common.ratio(float(mine), float(theirs))
