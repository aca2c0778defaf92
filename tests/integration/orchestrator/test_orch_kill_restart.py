"""A consumer SIGKILLed mid-run loses no request and runs no job twice: ``tenantctl listen
--engine local`` as a real process, killed while the operations' second wave runs, restarted.

The jobs are sandbox pods (local processes, which outlive the consumer as pods outlive a node's
consumer); each appends a line per start to a file named after its batch and job, so a job that
ran twice shows two lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from orch_support import (
    WORKFLOW_NAMESPACE,
    drain,
    events,
    prepare_sandbox,
    publish_requests,
    python_job,
    quiet_for,
    wait_for,
)

from bridge.kube import CONFIGMAPS, PODS, Kube
from orchestrator.engine.journal import KubeRunJournal
from orchestrator.engine.plan import PlannedJob
from orchestrator.engine.result import JobResult
from orchestrator.events import parse_request
from tests.unit.orchestrator.bad_events import valid_event

TENANTCTL = str(Path(sys.executable).with_name("tenantctl"))
PREFIX = "tenant-lifecycle.dev"
OPERATION = "orch.killed"
NAMESPACE = "orch-kill"
REQUESTS = 3


def _job(name: str, wave: int, starts: Path, sleep: float) -> dict[str, Any]:
    program = (
        "import os, pathlib, time\n"
        f"path = pathlib.Path({str(starts)!r}) / "
        f"(os.environ['LIFECYCLE_BATCH_OPERATION_ID'] + '.{name}')\n"
        "with path.open('a') as out:\n"
        "    out.write(os.environ['LIFECYCLE_ATTEMPT'] + '\\n')\n"
        f"time.sleep({sleep})\n"
        "print('done')\n"
    )
    return python_job(
        NAMESPACE, name, operation=OPERATION, wave=wave, program=program, python=sys.executable
    )


def _listen(sandbox: Any, topology: Any, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [TENANTCTL, "listen", "--engine", "local", "--project", topology.project]
    command += ["--subscription", topology.subscription]
    command += ["--results-topic", topology.results_topic]
    command += ["--dead-letter-topic", topology.dead_letter_topic]
    command += ["--workflow-namespace", WORKFLOW_NAMESPACE]
    command += ["--kubeconfig", str(sandbox.kubeconfig_path()), "--metrics-port", "-1"]
    command += ["--max-concurrent", str(REQUESTS), "--lease-seconds", "10"]
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_sigkill_mid_run_then_restart_answers_every_request_once_and_runs_each_job_once(
    sandbox: Any, pubsub_topology: Any, tmp_path: Path
) -> None:
    t = pubsub_topology
    prepare_sandbox(sandbox)  # the workflow namespace, where the run journal lives
    starts = tmp_path / "starts"
    starts.mkdir()
    sandbox.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": NAMESPACE, "labels": {f"{PREFIX}/enabled": "true"}},
            },
            _job("first", 0, starts, 0.0),
            _job("second", 1, starts, 8.0),
        ]
    )
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": os.environ["PUBSUB_EMULATOR_HOST"]}
    env.update({"BRIDGE_BACKOFF_BASE": "0.05", "BRIDGE_BACKOFF_MAX": "0.2"})
    log = tmp_path / "listen.log"
    batches = [f"killed-{index}" for index in range(REQUESTS)]
    payloads = []
    for index, batch in enumerate(batches):
        event = valid_event(id=batch, subject=f"tenant-killed-{index}")
        event["data"]["operation"] = OPERATION
        payloads.append(json.dumps(event).encode())

    first = _listen(sandbox, t, env, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        publish_requests(t, payloads)
        # Every operation's first wave is over and its second wave's pod is running ...
        wait_for(
            lambda: all(_lines(starts / f"{b}.second") for b in batches), timeout=90, interval=0.2
        )
        first.send_signal(signal.SIGKILL)  # ... when the consumer dies without a word
        first.wait(timeout=10)
        assert quiet_for(t.project, t.results_subscription, 1.0) == []  # nothing answered yet

        second = _listen(sandbox, t, env, log)
        results = drain(t.project, t.results_subscription, expected=REQUESTS, timeout=120)
        results += quiet_for(t.project, t.results_subscription, 3.0)  # and no second answer
        assert drain(t.project, t.subscription, expected=0) == []  # nothing left on the bus
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, log.read_text()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
    text = log.read_text()
    answered = events(results)
    assert sorted(e["id"] for e in answered) == batches, text  # one result per request
    for event in answered:
        assert event["type"] == "dev.tenant-lifecycle.operation.succeeded", event
        jobs = {j["job"]: j for j in event["data"]["jobs"]}
        assert {name: j["status"] for name, j in jobs.items()} == {
            "first": "succeeded",
            "second": "succeeded",
        }, event
    for batch in batches:  # each job started once: the journal, and a re-attached bridge
        assert _lines(starts / f"{batch}.first") == ["1"], batch
        assert _lines(starts / f"{batch}.second") == ["1"], batch
    with Kube(host=sandbox.url, token=sandbox.admin_token) as kube:
        assert list(kube.list(PODS, namespace=NAMESPACE)) == []  # every pod deleted on success
        journals = list(kube.list(CONFIGMAPS, namespace=WORKFLOW_NAMESPACE))
    assert sorted(j["data"]["batchOperationId"] for j in journals) == batches
    assert all("published" in j["data"] for j in journals)


def test_the_journal_round_trips_on_the_api_server_and_prunes_answered_requests(
    sandbox: Any,
) -> None:
    prepare_sandbox(sandbox)
    now = [1_000_000.0]
    with Kube(host=sandbox.url, token=sandbox.admin_token) as kube:
        journal = KubeRunJournal(kube, WORKFLOW_NAMESPACE, clock=lambda: now[0])
        request = valid_event(id="Journal_1", subject="tenant-j")  # sanitized name: a hash
        parsed = parse_request(json.dumps(request).encode())
        assert journal.load(parsed).jobs == {}
        job = PlannedJob(namespace="team-a", name="first", wave=0)
        data = {"namespace": "team-a", "job": "first", "status": "succeeded", "exitCode": 0}
        journal.record_job(parsed, JobResult(job, data))
        state = journal.load(parsed)
        assert (dict(state.jobs), state.published) == ({"team-a/first": data}, False)
        journal.mark_published(parsed)
        assert journal.load(parsed).published
        assert journal.prune() == 0  # answered just now: kept for redeliveries
        now[0] += journal.retention_seconds + 1
        assert journal.prune() == 1
        assert journal.load(parsed).jobs == {}
