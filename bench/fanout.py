"""Benchmark 4: fan-out on the local engine.

200 one-second Jobs (``sleep 1``) across 20 opted-in namespaces, in 4 waves of 50, run by
``tenantctl run --engine local --parallelism 50`` (its own process) with the default launcher
(since issue 21: every bridge a ``Runner`` in a thread of tenantctl).

The ideal: 4 waves x (1 s + the sandbox's pod start), the pod start measured separately
(created -> container running, pods like the bridge's: a per-run Secret mounted). Also shown:
the same fan-out with ``--launcher process`` (every bridge a ``python -m bridge run``
subprocess), and where the CPU went (the two cores' capacity over the run vs what the sandbox
and the children used). ``backend`` names the API server (:func:`bench.bridge_logs.api_server`).
"""

from __future__ import annotations

import json
import resource
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from . import common
from .bridge_logs import api_server
from .common import Report

PREFIX = "tenant-lifecycle.dev"
OPERATION = "lifecycle.upsert"
TENANTCTL = str(Path(common.PYTHON).with_name("tenantctl"))


def _objects(namespaces: int, per_namespace: int, waves: int) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for k in range(namespaces):
        ns = f"fan-{k:02d}"
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {f"{PREFIX}/enabled": "true"}},
            }
        )
        for j in range(per_namespace):
            g = k * per_namespace + j
            objs.append(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {
                        "name": f"step-{j:02d}",
                        "namespace": ns,
                        "labels": {f"{PREFIX}/enabled": "true"},
                        "annotations": {
                            f"{PREFIX}/operations": OPERATION,
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
                                    {
                                        "name": "main",
                                        "image": "busybox:1.36",
                                        "command": ["sleep", "1"],
                                    }
                                ],
                            }
                        },
                    },
                }
            )
    return objs


def pod_start_seconds(sb: Any, samples: int) -> tuple[float, float]:
    """(median created -> running, median running -> terminated) of ``sleep 1`` pods that mount
    a Secret, created one after another straight through the sandbox's API."""
    pods = sb.resource("", "v1", "pods")
    secrets = sb.resource("", "v1", "secrets")
    sb.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "podstart"}}])
    sb.api.create(secrets, "podstart", {"metadata": {"name": "ctx"}, "stringData": {"a": "b"}})
    starts, runs = [], []
    for i in range(samples):
        name = f"probe-{i}"
        sb.api.create(
            pods,
            "podstart",
            {
                "metadata": {"name": name},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox:1.36",
                            "command": ["sleep", "1"],
                            "volumeMounts": [{"name": "ctx", "mountPath": "/var/run/ctx"}],
                        }
                    ],
                    "volumes": [{"name": "ctx", "secret": {"secretName": "ctx"}}],
                },
            },
        )
        sb.wait_for_pod("podstart", name, timeout=30)
        key = f"podstart/{name}"
        start, run = sb.bench_clock.start_seconds(key), sb.bench_clock.run_seconds(key)
        if start is not None and run is not None:
            starts.append(start)
            runs.append(run)
    return common.median(starts), common.median(runs)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wave_spans(sb: Any, result: dict[str, Any]) -> list[float]:
    """Per wave: first pod created -> last pod terminated (sandbox clock)."""
    clock = sb.bench_clock
    by_wave: dict[int, list[str]] = {}
    for job in result.get("jobs") or []:
        for attempt in job.get("attempts") or []:
            by_wave.setdefault(int(job.get("wave", 0)), []).append(
                f"{job['namespace']}/{attempt['pod']}"
            )
    spans = []
    for wave in sorted(by_wave):
        keys = by_wave[wave]
        created = [clock.created[k] for k in keys if k in clock.created]
        ended = [clock.terminated[k] for k in keys if k in clock.terminated]
        if created and ended:
            spans.append(round(max(ended) - min(created), 3))
    return spans


