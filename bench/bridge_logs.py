"""Benchmark 2: bridge overhead and log latency.

R runs (full: 50) of one suspended Job whose container waits ``LEAD`` seconds (so both log
clients are attached), then prints L lines (full: 1,000), one per millisecond, each carrying the
wall-clock nanosecond it was written at. Each run is a real ``python -m bridge run`` process;
``kubectl logs -f`` follows the same pod at the same time as the baseline.

* overhead = the bridge process's wall time minus the pod's own run time (container running ->
  terminated, taken from the sandbox's status writes with millisecond precision; the API's
  ``startedAt``/``finishedAt`` have one-second precision and are recorded as a cross-check);
* latency = arrival of a line on the client's stdout (stamped by a tiny reader process,
  ``bench.workers stamp``) minus the time written in the line;
* peak RSS and CPU (user + system) of each bridge process from ``wait4``;
* start-up: ``python -X importtime -c "import bridge.__main__"`` totals beside a bare
  interpreter's (issue 21).

The bridge connects as in an Argo pod (issue 21): ``--in-cluster`` with the service account's
``token`` and ``ca.crt`` in a directory (``BRIDGE_SERVICE_ACCOUNT_DIR``) and
``KUBERNETES_SERVICE_HOST``/``PORT``, all taken from the API server's kubeconfig; a few runs use
the kubeconfig itself (``kubeconfig_*`` figures), the path people and the local engine take.

Both backends run in the same invocation, one after the other, each against ``kubectl logs -f``
on the same backend (``BENCH_BRIDGE_BACKENDS=sandbox`` or ``real`` picks one): the in-process
``sandbox`` (``bridge.json``) and the test bed's ``real`` control plane (``bridge-real.json``:
etcd, kube-apiserver, controllers and the node agent, pods as local processes; see
:class:`RealServer` for the service account and how pod times are taken there).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import resource
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import common
from .common import Report

NAMESPACE = "bench-logs"
JOB = "logger"
OPERATION = "lifecycle.upsert"
PREFIX = "tenant-lifecycle.dev"
LEAD = 0.7
KUBECTL = "/usr/bin/kubectl"

SCRIPT = """
import sys, time
time.sleep({lead})
w, f, now, sleep = sys.stdout.write, sys.stdout.flush, time.time_ns, time.sleep
for i in range({lines}):
    w("line %d %d\\n" % (i, now()))
    f()
    sleep(0.001)
