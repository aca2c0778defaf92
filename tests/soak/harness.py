"""The soak harness: the real parts wired together, requests in, faults in, observations out.

* the sandbox API server, in this process (the harness reads its store and injects faults
  directly; the same knobs are on the ``/_sandbox/faults`` admin endpoint);
* the Pub/Sub emulator (started here unless ``emulator_host`` is given);
* ``tenantctl listen --engine local`` as a subprocess (so it can be restarted), its bridges as
  its ``python -m bridge run`` subprocesses -- each with a copy of its stdout (``tee/``);
* two opted-in team namespaces with three lifecycle Jobs (two waves, an applications filter)
  running ``job_program.py``.

:func:`run_soak` publishes the requests (a few malformed among them) at most ``window`` at a
time, lets :class:`~tests.soak.faults.FaultInjector` inject faults in step with the progress,
waits for every result, sweeps, and checks :mod:`tests.soak.invariants`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sandbox import Sandbox, kubeconfig

from . import invariants as inv
from .faults import KINDS, FaultInjector, running_pods

HERE = Path(__file__).resolve().parent
JOB_PROGRAM = HERE / "job_program.py"
TEE_DIR = HERE / "tee"
EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
PREFIX = "tenant-lifecycle.dev"
TEAM_A, TEAM_B = "soak-team-a", "soak-team-b"
APPLICATIONS = ("catalog", "search")
OPERATIONS = ("lifecycle.upsert", "lifecycle.resume")
# Below Pub/Sub's 10 s minimum, which the emulator accepts (as tests/fixtures/pubsub_emulator.py
# does): a message held by a consumer that was restarted comes back in seconds.
ACK_DEADLINE_SECONDS = 2
# Fast, patient bridges: many retries with short backoff ride out the injected outages.
BRIDGE_ENV = {
    "BRIDGE_BACKOFF_BASE": "0.1",
    "BRIDGE_BACKOFF_MAX": "2",
    "BRIDGE_MAX_RETRIES": "8",
    "BRIDGE_STUCK_GRACE": "30",
    "BRIDGE_DELETE_GRACE": "1",
    "BRIDGE_LOG_RECONNECT_DELAY": "0.1",
}


@dataclass(frozen=True)
class SoakConfig:
    requests: int = 20
    tenants: int = 5
    faults_per_kind: int = 3
    seed: int = 1
    # Per-kind overrides of faults_per_kind (e.g. fewer consumer restarts in a bounded run).
    fault_counts: Mapping[str, int] = field(default_factory=dict)
    malformed: int | None = None  # default: 10% of requests, at least 2
    window: int = 6  # valid requests without a result, at most
    max_concurrent: int = 4  # tenantctl listen --max-concurrent
    parallelism: int = 2
    job_lines: int = 10
    line_delay: float = 0.1
    fault_interval: float = 0.3
    # How often a request deliberately goes to a tenant that is busy with another one (the
    # per-tenant mutex path: refused, nacked, redelivered). Otherwise a free tenant is picked.
    collision_rate: float = 0.1
    # After the last result: how long the last faults may still take to land.
    settle_seconds: float = 30.0
    # tenantctl listen --drain-seconds: how long a restarted consumer lets operations finish.
    drain_seconds: float = 5.0
    # Consumer restarts only once this share of the requests has a result, and each only
    # after the consumer has run this long.
    consumer_restart_after: float = 0.0
    min_consumer_uptime: float = 3.0
    # Publish more requests (at most ``requests`` more) while a fault budget is not spent.
    extend_until_faults: bool = True
    timeout: float = 1800.0
    project: str = "soak"
    emulator_host: str | None = None
    workdir: Path | None = None
    keep_workdir: bool = False

    @property
    def malformed_count(self) -> int:
        return self.malformed if self.malformed is not None else max(2, self.requests // 10)

    def fault_budget(self, kind: str) -> int:
        return int(self.fault_counts.get(kind, self.faults_per_kind))


# -- the parts ----------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def pubsub_emulator(workdir: Path) -> Iterator[str]:
    """A Pub/Sub emulator of our own (its host), killed as a process group at the end."""
    port = _free_port()
    log_path = workdir / "emulator.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(EMULATOR), "--host=127.0.0.1", f"--port={port}", f"--data-dir={workdir}"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "Server started" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Pub/Sub emulator did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _job(
    namespace: str,
    name: str,
    *,
    wave: int,
    operations: str,
    applications: str | None,
    state: Path,
    lines: int,
    delay: float,
) -> dict[str, Any]:
    annotations = {f"{PREFIX}/operations": operations, f"{PREFIX}/wave": str(wave)}
    if applications:
        annotations[f"{PREFIX}/applications"] = applications
    env = {
        "SOAK_STATE": str(state),
        "SOAK_JOB": name,
        "SOAK_LINES": str(lines),
        "SOAK_LINE_DELAY": str(delay),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {f"{PREFIX}/enabled": "true"},
            "annotations": annotations,
        },
        "spec": {
            "suspend": True,
            "backoffLimit": 3,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "main",
                            "image": "python:3.11",
                            "command": [sys.executable, "-S", str(JOB_PROGRAM)],
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                        }
                    ],
                }
            },
        },
    }


def team_objects(state: Path, *, lines: int, delay: float) -> list[dict[str, Any]]:
    namespaces = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": {f"{PREFIX}/enabled": "true"}},
        }
        for ns in (TEAM_A, TEAM_B)
    ]
    both = ",".join(OPERATIONS)
    return [
        *namespaces,
        _job(
            TEAM_A,
            "schema",
            wave=0,
            operations=both,
            applications=None,
            state=state,
            lines=lines,
            delay=delay,
        ),
        _job(
            TEAM_B,
            "index",
            wave=0,
            operations=both,
            applications="search",
            state=state,
            lines=lines,
            delay=delay,
        ),
        _job(
            TEAM_A,
            "warm",
            wave=1,
            operations="lifecycle.upsert",
            applications="search",
            state=state,
            lines=lines,
            delay=delay,
        ),
    ]


MALFORMED: tuple[bytes, ...] = (
    b"this is not JSON {",
    json.dumps({"specversion": "0.3", "type": "x", "id": "m", "source": "s"}).encode(),
    json.dumps(
        {
            "specversion": "1.0",
            "type": "dev.tenant-lifecycle.operation.requested",
            "id": "m-1",
            "source": "soak",
            "data": {"operation": "lifecycle.upsert"},
        }
    ).encode(),
    json.dumps(
        {
            "specversion": "1.0",
            "type": "dev.tenant-lifecycle.operation.requested",
            "id": "m-2",
            "source": "soak",
            "subject": "t-1",
            "data": {"operation": "lifecycle.bogus"},
        }
    ).encode(),
    json.dumps(
        {
            "specversion": "1.0",
            "type": "dev.tenant-lifecycle.operation.requested",
            "id": "has space",
            "source": "soak",
            "subject": "t-1",
            "data": {"operation": "lifecycle.upsert"},
        }
    ).encode(),
    json.dumps(
        {
            "specversion": "1.0",
            "type": "dev.tenant-lifecycle.operation.requested",
            "id": "m-3",
            "source": "soak",
            "subject": "t-1",
            "data_base64": "e30=",
        }
    ).encode(),
    b"[" * 100 + b"]" * 100,
    b"\xff\xfe\x00",
)


# -- the soak -----------------------------------------------------------------------------------


class Soak:
    """One soak run; use :func:`run_soak`."""

    def __init__(self, config: SoakConfig, sb: Sandbox, workdir: Path, emulator_host: str) -> None:
        from orchestrator.bus import Disposition
        from orchestrator.pubsub import PubSubBus, PubSubSettings, ensure_topology

        self.config = config
        self.sb = sb
        self.workdir = workdir
        self.rng = random.Random(config.seed)
        self.state = workdir / "state"
        self.tee = workdir / "tee"
        self.logs = workdir / "logs"
        for d in (self.state, self.tee, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = kubeconfig.write(workdir / "kubeconfig.yaml", sb.url, sb.admin_token)
        tag = f"{config.seed}-{os.getpid()}-{int(time.time())}"
        self.topics = {
            "requests": f"soak-req-{tag}",
            "results": f"soak-res-{tag}",
            "dead": f"soak-dl-{tag}",
        }
        self.subs = {k: f"{v}-sub" for k, v in self.topics.items()}
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator_host
        self.emulator_host = emulator_host
        ensure_topology(
            config.project,
            topics=list(self.topics.values()),
            subscriptions={self.subs[k]: self.topics[k] for k in self.topics},
            ack_deadline_seconds=ACK_DEADLINE_SECONDS,
        )
        self.bus = PubSubBus(PubSubSettings(project=config.project))
        self.lock = threading.Lock()
        self.results: list[dict[str, Any]] = []
        self.result_ids: set[str] = set()
        self.dead_letters: list[dict[str, str]] = []
        self.requests: dict[str, str] = {}
        self.malformed: set[str] = set()
        self.killed_batches: set[str] = set()
        self.killed: list[dict[str, str]] = []
        self.listen: subprocess.Popen[bytes] | None = None
        self.listen_count = 0
        self.listen_started = 0.0
        self.forced_stops = 0
        self.listen_summaries: list[str] = []
        self.published_at: dict[str, float] = {}
        self.result_at: dict[str, float] = {}

        def on_result(message: Any) -> Any:
            event = json.loads(message.data)
            with self.lock:
                self.results.append(event)
                self.result_ids.add(str(event.get("id")))
                self.result_at.setdefault(str(event.get("id")), time.time())
            return Disposition.ACK

        def on_dead(message: Any) -> Any:
            with self.lock:
                self.dead_letters.append(dict(message.attributes))
            return Disposition.ACK

        self._subscriptions = [
            self.bus.subscribe(self.subs["results"], on_result),
            self.bus.subscribe(self.subs["dead"], on_dead),
        ]

    # -- tenantctl listen -----------------------------------------------------------------------

    def listen_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(BRIDGE_ENV)
        env["PUBSUB_EMULATOR_HOST"] = self.emulator_host
        env["SOAK_TEE_DIR"] = str(self.tee)
        # Bridges as `python -m bridge run` processes (teed, killed by bridge-kill), not the
        # local engine's default threads.
        env["TENANTCTL_LAUNCHER"] = "process"
        env["PYTHONPATH"] = os.pathsep.join(
            [str(TEE_DIR), str(HERE.parents[1]), env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_listen(self) -> None:
        c = self.config
        self.listen_count += 1
        log = self.logs / f"listen-{self.listen_count}.log"
        tenantctl = Path(sys.executable).parent / "tenantctl"
        program = (
            [str(tenantctl)]
            if tenantctl.exists()
            else [sys.executable, "-c", "from orchestrator.cli import main; main()"]
        )
        argv = [
            *program,
            "listen",
            "--engine",
            "local",
            "--project",
            c.project,
            "--subscription",
            self.subs["requests"],
            "--results-topic",
            self.topics["results"],
            "--dead-letter-topic",
            self.topics["dead"],
            "--kubeconfig",
            str(self.kubeconfig),
            "--metrics-port",
            "-1",
            "--max-concurrent",
            str(c.max_concurrent),
            "--parallelism",
            str(c.parallelism),
            "--handler-threads",
            "4",
            "--retry-delay",
            "0.5",
            "--kube-retries",
            "8",
            "--log-level",
            "info",
        ]
        # --pull auto is unary Pull on the emulator: a restarted consumer's predecessor strands
        # nothing (orchestrator/pubsub_pull.py). Said explicitly: the soak depends on it.
        argv += ["--pull", "unary"]
        # A consumer restart is a rolling restart: running operations get a drain to finish
        # (those that do not are cancelled, with a result).
        argv += ["--drain-seconds", str(c.drain_seconds)]
        with log.open("wb") as handle:
            self.listen = subprocess.Popen(
                argv,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.listen_env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while "listening on" not in log.read_text(errors="replace"):
            if self.listen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tenantctl listen did not start:\n{log.read_text()}")
            time.sleep(0.1)
        self.listen_started = time.monotonic()

    def stop_listen(self) -> dict[str, object]:
        process = self.listen
        assert process is not None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        graceful = True
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            graceful = False
            self.forced_stops += 1
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log = (self.logs / f"listen-{self.listen_count}.log").read_text(errors="replace")
        self.listen_summaries += [line for line in log.splitlines() if "stopped:" in line]
        return {
            "graceful": graceful,
            "exitCode": process.returncode,
            "stopSeconds": round(time.monotonic() - started, 2),
        }

    def _may_restart(self) -> bool:
        """Not before ``consumer_restart_after`` of the load, and not before the consumer has
        run for ``min_consumer_uptime``: a restart storm would test nothing but start-up."""
        c = self.config
        return (
            self.done_fraction() >= c.consumer_restart_after
            and time.monotonic() - self.listen_started >= c.min_consumer_uptime
        )

    def restart_consumer(self) -> dict[str, object] | None:
        detail = self.stop_listen()
        self.start_listen()
        return detail

    # -- bridges --------------------------------------------------------------------------------

    def engine_bridges(self) -> list[tuple[int, list[str]]]:
        """(pid, argv) of the bridges the current listen process runs."""
        listen = self.listen
        if listen is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = [a.decode() for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == listen.pid and argv[1:4] == ["-m", "bridge", "run"]:
                found.append((int(entry.name), argv))
        return found

    def kill_bridge(self, rng: random.Random) -> dict[str, object] | None:
        """SIGKILL one of the engine's bridges (an OOM kill, a lost node). The engine reruns it
        as Argo's retryStrategy would; the rerun must find the pod by its deterministic name and
        resume it, never run the job a second time (invariants 2 and 3 hold it to that)."""
        bridges = self.engine_bridges()
        if not bridges:
            return None
        pid, argv = rng.choice(sorted(bridges))
        try:
            batch = argv[argv.index("--batch-operation-id") + 1]
            job = f"{argv[argv.index('--namespace') + 1]}/{argv[argv.index('--job') + 1]}"
        except (ValueError, IndexError):
            return None
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        with self.lock:
            self.killed_batches.add(batch)
            self.killed.append({"batch": batch, "job": job})
        return {"batch": batch, "job": job, "pid": pid}

    # -- requests -------------------------------------------------------------------------------

    def publish_valid(self, index: int) -> None:
        from orchestrator.events import encode_event, request_event

        c = self.config
        tenants = [f"t-{n:03d}" for n in range(c.tenants)]
        with self.lock:
            busy = {self.requests[r] for r in set(self.requests) - self.result_ids}
        free = [t for t in tenants if t not in busy]
        pool = free if free and self.rng.random() >= c.collision_rate else tenants
        tenant = self.rng.choice(pool)
        rid = f"soak-{c.seed}-{index:05d}"
        apps = [a for a in APPLICATIONS if self.rng.random() < 0.6] or ["catalog"]
        event = request_event(
            self.rng.choice(OPERATIONS),
            tenant_env_id=tenant,
            batch_operation_id=rid,
            source="soak",
            region="eu-west-1",
            environment={"applications": apps},
            changeset={"request": index},
        )
        with self.lock:
            self.requests[rid] = tenant
            self.published_at[rid] = time.time()
        self.bus.publish(self.topics["requests"], encode_event(event), {"soak-id": rid})

    def publish_malformed(self, index: int) -> None:
        sid = f"malformed-{index:04d}"
        with self.lock:
            self.malformed.add(sid)
        data = MALFORMED[index % len(MALFORMED)]
        self.bus.publish(self.topics["requests"], data, {"soak-id": sid})

    def outstanding(self) -> int:
        with self.lock:
            return len(set(self.requests) - self.result_ids)

    def done_fraction(self) -> float:
        with self.lock:
            return len(self.result_ids & set(self.requests)) / max(1, self.config.requests)

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        c = self.config
        started = time.time()
        deadline = time.monotonic() + c.timeout
        self.sb.apply(team_objects(self.state, lines=c.job_lines, delay=c.line_delay))
        self.start_listen()
        budgets = {k: c.fault_budget(k) for k in KINDS if c.fault_budget(k) > 0}
        injector = FaultInjector(
            self.sb,
            seed=c.seed + 1,
            budgets=budgets,
            interval=c.fault_interval,
            restart_consumer=self.restart_consumer,
            kill_bridge=self.kill_bridge,
            # Faults keep step with the requests: by the time a share f of them has a result,
            # about f of each kind's faults (plus one) have been injected.
            progress=self.done_fraction,
            ready=lambda kind: kind != "consumer-restart" or self._may_restart(),
        )
        injector.start()
        malformed_at = set(
            self.rng.sample(range(c.requests + c.malformed_count), c.malformed_count)
        )
        valid = malformed = 0
        for slot in range(c.requests + c.malformed_count):
            if slot in malformed_at:
                self.publish_malformed(malformed)
                malformed += 1
                continue
            while self.outstanding() >= c.window:
                self._check(injector, deadline)
                time.sleep(0.1)
            self.publish_valid(valid)
            valid += 1
        # Faults that need a target (a running pod, a bridge, a consumer with work to drain)
        # may lag the load: more requests, at most as many again, until every budget is spent.
        extra = 0
        while c.extend_until_faults and not injector.done() and extra < c.requests:
            self._check(injector, deadline)
            if self.outstanding() >= c.window:
                time.sleep(0.1)
                continue
            self.publish_valid(valid)
            valid += 1
            extra += 1
        while self.outstanding() > 0:
            self._check(injector, deadline)
            time.sleep(0.2)
        # Let the last faults land while the last operations finish (bounded).
        settle = time.monotonic() + c.settle_seconds
        while not injector.done() and time.monotonic() < settle:
            time.sleep(0.2)
        injector.stop()
        if injector.error is not None:
            raise RuntimeError(f"the fault injector failed: {injector.error!r}")
        self._wait_for_pods(deadline)
        self.stop_listen()
        time.sleep(2)  # the last result/dead-letter deliveries
        sweep = self._sweep()
        leftovers = self._leftovers()
        observations = inv.Observations(
            requests=dict(self.requests),
            malformed=set(self.malformed),
            results=list(self.results),
            dead_letters=list(self.dead_letters),
            records=self._records(),
            outputs=self._outputs(),
            killed_batches=set(self.killed_batches),
            leftovers=leftovers,
            job_lines=c.job_lines,
        )
        checks = inv.check_all(observations)
        return {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(c).items()},
            "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "durationSeconds": round(time.time() - started, 1),
            "requests": {"valid": len(self.requests), "malformed": len(self.malformed)},
            "faults": {
                "injected": dict(injector.log.counts),
                "noTarget": dict(injector.log.misses),
                "total": sum(injector.log.counts.values()),
                "consumerStopsForced": self.forced_stops,
            },
            "outcomes": inv.outcome_counts(self.results),
            "resultEvents": len(self.results),
            "deadLetters": len(self.dead_letters),
            "jobProcesses": sum(1 for r in observations.records if r["event"] == "start"),
            "bridgeProcesses": len(observations.outputs),
            "killedBridges": {
                "count": len(self.killed),
                # What became of the killed bridges' jobs, from the operations' results.
                "jobOutcomes": _count(self._killed_job_outcomes()),
            },
            "sweep": sweep,
            "listenSummaries": self.listen_summaries,
            "slowestOperations": self._slowest(),
            "invariants": [check.to_json() for check in checks],
            "ok": all(check.ok for check in checks),
        }

    def _slowest(self, count: int = 5) -> list[dict[str, Any]]:
        """The longest operations (publish to result), with what their jobs said."""
        rows = []
        for event in self.results:
            rid = str(event.get("id"))
            data = event.get("data") or {}
            if rid not in self.published_at or rid not in self.result_at:
                continue
            rows.append(
                {
                    "id": rid,
                    "seconds": round(self.result_at[rid] - self.published_at[rid], 1),
                    "ranSeconds": round(
                        (inv._time(data.get("finishedAt")) or 0)
                        - (inv._time(data.get("startedAt")) or 0),
                        1,
                    ),
                    "jobs": [
                        f"{j.get('namespace')}/{j.get('job')}: {j.get('status')} "
                        f"{j.get('reason')} attempts={len(j.get('attempts') or [])}"
                        for j in data.get("jobs") or []
                    ],
                }
            )
        return sorted(rows, key=lambda r: -float(str(r["seconds"])))[:count]

    def _check(self, injector: FaultInjector, deadline: float) -> None:
        if injector.error is not None:
            raise RuntimeError(f"the fault injector failed: {injector.error!r}")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the soak did not finish in {self.config.timeout:.0f}s: "
                f"{self.outstanding()} request(s) without a result"
            )

    def _wait_for_pods(self, deadline: float) -> None:
        """Orphaned pods (their bridge was killed and not resumed in time) run to their end."""
        while running_pods(self.sb) and time.monotonic() < deadline:
            time.sleep(0.2)

    def _sweep(self) -> dict[str, Any]:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bridge",
                "sweep",
                "--older-than",
                "0s",
                "--json",
                "--kubeconfig",
                str(self.kubeconfig),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=self.listen_env(),
        )
        try:
            report = json.loads(done.stdout)
        except ValueError:
            report = {"raw": done.stdout[-2000:]}
        return {
            "exitCode": done.returncode,
            "deleted": len(report.get("deleted", [])),
            "errors": report.get("errors", []),
            "stderr": done.stderr[-2000:],
        }

    def _leftovers(self) -> list[str]:
        left = []
        for rkey in ("pods", "secrets"):
            for (ns, name), obj in self.sb.store.candidates(rkey, None):
                labels = (obj.get("metadata") or {}).get("labels") or {}
                if labels.get(f"{PREFIX}/managed-by") == "bridge":
                    left.append(f"{rkey[:-1]} {ns}/{name}")
        return left

    def _records(self) -> list[dict[str, Any]]:
        path = self.state / "records.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def _outputs(self) -> list[inv.BridgeOutput]:
        outputs = []
        for argv_path in sorted(self.tee.glob("*.argv")):
            key = argv_path.name.removesuffix(".argv")
            out = self.tee / f"{key}.out"
            lines = out.read_text(errors="replace").splitlines() if out.exists() else []
            try:
                argv = tuple(json.loads(argv_path.read_text()))
            except ValueError:
                # Killed (SIGKILL, a consumer restart) before it wrote its argv: nothing to check.
                continue
            outputs.append(inv.BridgeOutput(key=key, argv=argv, lines=tuple(lines)))
        return outputs

    def _killed_job_outcomes(self) -> list[str]:
        status: dict[tuple[str, str], str] = {}
        for event in self.results:
            for job in (event.get("data") or {}).get("jobs") or []:
                key = (str(event.get("id")), f"{job.get('namespace')}/{job.get('job')}")
                status[key] = str(job.get("status"))
        return [status.get((k["batch"], k["job"]), "no result") for k in self.killed]

    def close(self) -> None:
        if self.listen is not None and self.listen.poll() is None:
            with contextlib.suppress(Exception):
                self.stop_listen()
        for subscription in self._subscriptions:
            subscription.stop(timeout=10)
        self.bus.close()


def _count(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


def run_soak(config: SoakConfig) -> dict[str, Any]:
    """Run one soak; the report (``report["ok"]``: every invariant held)."""
    own = config.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="soak-")) if own else Path(config.workdir)  # type: ignore[arg-type]
    workdir.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    try:
        with contextlib.ExitStack() as stack:
            host = config.emulator_host or stack.enter_context(pubsub_emulator(workdir))
            sb = stack.enter_context(
                Sandbox(
                    rbac=False, workdir=workdir / "sandbox", history=200_000, record_events=False
                )
            )
            soak = Soak(config, sb, workdir, host)
            stack.callback(soak.close)
            report = soak.run()
            report["workdir"] = str(workdir)
            return report
    finally:
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous
        if own and not config.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
