"""Benchmark 1: discovery at scale.

One sandbox holds N namespaces (all opted in) of 30 Jobs each: 5 lifecycle Jobs (labelled,
annotated, suspended), one of which is annotated for the measured operation, and 25 ordinary
Jobs. Full size: 2,000 namespaces, 60,000 Jobs, 10,000 lifecycle Jobs, 2,000 for the operation.

Measured, each as its own process against the same sandbox over the same HTTPS listener:

(a) ours: ``python -m bridge discover`` (the real code path, plan written to a file);
(b) naive: every Job, paginated, annotations filtered in the client (``bench.workers list``);
(c) floor: one paginated, label-selected LIST, raw JSON (``bench.workers list --label-selector``).

Seeding is not measured: Jobs go straight into the sandbox's store (one defaulted prototype per
kind of Job, copied with fresh metadata), which is what makes 60,000 Jobs take seconds.
(a)'s peak RSS is measured twice -- with only the lifecycle Jobs seeded, and again with all of
them -- to show it does not depend on Jobs that do not match.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import common
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


@dataclass
class Row:
    """One measured client run: the process, what the sandbox sent it, what the sandbox spent."""

    run: common.Measured
    bytes: int
    requests: int
    sandbox_cpu: float
    out: dict[str, Any]


def _measure(argv: list[str]) -> tuple[common.Measured, int, int, float]:
    counter = common.byte_counter()
    before, cpu = counter.snapshot(), time.process_time()
    run = common.run_measured(argv, env=common.child_env())
    # This process is the sandbox (the driver only waits): its CPU time is the server's work.
    cpu = time.process_time() - cpu
    after = counter.snapshot()
    if run.returncode != 0:
        raise RuntimeError(f"{argv[2:4]} failed ({run.returncode}): {run.stderr[-2000:]}")
    return run, after[0] - before[0], after[1] - before[1], cpu


def _discover(sb: Any, workdir: Path) -> Row:
    """(a): the real ``python -m bridge discover``."""
    plan_path = workdir / f"plan-{uuid.uuid4().hex[:6]}.json"
    kubeconfig = str(sb.kubeconfig_path())
    argv = [common.PYTHON, "-m", "bridge", "discover", "--tenant-env-id", "bench"]
    argv += ["--kubeconfig", kubeconfig, "--operation", OPERATION, "--output", str(plan_path)]
    run, sent, requests, cpu = _measure(argv)
    plan = json.loads(plan_path.read_text())
    plan_path.unlink()
    planned = sum(len(w["jobs"]) for w in plan["waves"])
    return Row(run, sent, requests, cpu, {"planned": planned})


def _list(sb: Any, *, selector: str) -> Row:
    argv = [
        common.PYTHON,
        "-m",
        "bench.workers",
        "list",
        "--kubeconfig",
        str(sb.kubeconfig_path()),
        "--operation",
        OPERATION,
    ]
    if selector:
        argv += ["--label-selector", selector]
    run, sent, requests, cpu = _measure(argv)
    return Row(run, sent, requests, cpu, json.loads(run.stdout))


def run(*, quick: bool, workdir: Path) -> Report:
    n_ns = 10 if quick else 2000
    repeats = 1
    report = Report("discovery", "discovery at scale: ours vs naive vs one raw LIST", quick)
    report.parameters = {
        "namespaces": n_ns,
        "namespacesOptedIn": n_ns,
        "jobs": n_ns * JOBS_PER_NAMESPACE,
        "lifecycleJobs": n_ns * LIFECYCLE_PER_NAMESPACE,
        "jobsForOperation": n_ns,
        "operation": OPERATION,
        "pageSize": 500,
        "repeats": repeats,
        "transport": "HTTPS (the sandbox kubeconfig), keep-alive, one client process per run",
        "naive": "every Job, paginated (limit 500, as kubectl does), raw JSON, filtered in the "
        "client; no model objects (the official client's models would only make it slower)",
    }
    namespaces = _namespaces(n_ns)
    workdir.mkdir(parents=True, exist_ok=True)
    with common.sandbox(workdir / "sandbox") as sb:
        sb.kubeconfig_path()  # start the HTTPS listener before anything is measured
        seeder = Seeder(sb)
        t0 = time.monotonic()
        seed_lifecycle(seeder, namespaces)
        # Quick (smoke) mode skips the extra variant (lifecycle Jobs only): it only means
        # something at scale.
        small = None if quick else _discover(sb, workdir)
        seed_ordinary(seeder, namespaces)
        seeded = time.monotonic() - t0 - (small.run.wall if small else 0.0)
        total_jobs = sb.store.count(seeder.jobs.key)
        ours: list[Row] = []
        floor: list[Row] = []
        for _ in range(repeats):  # interleaved: load from other processes drifts alike for all
            ours.append(_discover(sb, workdir))
            floor.append(_list(sb, selector=SELECTOR))
        naive = _list(sb, selector="")

    def med(rows: list[Row]) -> float:
        return round(common.median([r.run.wall for r in rows]), 3)

    def cpu(rows: list[Row]) -> float:
        return common.median([r.run.cpu + r.sandbox_cpu for r in rows])

    def med_cpu(rows: list[Row]) -> float:
        return round(common.median([r.sandbox_cpu for r in rows]), 3)

    a_wall, c_wall, b_wall = med(ours), med(floor), round(naive.run.wall, 3)
    small_rss = round(small.run.max_rss_mb, 1) if small else None
    a_rss = round(max(r.run.max_rss_mb for r in ours), 1)
    report.figures = {
        "ours_wall_s": a_wall,
        "ours_peak_rss_mb": a_rss,
        "ours_bytes_received_mb": common.mb(ours[-1].bytes),
        "ours_requests": ours[-1].requests,
        "ours_sandbox_cpu_s": med_cpu(ours),
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
        "naive_sandbox_cpu_s": round(naive.sandbox_cpu, 3),
        "naive_client_cpu_s": round(naive.run.cpu, 3),
        "naive_jobs_listed": naive.out["items"],
        "naive_jobs_matched": naive.out["matched"],
        "floor_wall_s": c_wall,
        "floor_peak_rss_mb": round(max(r.run.max_rss_mb for r in floor), 1),
        "floor_bytes_received_mb": common.mb(floor[-1].bytes),
        "floor_requests": floor[-1].requests,
        "floor_sandbox_cpu_s": med_cpu(floor),
        "floor_client_cpu_s": round(common.median([r.run.cpu for r in floor]), 3),
        "floor_list_only_s": round(common.median([r.out["seconds"] for r in floor]), 3),
        "floor_jobs_listed": floor[-1].out["items"],
        "floor_wall_s_all_runs": [round(r.run.wall, 3) for r in floor],
        "seeding_s_not_measured": round(seeded, 1),
        "jobs_in_sandbox": total_jobs,
    }
    report.ratios = {
        "ours_over_floor_wall": common.ratio(a_wall, c_wall),
        "naive_over_ours_wall": common.ratio(b_wall, a_wall),
        "naive_over_floor_wall": common.ratio(b_wall, c_wall),
        # CPU (client + sandbox) is what a loaded machine distorts least: shown beside walls.
        "ours_over_floor_cpu": common.ratio(cpu(ours), cpu(floor)),
        "naive_over_ours_cpu": common.ratio(cpu([naive]), cpu(ours)),
        "ours_over_floor_bytes": common.ratio(ours[-1].bytes, floor[-1].bytes),
        "naive_over_ours_bytes": common.ratio(naive.bytes, ours[-1].bytes),
        "ours_rss_all_jobs_over_lifecycle_only": common.ratio(a_rss, small_rss or 0.0),
    }
    report.target("(a)/(c) wall", report.ratios["ours_over_floor_wall"], "<=", 1.3)
    report.target("(b)/(a) wall", report.ratios["naive_over_ours_wall"], ">=", 5)
    report.target("peak RSS of (a)", a_rss, "<=", 150, " MB")
    if small is not None:
        report.target(
            "RSS(a) all Jobs / lifecycle Jobs only",
            report.ratios["ours_rss_all_jobs_over_lifecycle_only"],
            "<=",
            1.1,
        )
    expected = n_ns
    checks = [("discovery", ours[-1].out["planned"]), ("naive", naive.out["matched"])]
    if small is not None:
        checks.append(("discovery with only lifecycle Jobs", small.out["planned"]))
    for label, got in checks:
        if got != expected:
            report.notes.append(f"{label} found {got} jobs for {OPERATION}, expected {expected}")
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
    return report