"""


def job(lines: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": JOB,
            "namespace": NAMESPACE,
            "labels": {f"{PREFIX}/enabled": "true"},
            "annotations": {f"{PREFIX}/operations": OPERATION},
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
                            "image": "python:3.11-slim",
                            "command": ["python3", "-c", SCRIPT.format(lead=LEAD, lines=lines)],
                        }
                    ],
                }
            },
        },
    }


def _delays(path: Path) -> list[float]:
    """Milliseconds from written to arrived, for every ``line <i> <ns>`` in a stamped file."""
    out: list[float] = []
    for raw in path.read_bytes().splitlines():
        parts = raw.split()
        if len(parts) == 4 and parts[1] == b"line":
            out.append((int(parts[0]) - int(parts[3])) / 1e6)
    return out


def _api_seconds(result: dict[str, Any]) -> float | None:
    attempts = result.get("attempts") or []
    if not attempts:
        return None
    try:
        start = datetime.fromisoformat(attempts[-1]["startedAt"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(attempts[-1]["finishedAt"].replace("Z", "+00:00"))
    except (KeyError, ValueError, AttributeError):
        return None
    return (end - start).total_seconds()


BACKENDS = ("sandbox", "real")
BENCH_ACCOUNT = "bench-bridge"  # the real backend's ServiceAccount for the in-cluster runs


class _Pods:
    key = "pods"  # what PodClock.hook expects of the resource type


class RealServer:
    """The test bed's real control plane (etcd, kube-apiserver, kube-controller-manager,
    kube-scheduler and the node agent, which runs pods as local processes) with the members
    the benchmark uses of a sandbox: ``kubeconfig_path()``, ``apply(objects)`` and a
    :class:`bench.common.PodClock` at ``bench_clock``.

    The apiserver has no write hook, so the pod clock is fed by a watch of the benchmark's
    namespace: a transition is stamped when its event reaches this process (a few ms after the
    write, at both ends of a run alike)."""

    bench_errors = None

    def __init__(self, plane: Any) -> None:
        self.plane = plane
        self.bench_clock = common.PodClock()
        self._stopping = threading.Event()
        self._conn: http.client.HTTPSConnection | None = None
        self._watcher = threading.Thread(target=self._watch, name="bench-pod-watch", daemon=True)
        self.watch_errors = 0

    def kubeconfig_path(self) -> Path:
        return Path(self.plane.kubeconfig)

    def apply(self, objects: list[dict[str, Any]]) -> None:
        stream = yaml.safe_dump_all(objects, sort_keys=False)
        self.plane.kubectl("apply", "--server-side", "-f", "-", stdin=stream, timeout=120)
        if not self._watcher.is_alive():
            self._watcher.start()

    def in_cluster_env(self, directory: Path) -> dict[str, str]:
        """A ServiceAccount in the benchmark's namespace bound to ``cluster-admin`` (the bench
        measures the bridge, not the install's narrower role), its token from the TokenRequest
        API, the cluster CA, and the service host and port of the apiserver (127.0.0.1)."""
        self.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": BENCH_ACCOUNT, "namespace": NAMESPACE},
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": f"{BENCH_ACCOUNT}-cluster-admin"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "cluster-admin",
                    },
                    "subjects": [
                        {"kind": "ServiceAccount", "name": BENCH_ACCOUNT, "namespace": NAMESPACE}
                    ],
                },
            ]
        )
        directory.mkdir(parents=True, exist_ok=True)
        token = self.plane.service_account_token(NAMESPACE, BENCH_ACCOUNT, seconds=6 * 3600)
        (directory / "token").write_text(token)
        (directory / "ca.crt").write_bytes(Path(self.plane.ca_path).read_bytes())
        (directory / "namespace").write_text("argo")
        return {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.plane.port),
            "BRIDGE_SERVICE_ACCOUNT_DIR": str(directory),
        }

    def _watch(self) -> None:
        version = ""
        path = f"/api/v1/namespaces/{NAMESPACE}/pods?watch=true"
        while not self._stopping.is_set():
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.plane.port, context=self.plane.ssl_context(), timeout=None
            )
            self._conn = conn
            try:
                conn.request("GET", path + (f"&resourceVersion={version}" if version else ""))
                reply = conn.getresponse()
                if reply.status != 200:
                    raise OSError(f"watch: HTTP {reply.status}")
                while not self._stopping.is_set():
                    line = reply.readline()
                    if not line:
                        break
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        version = ""  # expired: start again from now
                        break
                    version = (obj.get("metadata") or {}).get("resourceVersion", version)
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self.bench_clock.hook(_Pods, NAMESPACE, obj)
            except (OSError, ValueError, http.client.HTTPException):
                if self._stopping.is_set():
                    return
                self.watch_errors += 1
                time.sleep(0.2)
            finally:
                conn.close()

    def stop(self) -> None:
        self._stopping.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        if self._watcher.is_alive():
            self._watcher.join(timeout=5)


@contextlib.contextmanager
def api_server(backend: str, workdir: Path) -> Iterator[Any]:
    """The API server the bridges run against, with ``kubeconfig_path()``, ``apply(objects)``
    and a pod clock at ``bench_clock`` (:class:`bench.common.PodClock` API): the in-process
    sandbox, or the test bed's real control plane (:class:`RealServer`)."""
    if backend == "sandbox":
        with common.sandbox(workdir / "sandbox") as sb:
            yield sb
        return
    if backend != "real":
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    from testbed import ControlPlane

    with ControlPlane(workdir=workdir / "real") as plane:
        server = RealServer(plane)
        try:
            yield server
        finally:
            server.stop()