def _engine_seconds(result: dict[str, Any]) -> float | None:
    try:
        start = datetime.fromisoformat(result["startedAt"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(result["finishedAt"].replace("Z", "+00:00"))
    except (KeyError, ValueError, AttributeError):
        return None
    return (end - start).total_seconds()


def _run_engine(sb: Any, argv: list[str], workdir: Path, name: str) -> dict[str, Any]:
    cpu_sandbox, cpu_children = time.process_time(), _children_cpu()
    env = common.child_env()
    env.pop("TENANTCTL_LAUNCHER", None)  # the default launcher is the product's default
    with (workdir / f"{name}.out").open("wb") as out, (workdir / f"{name}.err").open("wb") as err:
        launch = common.MeasuredLaunch(
            argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env
        )
        code, wall, rss = launch.wait(timeout=600)
    sandbox_cpu = time.process_time() - cpu_sandbox
    children_cpu = _children_cpu() - cpu_children
    text = (workdir / f"{name}.out").read_text(errors="replace")
    start = text.find("{")
    try:
        result = json.loads(text[start:]) if start >= 0 else {}
    except ValueError:
        result = {}
    jobs = result.get("jobs") or []
    return {
        "exit": code,
        "wall": wall,
        "rss": rss,
        "result": result,
        "engine_s": _engine_seconds(result),
        "succeeded": sum(1 for j in jobs if j.get("status") == "succeeded"),
        "jobs": len(jobs),
        "sandbox_cpu": sandbox_cpu,
        "children_cpu": children_cpu,
        "waves": _wave_spans(sb, result),
        "stderr_tail": (workdir / f"{name}.err").read_text(errors="replace")[-1500:],
    }


def run(*, quick: bool, workdir: Path, backend: str = "sandbox") -> Report:
    namespaces, per_ns, waves, parallelism = (2, 1, 1, 2) if quick else (20, 10, 4, 50)
    total = namespaces * per_ns
    report = Report("fanout", "fan-out on the local engine vs the ideal", quick)
    report.parameters = {
        "jobs": total,
        "namespaces": namespaces,
        "waves": waves,
        "parallelism": parallelism,
        "jobCommand": "sleep 1",
        "backend": backend,
        "engine": "tenantctl run --engine local, default launcher (bridges in threads)",
        "compared": "--launcher process (bridges as python -m bridge run subprocesses)",
        "ideal": "waves x (1 s + sandbox pod start), pod start measured separately",
    }
    workdir.mkdir(parents=True, exist_ok=True)
    with api_server(backend, workdir) as sb:
        kubeconfig = str(sb.kubeconfig_path())
        start_s, sleep_s = pod_start_seconds(sb, 1 if quick else 5)
        sb.apply(_objects(namespaces, per_ns, waves))
        ours = _run_engine(
            sb,
            [
                TENANTCTL,
                "run",
                OPERATION,
                "--tenant-env-id",
                "t-fanout",
                "--engine",
                "local",
                "--parallelism",
                str(parallelism),
                "--logs",
                "none",
                "--output",
                "json",
                "--kubeconfig",
                kubeconfig,
            ],
            workdir,
            "ours",
        )
        # The process launcher (`--launcher process`, orchestrator.engine.bridges): the same
        # command as `ours`, every bridge a `python -m bridge run` subprocess.
        launcher_process = _run_engine(
            sb,
            [
                TENANTCTL,
                "run",
                OPERATION,
                "--tenant-env-id",
                "t-fanout-launcher-process",
                "--engine",
                "local",
                "--launcher",
                "process",
                "--parallelism",
                str(parallelism),
                "--logs",
                "none",
                "--output",
                "json",
                "--kubeconfig",
                kubeconfig,
            ],
            workdir,
            "launcher-process",
        )
    ideal = waves * (1.0 + start_s)
    total_s = ours["engine_s"] if ours["engine_s"] is not None else ours["wall"]
    capacity = 2 * ours["wall"]
    report.figures = {
        "total_s": round(total_s, 3),
        "process_wall_s": round(ours["wall"], 3),
        "jobs_succeeded": ours["succeeded"],
        "jobs_reported": ours["jobs"],
        "wave_spans_s": ours["waves"],
        "tenantctl_peak_rss_mb": round(ours["rss"], 1),
        "cpu_s_bridges_pods_tenantctl": round(ours["children_cpu"], 1),
        "cpu_s_sandbox": round(ours["sandbox_cpu"], 1),
        "cpu_s_capacity_2_cores_x_wall": round(capacity, 1),
    }
    lp = launcher_process
    lp_s = lp["engine_s"] if lp["engine_s"] is not None else lp["wall"]
    report.figures.update(
        {
            "launcher_process_total_s": round(lp_s, 3),
            "launcher_process_process_wall_s": round(lp["wall"], 3),
            "launcher_process_jobs_succeeded": lp["succeeded"],
            "launcher_process_wave_spans_s": lp["waves"],
            "launcher_process_cpu_s_bridges_pods_tenantctl": round(lp["children_cpu"], 1),
            "launcher_process_cpu_s_sandbox": round(lp["sandbox_cpu"], 1),
            "launcher_process_cpu_s_per_bridge": round(lp["children_cpu"] / max(1, total), 3),
            "launcher_process_peak_rss_mb": round(lp["rss"], 1),
        }
    )
    report.baselines = {
        "ideal_s": round(ideal, 3),
        "sandbox_pod_start_s": round(start_s, 3),
        "sleep_1_pod_run_s": round(sleep_s, 3),
    }
    report.ratios = {
        "total_over_ideal": common.ratio(total_s, ideal),
        "launcher_process_over_ideal": common.ratio(lp_s, ideal),
        "launcher_process_over_default": common.ratio(lp_s, total_s),
        "cpu_demand_over_capacity": common.ratio(
            ours["children_cpu"] + ours["sandbox_cpu"], capacity
        ),
    }
    report.target("total / ideal (issue 11)", report.ratios["total_over_ideal"], "<=", 1.5)
    report.target("total / ideal (issue 21)", report.ratios["total_over_ideal"], "<=", 3.0)
    for label, row in (("default launcher", ours), ("launcher process", lp)):
        if row["succeeded"] != total:
            report.notes.append(
                f"{label}: {row['succeeded']} of {total} jobs succeeded (exit {row['exit']}): "
                f"{row['stderr_tail'][-400:]}"
            )
    report.notes.append(
        "total = the engine's own startedAt -> finishedAt (discovery + 4 waves; the tenantctl "
        "process start is in process_wall_s). launcher_process_* = `tenantctl run --launcher "
        "process` (one python -m bridge run per job; the pod's CPU is in the same figure)."
    )
    errors_note = common.sandbox_errors_note(sb.bench_errors)
    if errors_note:
        report.notes.append(errors_note)
    return report
