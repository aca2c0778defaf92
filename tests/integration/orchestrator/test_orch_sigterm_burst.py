"""SIGTERM in the middle of a burst: `tenantctl listen` as a real process, restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from orch_support import (
    WORKFLOW_NAMESPACE,
    drain,
    prepare_sandbox,
    publish_requests,
    sandbox_kube,
    wait_for,
    workflows,
)

from tests.unit.orchestrator.bad_events import valid_event

TENANTCTL = str(Path(sys.executable).with_name("tenantctl"))
TOTAL = 500


def _listen(sandbox, topology, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [
        TENANTCTL,
        "listen",
        "--project",
        topology.project,
        "--subscription",
        topology.subscription,
        "--results-topic",
        topology.results_topic,
        "--dead-letter-topic",
        topology.dead_letter_topic,
        "--workflow-namespace",
        WORKFLOW_NAMESPACE,
        "--kubeconfig",
        str(sandbox.kubeconfig_path()),
        "--metrics-port",
        "0",
        "--max-messages",
        "50",
        "--handler-threads",
        "4",
        "--watch-timeout",
        "2",
        "--log-level",
        "warning",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def _stop(process: subprocess.Popen[bytes], log: Path) -> dict[str, float]:
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        raise AssertionError(f"listen did not stop on SIGTERM:\n{log.read_text()}") from None
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text, text
    summary = [line for line in text.splitlines() if line.startswith("stopped: ")][-1]
    return json.loads(summary.removeprefix("stopped: "))


def test_sigterm_mid_burst_every_request_is_submitted_exactly_once(
    sandbox, pubsub_topology, tmp_path
) -> None:
    t = pubsub_topology
    prepare_sandbox(sandbox)
    kube = sandbox_kube(sandbox)
    env = dict(os.environ)
    payloads = [
        json.dumps(valid_event(id=f"burst-{i:03d}", subject=f"tenant-{i % 37}")).encode()
        for i in range(TOTAL)
    ]
    publish_requests(t, payloads[: TOTAL // 2])
    first_log, second_log = tmp_path / "listen-1.log", tmp_path / "listen-2.log"
    first = _listen(sandbox, t, env, first_log)
    try:
        wait_for(lambda: len(workflows(kube)) >= 50, timeout=60)
        # the burst goes on while the service shuts down
        rest = threading.Thread(target=publish_requests, args=(t, payloads[TOTAL // 2 :]))
        rest.start()
        first_summary = _stop(first, first_log)
        rest.join(60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    after_first = len(workflows(kube))
    assert after_first < TOTAL, "the burst should still be running when SIGTERM arrives"

    second = _listen(sandbox, t, env, second_log)
    try:
        wait_for(lambda: len(workflows(kube)) >= TOTAL, timeout=150, interval=1.0)
        wait_for(
            lambda: second_log.read_text().count("metrics: ") == 1, timeout=10
        )  # started properly
    finally:
        second_summary = _stop(second, second_log)
    names = sorted(w["metadata"]["name"] for w in workflows(kube))
    assert names == sorted(f"lc-burst-{i:03d}" for i in range(TOTAL))
    # exactly once in effect: each request started one run; anything else was a counted duplicate
    assert first_summary["submissions"] + second_summary["submissions"] == TOTAL
    assert first_summary["received_invalid"] == second_summary["received_invalid"] == 0
    assert drain(t.project, t.subscription, expected=0) == []
    assert drain(t.project, t.dead_letter_subscription, expected=0) == []
    kube.close()