def in_cluster_env(kubeconfig: Path, directory: Path) -> dict[str, str]:
    """What a pod's bridge gets, made from a token-and-CA kubeconfig: the service account's
    files in ``directory`` and the environment that points at them."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(user["token"])
    (directory / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    (directory / "namespace").write_text("argo")
    server = urlsplit(cluster["server"])
    return {
        "KUBERNETES_SERVICE_HOST": str(server.hostname),
        "KUBERNETES_SERVICE_PORT": str(server.port or 443),
        "BRIDGE_SERVICE_ACCOUNT_DIR": str(directory),
    }


def importtime_ms(code: str, *, repeats: int) -> dict[str, float]:
    """Median over ``repeats`` processes of ``python -X importtime -c code``: the whole
    process's import total (top-level entries), each top-level module's cumulative time, and
    the process's CPU (``(cpu)``, user + system, in ms: far steadier than the wall-clock
    importtime figures on a loaded machine)."""
    runs: list[dict[str, float]] = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [common.PYTHON, "-X", "importtime", "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=str(common.ROOT),
            env=common.child_env(),
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        top: dict[str, float] = {}
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or line.endswith("imported package"):
                continue
            _, cumulative, field = line.split("|")
            if not field.startswith("  "):  # depth 0: imported by the program itself
                top[field.strip()] = top.get(field.strip(), 0.0) + int(cumulative) / 1000
        top["(total)"] = sum(top.values())
        top["(cpu)"] = cpu * 1000
        runs.append(top)
    names = set().union(*runs)
    return {n: round(statistics.median([r.get(n, 0.0) for r in runs]), 1) for n in names}


def _one_run(
    sb: Any, index: int, lines: int, workdir: Path, *, in_cluster: dict[str, str] | None
) -> dict[str, Any]:
    from bridge.podspec import pod_name

    batch = f"bench-logs-{index:03d}-{int(time.time())}"
    pod = pod_name(batch_operation_id=batch, namespace=NAMESPACE, job=JOB, attempt=1)
    key = f"{NAMESPACE}/{pod}"
    kubeconfig = str(sb.kubeconfig_path())
    result_path = workdir / f"result-{index}.json"
    bridge_out = workdir / f"bridge-{index}.txt"
    kubectl_out = workdir / f"kubectl-{index}.txt"
    env = common.child_env(**(in_cluster or {}))
    stamp = [common.PYTHON, "-m", "bench.workers", "stamp"]
    connection = ["--in-cluster"] if in_cluster else ["--kubeconfig", kubeconfig]
    argv = [
        common.PYTHON,
        "-m",
        "bridge",
        "run",
        *connection,
        "--namespace",
        NAMESPACE,
        "--job",
        JOB,
        "--operation",
        OPERATION,
        "--tenant-env-id",
        "t-bench",
        "--batch-operation-id",
        batch,
        "--result",
        str(result_path),
    ]
    with (workdir / f"bridge-{index}.err").open("wb") as err:
        launched_at = time.time()
        launch = common.MeasuredLaunch(
            argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env
        )
        bridge = launch.process
        assert bridge.stdout is not None
        stamper_b = subprocess.Popen(
            [*stamp, str(bridge_out)], stdin=bridge.stdout, env=env, cwd=str(common.ROOT)
        )
        bridge.stdout.close()
        kubectl = stamper_k = None
        kubectl_ended: list[float] = []  # when `kubectl logs -f` saw its stream end
        if sb.bench_clock.wait_running(key, timeout=120):
            kubectl = subprocess.Popen(
                [KUBECTL, "--kubeconfig", kubeconfig, "-n", NAMESPACE, "logs", "-f", pod],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
            assert kubectl.stdout is not None
            stamper_k = subprocess.Popen(
                [*stamp, str(kubectl_out)], stdin=kubectl.stdout, env=env, cwd=str(common.ROOT)
            )
            kubectl.stdout.close()
            follower = kubectl
            threading.Thread(
                target=lambda: kubectl_ended.append((follower.wait(), time.time())[1]),
                name="bench-kubectl-wait",
                daemon=True,
            ).start()
        code, wall, rss = launch.wait(timeout=300)
        exited_at = time.time()
        cpu = launch.cpu
        for proc in (kubectl, stamper_b, stamper_k):
            if proc is not None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    common.stop_process(proc, grace=1)
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    run_s = sb.bench_clock.run_seconds(key)
    clock = sb.bench_clock
    # Where the overhead goes: before the pod exists, the pod's start, after it ended.
    before_pod = clock.created[key] - launched_at if key in clock.created else None
    after_pod = exited_at - clock.terminated[key] if key in clock.terminated else None
    kubectl_after_pod = (
        kubectl_ended[0] - clock.terminated[key]
        if kubectl_ended and key in clock.terminated
        else None
    )
    bridge_delays = _delays(bridge_out)
    kubectl_delays = _delays(kubectl_out) if kubectl_out.exists() else []
    return {
        "mode": "in-cluster" if in_cluster else "kubeconfig",
        "exit": code,
        "status": result.get("status"),
        "wall": wall,
        "rss": rss,
        "cpu": cpu,
        "run": run_s,
        "api_run": _api_seconds(result),
        "start": sb.bench_clock.start_seconds(key),
        "before_pod": before_pod,
        "after_pod": after_pod,
        "kubectl_after_pod": kubectl_after_pod,
        "bridge_delays": bridge_delays,
        "kubectl_delays": kubectl_delays,
        "index": index,
        "stderr_tail": (workdir / f"bridge-{index}.err").read_text(errors="replace")[-400:],
        "stdout_other": [
            raw.decode(errors="replace")[:200]
            for raw in bridge_out.read_bytes().splitlines()
            if b" line " not in raw
        ][-5:],
    }


def _backends() -> list[str]:
    chosen = [b.strip() for b in os.environ.get("BENCH_BRIDGE_BACKENDS", "").split(",")]
    chosen = [b for b in chosen if b] or list(BACKENDS)
    unknown = [b for b in chosen if b not in BACKENDS]
    if unknown:
        raise ValueError(f"BENCH_BRIDGE_BACKENDS: unknown {unknown}; choose from {BACKENDS}")
    return chosen


def run(
    *,
    quick: bool,
    workdir: Path,
    budget_seconds: float = 210.0,
    backends: list[str] | None = None,
) -> Report:
    """The bridge benchmark on each backend in turn (default: the sandbox, then the real
    kube-apiserver; ``BENCH_BRIDGE_BACKENDS`` picks), each against ``kubectl logs -f`` on the
    same backend. The first backend's report (``bridge``, the sandbox's) carries the others
    (``bridge-real``), printed after it and written beside it.
    The budget is shared: each backend's runs stop at its share of what is left."""
    from .discovery import BackendReport

    chosen = backends or _backends()
    if "real" in chosen:
        # A missing binary is a Go build (minutes): before anything is measured, never timed.
        from . import real

        real.ensure_binary(progress=lambda line: print(f"  testbed: {line}", flush=True))
    workdir.mkdir(parents=True, exist_ok=True)
    end = time.monotonic() + budget_seconds
    # Import time is the interpreter's and the bridge's, not the API server's: measured once.
    imports = importtime_ms("import bridge.__main__", repeats=3 if quick else 7)
    bare = importtime_ms("pass", repeats=3 if quick else 7)
    reports: list[BackendReport] = []
    for index, backend in enumerate(chosen):
        share = max(30.0, (end - time.monotonic()) / (len(chosen) - index))
        report = BackendReport(
            "bridge" if backend == "sandbox" else f"bridge-{backend}",
            f"{TITLES[backend]}: bridge overhead and log latency vs kubectl logs -f",
            quick,
            backend=backend,
        )
        try:
            run_backend(
                report, quick=quick, workdir=workdir / backend, budget_seconds=share,
                imports=imports, bare=bare,
            )  # fmt: skip
        except Exception:
            for done in reports:  # what was measured is not lost with the failure
                done.print()
            raise
        report.finished = time.time()
        reports.append(report)
    first = reports[0]
    first.companions = list[Report](reports[1:])
    return first


