"""Benchmark 3: event throughput, Pub/Sub emulator -> ``tenantctl listen`` -> Workflows.

N request events (full: 10,000, unique batch ids) are published once to a topic with two
subscriptions, so both hold the same backlog:

* baseline: a raw synchronous pull-and-ack loop (``bench.workers pull-ack``) drains one;
* ours: ``tenantctl listen --engine argo`` (its defaults: 8 handler threads, 100 messages held)
  drains the other, creating one Workflow per event on the sandbox over HTTPS.

Rates are counted from the first message handled to the last (so both exclude their process
start-up, reported separately). Duplicates: every Workflow create the sandbox performs is counted
(stored, or refused with 409 because the name exists); no duplicate means creates == Workflows
stored == unique batch ids == N.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import common
from .common import Report

PROJECT = "bench"
WORKFLOW_NAMESPACE = "argo"
TENANTCTL = str(Path(common.PYTHON).with_name("tenantctl"))


def request_event(batch: str, tenant: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": "dev.tenant-lifecycle.operation.requested",
        "source": "tenant-manager",
        "id": batch,
        "subject": tenant,
        "time": "2026-11-22T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "operation": "lifecycle.upsert",
            "region": "eu-west-1",
            "tenantEnvironment": {"applications": ["catalog", "search"]},
            "changeset": {},
        },
    }


@contextlib.contextmanager
def _emulator_env(host: str) -> Iterator[None]:
    old = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = old


def _publish(topic: str, ids: list[str]) -> float:
    from google.cloud import pubsub_v1

    from orchestrator.pubsub import _close_channel

    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.05)
    )
    path = f"projects/{PROJECT}/topics/{topic}"
    started = time.monotonic()
    try:
        futures = [
            publisher.publish(
                path,
                json.dumps(request_event(batch, f"tenant-{i % 1000:04d}")).encode(),
                **{"ce-id": batch, "ce-type": "dev.tenant-lifecycle.operation.requested"},
            )
            for i, batch in enumerate(ids)
        ]
        for future in futures:
            future.result(timeout=120)
    finally:
        publisher.stop()
        _close_channel(publisher)
    return time.monotonic() - started


class _WorkflowCounter:
    """Counts the Workflow creates the sandbox performs (wrapping this sandbox's ``Api.create``
    in the benchmark process): stored creates, and creates refused as already existing (409)."""

    def __init__(self, sb: Any, key: str, expected: int) -> None:
        from sandbox.status import ApiError

        self.key = key
        self.expected = expected
        self.lock = threading.Lock()
        self.creates = 0
        self.conflicts = 0
        self.names: set[str] = set()
        self.first: float | None = None
        self.last: float | None = None
        self.done = threading.Event()
        original = sb.api.create

        def create(rtype: Any, namespace: str, body: Any, **kwargs: Any) -> Any:
            if rtype.key != self.key or kwargs.get("dry_run"):
                return original(rtype, namespace, body, **kwargs)
            try:
                obj = original(rtype, namespace, body, **kwargs)
            except ApiError as exc:
                if exc.code == 409:
                    with self.lock:
                        self.conflicts += 1
                raise
            self._created(obj["metadata"]["name"])
            return obj

        sb.api.create = create

    def _created(self, name: str) -> None:
        now = time.monotonic()
        with self.lock:
            self.names.add(name)
            self.creates += 1
            self.first = self.first or now
            self.last = now
            if self.creates >= self.expected:
                self.done.set()


def run(*, quick: bool, workdir: Path, emulator_host: str | None = None) -> Report:
    n = 100 if quick else 10_000
    report = Report("events", "request events -> Workflows vs raw pull-and-ack", quick)
    tag = uuid.uuid4().hex[:8]
    topic, results, dead = f"req-{tag}", f"res-{tag}", f"dead-{tag}"
    sub_ours, sub_raw = f"req-{tag}-listen", f"req-{tag}-raw"
    report.parameters = {
        "events": n,
        "consumer": "tenantctl listen --engine argo --no-track (defaults: 8 handler threads, "
        "max 100 messages outstanding), a process of its own",
        "baseline": "synchronous pull (max 1,000) + acknowledge loop, a process of its own",
        "kubernetes": "sandbox over HTTPS (kubeconfig), Workflows in namespace argo",
    }
    ids = [f"bench-{tag}-{i:05d}" for i in range(n)]
    workdir.mkdir(parents=True, exist_ok=True)
    with (
        common.pubsub_emulator(emulator_host) as host,
        _emulator_env(host),
        common.sandbox(workdir / "sandbox") as sb,
    ):
        from orchestrator.pubsub import ensure_topology

        kubeconfig = str(sb.kubeconfig_path())
        sb.apply(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": WORKFLOW_NAMESPACE}}]
        )
        wf_key = sb.resource("argoproj.io", "v1alpha1", "workflows").key
        counter = _WorkflowCounter(sb, wf_key, n)
        ensure_topology(
            PROJECT,
            topics=[topic, results, dead],
            subscriptions={sub_ours: topic, sub_raw: topic},
            ack_deadline_seconds=60,
        )
        publish_s = _publish(topic, ids)
        env = common.child_env(PUBSUB_EMULATOR_HOST=host)

        raw = common.run_measured(
            [
                common.PYTHON,
                "-m",
                "bench.workers",
                "pull-ack",
                "--project",
                PROJECT,
                "--subscription",
                sub_raw,
                "--expect",
                str(n),
            ],
            env=env,
        )
        raw_out = json.loads(raw.stdout or "{}")

        log_path = workdir / "listen.log"
        argv = [
            TENANTCTL,
            "listen",
            "--project",
            PROJECT,
            "--subscription",
            sub_ours,
            "--results-topic",
            results,
            "--dead-letter-topic",
            dead,
            "--workflow-namespace",
            WORKFLOW_NAMESPACE,
            "--kubeconfig",
            kubeconfig,
            "--metrics-port",
            "-1",
            "--no-track",
        ]
        cpu0 = time.process_time()
        with log_path.open("wb") as log:
            launch = common.MeasuredLaunch(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
            started = time.monotonic()
            counter.done.wait(timeout=60 if quick else 240)
            finished = time.monotonic()
            sandbox_cpu = time.process_time() - cpu0
            time.sleep(0.5)  # let acks of the last messages go out before stopping
            launch.process.send_signal(15)
            code, _wall, rss = launch.wait(timeout=60)
        stored = sb.store.count(wf_key, WORKFLOW_NAMESPACE)
        batches = {
            (w["metadata"].get("labels") or {}).get("tenant-lifecycle.dev/batch")
            for _, w in sb.store.candidates(wf_key, WORKFLOW_NAMESPACE)
        }
    text = log_path.read_text(errors="replace")
    summary: dict[str, Any] = {}
    found = re.findall(r"^stopped: (\{.*\})$", text, flags=re.M)
    if found:
        summary = json.loads(found[-1])

    ours_span = (counter.last or finished) - (counter.first or started)
    ours_rate = (counter.creates - 1) / ours_span if counter.creates > 1 and ours_span > 0 else 0.0
    raw_span = float(raw_out.get("firstToLastSeconds") or 0.0)
    raw_rate = (raw_out.get("received", 0) - 1) / raw_span if raw_span > 0 else 0.0
    duplicates = counter.creates - len(counter.names)
    report.figures = {
        "workflows_created": counter.creates,
        "events_per_s": round(ours_rate, 1),
        "events_per_s_including_startup": round(counter.creates / max(finished - started, 1e-9), 1),
        "startup_to_first_workflow_s": round((counter.first or finished) - started, 3),
        "first_to_last_workflow_s": round(ours_span, 3),
        "listen_peak_rss_mb": round(rss, 1),
        "listen_cpu_s": round(launch.cpu, 2),
        "listen_cpu_share_of_run": common.ratio(launch.cpu, finished - started),
        "listen_cpu_ms_per_event": round(1000 * launch.cpu / max(n, 1), 3),
        "sandbox_cpu_ms_per_event": round(1000 * sandbox_cpu / max(n, 1), 3),
        "listen_exit_code": code,
        "sandbox_cpu_s": round(sandbox_cpu, 2),
        "sandbox_cpu_share_of_span": common.ratio(sandbox_cpu, ours_span),
        "duplicate_creates": duplicates,
        "redeliveries_refused_409": counter.conflicts,
        "workflows_stored": stored,
        "unique_batch_labels": len(batches - {None}),
        "listen_summary": summary,
    }
    report.baselines = {
        "raw_pull_ack_per_s": round(raw_rate, 1),
        "raw_received": raw_out.get("received"),
        "raw_unique": raw_out.get("unique"),
        "raw_first_to_last_s": raw_span,
        "raw_cpu_s": round(raw.cpu, 2),
        "raw_cpu_ms_per_event": round(1000 * raw.cpu / max(n, 1), 3),
        "raw_total_s": raw_out.get("totalSeconds"),
        "publish_s_not_measured": round(publish_s, 2),
    }
    report.ratios = {
        "ours_over_raw_rate": common.ratio(ours_rate, raw_rate),
        # Load-insensitive view: CPU per event of the raw loop over ours (listener + sandbox).
        "raw_over_ours_cpu_per_event": common.ratio(raw.cpu, launch.cpu + sandbox_cpu),
    }
    report.target("events/s", round(ours_rate, 1), ">=", 300)
    report.target(
        "events/s ours / raw pull-and-ack", report.ratios["ours_over_raw_rate"], ">=", 0.3
    )
    report.target("duplicate Workflows", float(duplicates + abs(stored - n)), "<=", 0)
    if not (counter.creates == stored == len(batches - {None}) == n):
        report.notes.append(
            f"expected {n} Workflows from {n} unique ids: {counter.creates} created, "
            f"{stored} stored, {len(batches - {None})} unique batch labels"
        )
    report.notes.append(
        "rates count from the first to the last message handled (process start-up excluded and "
        "shown separately); the sandbox runs in the benchmark process, so sandbox_cpu_s is the "
        "API server's CPU over the consumer's run"
    )
    errors_note = common.sandbox_errors_note(sb.bench_errors)
    if errors_note:
        report.notes.append(errors_note)
    return report
