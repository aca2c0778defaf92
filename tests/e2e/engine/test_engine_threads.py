"""``tenantctl run`` with the thread launcher (the default since issue 21): the process
launcher's sandbox tests, bridges in threads.

The same world (namespaces, Jobs, the recorder program), the same runs and the same assertions
as :mod:`tests.e2e.engine.test_engine_run_sandbox`, with every bridge a ``Runner`` in a thread
of ``tenantctl`` instead of a ``python -m bridge run`` subprocess -- plus the failing job's
exit code and attempts read from the JSON result, cancel (SIGINT to tenantctl, default
launcher -> ``Runner.cancel()``) deleting the pod, and a bridge that ignores cancel stopped by
the watchdog, which deletes its pod.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.kube import PODS, Kube
from bridge.runner import Runner
from orchestrator.engine import BridgeSettings, BridgeSpec, PlannedJob
from orchestrator.engine.threads import ThreadBridgeLauncher
from sandbox import Sandbox
from tests.e2e.engine import test_engine_run_sandbox as process_tests

# The process launcher's module-scoped world, instantiated afresh for this module.
world = process_tests.world
PREFIX = process_tests.PREFIX
recorded = process_tests.recorded


def tenantctl(*args: str) -> subprocess.CompletedProcess[str]:
    return process_tests.tenantctl(*args, "--launcher", "thread")


def test_waves_run_in_order_proven_by_the_jobs_timestamps(
    world: tuple[Sandbox, Path, str],
) -> None:
    _, state, kubeconfig = world
    batch = "e2e-threads-waves-1"
    done = tenantctl(
        "run", "e2e.waves", "--tenant-env-id", "t-1", "--batch-operation-id", batch,
        "--kubeconfig", kubeconfig, "--output", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    assert [(j["wave"], j["namespace"], j["job"]) for j in result["jobs"]] == [
        (-1, "e2e-a", "first"),
        (0, "e2e-a", "middle"),
        (0, "e2e-b", "middle"),
        (1, "e2e-c", "last"),
    ]
    assert {j["status"] for j in result["jobs"]} == {"succeeded"}
    first = recorded(state, "e2e-a.first", batch)
    middles = [recorded(state, f"{ns}.middle", batch) for ns in ("e2e-a", "e2e-b")]
    last = recorded(state, "e2e-c.last", batch)
    assert first["end"] <= min(m["start"] for m in middles)
    assert max(m["end"] for m in middles) <= last["start"]
    # The pod's log reached the live view prefixed by job, as from a subprocess's stdout.
    assert "[e2e-a/first] e2e-a.first starting for tenant t-1" in done.stderr
    assert "wave -1: 1 job" in done.stderr
    assert "e2e.waves for tenant t-1: SUCCEEDED" in done.stderr


@pytest.fixture(scope="module")
def failures_run(
    world: tuple[Sandbox, Path, str],
) -> tuple[subprocess.CompletedProcess[str], str, dict[str, Any]]:
    """One run of e2e.failures: wave 0 has a failing continue job, wave 1 a failing abort job."""
    _, _, kubeconfig = world
    batch = "e2e-threads-failures-1"
    done = tenantctl(
        "run", "e2e.failures", "--tenant-env-id", "t-1", "--batch-operation-id", batch,
        "--kubeconfig", kubeconfig, "--logs", "failed", "--output", "json",
    )  # fmt: skip
    return done, batch, json.loads(done.stdout or "{}")


def test_a_failed_continue_job_lets_later_waves_run(
    world: tuple[Sandbox, Path, str],
    failures_run: tuple[subprocess.CompletedProcess[str], str, dict[str, Any]],
) -> None:
    _, state, _ = world
    done, batch, _ = failures_run
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stderr  # --output json: the live view and summary go to stderr
    assert "e2e-a/best-effort: failed: exit 3" in out
    assert "e2e-b/sibling: succeeded" in out
    assert "e2e-c/after-continue: succeeded" in out
    after = recorded(state, "e2e-c.after-continue", batch)
    assert recorded(state, "e2e-a.best-effort", batch)["end"] <= after["start"]
    assert "e2e.failures for tenant t-1: FAILED" in out
    assert "[e2e-a/best-effort] failing on purpose" in out
    assert "[e2e-b/sibling]" not in out


def test_a_failed_abort_job_stops_later_waves(
    world: tuple[Sandbox, Path, str],
    failures_run: tuple[subprocess.CompletedProcess[str], str, dict[str, Any]],
) -> None:
    _, state, _ = world
    done, batch, _ = failures_run
    out = done.stderr
    assert "[e2e-a/breaks] failing on purpose" in out
    assert "e2e-a/breaks: failed: exit 3" in out
    assert "e2e-c/after (wave 2): skipped" in out
    assert "later waves not started because e2e-a/breaks failed (on-failure abort)" in out
    assert re.search(r"^2 +e2e-c/after +skipped +0 +- +- +WaveAborted$", out, re.M)
    assert not (state / f"e2e-c.after.{batch}.json").exists()


def test_a_failed_jobs_exit_code_and_attempts_are_in_the_result(
    failures_run: tuple[subprocess.CompletedProcess[str], str, dict[str, Any]],
) -> None:
    _, batch, result = failures_run
    assert result["status"] == "failed"
    jobs = {f"{j['namespace']}/{j['job']}": j for j in result["jobs"]}
    breaks = jobs["e2e-a/breaks"]
    assert (breaks["status"], breaks["exitCode"], breaks["batchOperationId"]) == (
        "failed",
        3,
        batch,
    )
    assert [a["exitCode"] for a in breaks["attempts"]] == [3]  # backoffLimit 0: one attempt
    assert jobs["e2e-b/sibling"]["status"] == "succeeded"
    assert jobs["e2e-c/after"]["status"] == "skipped"


def test_sigint_cancels_the_run_and_deletes_its_pods(world: tuple[Sandbox, Path, str]) -> None:
    sandbox, state, kubeconfig = world
    batch = "e2e-threads-cancel-1"
    started = state / f"e2e-a.slow.{batch}.started"
    process = subprocess.Popen(
        [
            # No --launcher: the default, bridges in threads.
            process_tests.TENANTCTL, "run", "e2e.cancel", "--tenant-env-id", "t-1",
            "--batch-operation-id", batch, "--kubeconfig", kubeconfig, "--output", "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TERM": "dumb"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        assert started.exists(), "the slow job's pod never started"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, out + err
    assert "cancelling: every running bridge deletes its pod" in err
    assert "e2e-a/slow: cancelled" in err
    assert "e2e-c/never (wave 1): skipped - not started: the run was cancelled" in err
    assert "e2e.cancel for tenant t-1: CANCELLED" in err
    # The bridge's own SIGTERM path ran in the thread: Runner.cancel() -> cancelled.
    jobs = {f"{j['namespace']}/{j['job']}": j for j in json.loads(out)["jobs"]}
    assert jobs["e2e-a/slow"]["status"] == "cancelled"
    assert jobs["e2e-a/slow"]["reason"] == "Cancelled"
    assert "[e2e-a/slow] bridge: SIGTERM/SIGINT received: stopping" in err
    with Kube(host=sandbox.url, token=sandbox.admin_token) as kube:
        left = [
            pod["metadata"]["name"]
            for pod in kube.list(PODS, label_selector=f"{PREFIX}/batch={batch}")
            if not pod["metadata"].get("deletionTimestamp")
        ]
    assert left == [], out + err
    deadline = time.monotonic() + 10
    while sandbox.pod_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sandbox.pod_pids() == []
    assert not (state / f"e2e-c.never.{batch}.json").exists()


def test_engine_settings_choose_the_launcher() -> None:
    from bridge.errors import UsageError
    from orchestrator.engine import (
        EngineSettings,
        SubprocessBridgeLauncher,
        ThreadBridgeLauncher,
        local_engine,
    )

    assert isinstance(local_engine().launcher, ThreadBridgeLauncher)  # the default
    assert isinstance(local_engine(settings=EngineSettings()).launcher, ThreadBridgeLauncher)
    processes = local_engine(settings=EngineSettings(launcher="process"))
    assert isinstance(processes.launcher, SubprocessBridgeLauncher)
    with pytest.raises(UsageError, match="launcher must be one of process, thread"):
        EngineSettings(launcher="fork")


def test_a_hung_bridge_is_stopped_and_its_pod_deleted(world: tuple[Sandbox, Path, str]) -> None:
    """A bridge that ignores cancel (stuck in a hook, a lock, a call that never returns):
    the watchdog gives up on its thread after the grace period and deletes its pod itself."""
    sandbox, state, kubeconfig = world
    batch = "e2e-threads-hung-1"

    class Deaf(Runner):
        def cancel(self) -> None:  # hears nothing
            pass

    def deaf(kube: Any, setup: Any, hooks: Any, out: Any, emit: Any) -> Runner:
        return Deaf(kube, setup.request, settings=setup.settings, hooks=hooks, out=out)

    spec = BridgeSpec(
        job=PlannedJob("e2e-a", "slow"),
        operation="e2e.cancel",
        tenant_env_id="t-1",
        batch_operation_id=batch,
    )
    settings = BridgeSettings(kubeconfig=kubeconfig, terminate_grace_seconds=1.0)
    lines: list[str] = []
    handle = ThreadBridgeLauncher(settings, runner_factory=deaf).launch(
        spec, on_line=lambda _job, line, _stream: lines.append(line)
    )
    started = state / f"e2e-a.slow.{batch}.started"
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.exists(), "the slow job's pod never started"
    handle.terminate()
    data = handle.wait()
    assert (data["status"], data["reason"]) == ("cancelled", "Terminated"), data
    assert "did not stop within 1s of being cancelled" in data["message"]
    assert re.search(r"the engine deleted its pods: lc-slow-\S+", data["message"]), data
    with Kube(host=sandbox.url, token=sandbox.admin_token) as kube:
        left = [
            pod["metadata"]["name"]
            for pod in kube.list(PODS, label_selector=f"{PREFIX}/batch={batch}")
            if not pod["metadata"].get("deletionTimestamp")
        ]
    assert left == [], lines
    deadline = time.monotonic() + 10
    while sandbox.pod_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sandbox.pod_pids() == []