TITLES = {"sandbox": "sandbox", "real": "real kube-apiserver"}


def run_backend(
    report: Report,
    *,
    quick: bool,
    workdir: Path,
    budget_seconds: float,
    imports: dict[str, float],
    bare: dict[str, float],
) -> None:
    backend = str(getattr(report, "backend", "sandbox"))
    runs, lines = (1, 50) if quick else (50, 1000)
    # Every KUBECONFIG_EVERY-th run connects with the kubeconfig instead of in-cluster.
    kubeconfig_every = 2 if quick else 5
    runs += 1 if quick else 0
    report.parameters = {
        "backend": backend,
        "connection": f"in-cluster (as in an Argo pod); every {kubeconfig_every}th run kubeconfig",
        "runs": runs,
        "linesPerRun": lines,
        "lineIntervalMs": 1,
        "leadSeconds": LEAD,
        "budgetSeconds": budget_seconds,
        "deletePolicy": "succeeded (the default: the bridge deletes the pod and its Secret)",
    }
    rows: list[dict[str, Any]] = []
    workdir.mkdir(parents=True, exist_ok=True)
    with api_server(backend, workdir) as sb:
        sb.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": NAMESPACE, "labels": {f"{PREFIX}/enabled": "true"}},
                },
                job(lines),
            ]
        )
        if backend == "real":
            in_cluster = sb.in_cluster_env(workdir / "serviceaccount")
        else:
            in_cluster = in_cluster_env(sb.kubeconfig_path(), workdir / "serviceaccount")
        # The budget counts from the first run (not the API server's start).
        deadline = time.monotonic() + budget_seconds
        for index in range(runs):
            if rows and time.monotonic() > deadline:
                report.notes.append(f"time budget reached after {len(rows)} of {runs} runs")
                break
            pod_like = (index + 1) % kubeconfig_every != 0
            rows.append(
                _one_run(sb, index, lines, workdir, in_cluster=in_cluster if pod_like else None)
            )
    done = [r for r in rows if r["exit"] == 0 and r["run"] is not None]
    ok = [r for r in done if r["mode"] == "in-cluster"]
    by_kubeconfig = [r for r in done if r["mode"] == "kubeconfig"]
    overheads = [r["wall"] - r["run"] for r in ok]
    api_overheads = [r["wall"] - r["api_run"] for r in ok if r["api_run"] is not None]
    # Log latency from every run: both connections stream the log the same way.
    b_delays = [d for r in done for d in r["bridge_delays"]]
    k_delays = [d for r in done for d in r["kubectl_delays"]]
    b_p95, k_p95 = common.percentile(b_delays, 95), common.percentile(k_delays, 95)
    report.figures = {
        "runs_succeeded": len(done),
        "in_cluster_runs_succeeded": len(ok),
        "runs_attempted": len(rows),
        "bridge_wall_s_median": round(common.median([r["wall"] for r in ok]), 3),
        "pod_run_s_median": round(common.median([r["run"] for r in ok]), 3),
        "overhead_s_median": round(common.median(overheads), 3),
        "overhead_s_p95": round(common.percentile(overheads, 95), 3),
        "overhead_s_median_from_api_seconds": round(common.median(api_overheads), 3),
        "pod_start_s_median": round(
            common.median([r["start"] for r in ok if r["start"] is not None]), 3
        ),
        "phase_launch_to_pod_created_s_median": round(
            common.median([r["before_pod"] for r in ok if r["before_pod"] is not None]), 3
        ),
        "phase_pod_terminated_to_exit_s_median": round(
            common.median([r["after_pod"] for r in ok if r["after_pod"] is not None]), 3
        ),
        "bridge_lines_received": len(b_delays),
        "bridge_latency_ms_median": round(common.median(b_delays), 2),
        "bridge_latency_ms_p95": round(b_p95, 2),
        "bridge_latency_ms_max": round(max(b_delays, default=0.0), 2),
        "bridge_peak_rss_mb_max": round(max((r["rss"] for r in ok), default=0.0), 1),
        "bridge_peak_rss_mb_median": round(common.median([r["rss"] for r in ok]), 1),
        "bridge_cpu_s_median": round(common.median([r["cpu"] for r in ok]), 3),
        "kubeconfig_runs_succeeded": len(by_kubeconfig),
        "kubeconfig_bridge_cpu_s_median": round(
            common.median([r["cpu"] for r in by_kubeconfig]), 3
        ),
        "kubeconfig_overhead_s_median": round(
            common.median([r["wall"] - r["run"] for r in by_kubeconfig]), 3
        ),
        "kubeconfig_bridge_peak_rss_mb_max": round(
            max((r["rss"] for r in by_kubeconfig), default=0.0), 1
        ),
        "importtime_ms_bridge_main": imports.get("bridge.__main__", 0.0),
        "importtime_ms_process_total": imports["(total)"],
        "importtime_process_cpu_ms": imports["(cpu)"],
        "importtime_ms_top": dict(
            sorted(
                ((n, v) for n, v in imports.items() if not n.startswith("(")),
                key=lambda item: -item[1],
            )[:5]
        ),
    }
    report.baselines = {
        "kubectl_lines_received": len(k_delays),
        "kubectl_latency_ms_median": round(common.median(k_delays), 2),
        "kubectl_latency_ms_p95": round(k_p95, 2),
        "kubectl_latency_ms_max": round(max(k_delays, default=0.0), 2),
        # How long the backend's log stream stays open after the pod ended: the floor of the
        # bridge's own "pod terminated -> exit" phase (it reads the log to its end).
        "kubectl_stream_end_after_pod_terminated_s_median": round(
            common.median([r["kubectl_after_pod"] for r in done if r["kubectl_after_pod"]]), 3
        ),
        "importtime_ms_bare_interpreter_total": bare["(total)"],
        "importtime_bare_interpreter_cpu_ms": bare["(cpu)"],
    }
    report.ratios = {
        "bridge_over_kubectl_latency_p95": common.ratio(b_p95, k_p95),
        "bridge_over_kubectl_latency_median": common.ratio(
            common.median(b_delays), common.median(k_delays)
        ),
    }
    report.target("overhead median", report.figures["overhead_s_median"], "<=", 0.5, " s")
    report.target("bridge CPU per run", report.figures["bridge_cpu_s_median"], "<=", 0.3, " s")
    report.target("log latency p95", report.figures["bridge_latency_ms_p95"], "<=", 250, " ms")
    report.target(
        "latency p95 bridge/kubectl", report.ratios["bridge_over_kubectl_latency_p95"], "<=", 1.2
    )
    report.target("bridge peak RSS", report.figures["bridge_peak_rss_mb_max"], "<=", 50, " MB")
    expected = len(done) * lines
    if len(b_delays) != expected:
        report.notes.append(f"the bridge printed {len(b_delays)} of {expected} lines")
    short = [r for r in done if len(r["bridge_delays"]) != lines]
    if short:
        # Which runs, and what the bridge said: a short log is a finding, not noise.
        report.figures["runs_with_short_bridge_log"] = [
            {
                "run": r["index"],
                "mode": r["mode"],
                "bridgeLines": len(r["bridge_delays"]),
                "kubectlLines": len(r["kubectl_delays"]),
                "bridgeOtherStdout": r["stdout_other"],
                "bridgeStderrTail": r["stderr_tail"],
            }
            for r in short
        ]
    report.notes.append(
        "overhead, wall, CPU and RSS figures without a prefix are the in-cluster runs' (as in an "
        "Argo pod); kubeconfig_* are the runs with the kubeconfig; latency is from every run"
    )
    report.notes.append(
        "overhead includes the bridge's interpreter start and imports, the re-check, Secret and "
        "pod creation, the pod's start on the backend (pod_start_s_median), the final log read "
        "and the deletion of pod and Secret"
    )
    if backend == "real":
        report.notes.append(
            "real: the test bed's etcd, kube-apiserver, kube-controller-manager, kube-scheduler "
            "and node agent (pods are local processes); in-cluster runs use a TokenRequest token "
            f"of ServiceAccount {NAMESPACE}/{BENCH_ACCOUNT}, bound to cluster-admin, the cluster "
            "CA and KUBERNETES_SERVICE_HOST/PORT = 127.0.0.1/the apiserver's port; kubeconfig "
            "runs and kubectl use the admin's client certificate. Pod times come from a watch "
            "of the namespace's pods (stamped on arrival)"
        )
        if sb.watch_errors:
            report.notes.append(f"the pod watch was re-established {sb.watch_errors} time(s)")
    else:
        errors_note = common.sandbox_errors_note(sb.bench_errors)
        if errors_note:
            report.notes.append(errors_note)
