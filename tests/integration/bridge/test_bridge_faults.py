"""The bridge under faults: cut log streams, API bursts, 403, SIGKILL + restart, SIGTERM.

Sandbox only: the faults are injected by the sandbox's knobs, which a real apiserver does not
have (the real backend runs the bridge's behaviour without faults in the other modules).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bridge import podspec
from bridge.contract import ContractSettings
from bridge.errors import NotFoundError
from bridge.kube import PODS, Kube
from bridge.result import Status
from bridge.sweep import Sweeper
from sandbox import Sandbox
from tests.integration.bridge.conftest import FAST, PREFIX, BridgeEnv, cli_env
from tests.integration.bridge.test_bridge_sweep import _pod


@pytest.fixture(scope="module")
def backend() -> str:
    return "sandbox"


TEN_THOUSAND = (
    'i=0; while [ $i -lt 10000 ]; do i=$((i+1)); echo "line $i"; '
    "if [ $((i % 2000)) -eq 0 ]; then sleep 0.1; fi; done"
)


def test_cut_log_streams_lose_and_duplicate_nothing(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job("chatty", TEN_THOUSAND)
    # Every log stream (follow or not) is cut after ~1,000 lines' worth of bytes.
    bridge_env.sb.faults.cut_streams(after_bytes=40_000, kind="log")
    streams: list[str | None] = []
    stream_log = bridge_env.kube.stream_log

    def counting(*args: Any, **kwargs: Any) -> Any:
        streams.append(kwargs.get("since_time"))
        return stream_log(*args, **kwargs)

    bridge_env.kube.stream_log = counting  # type: ignore[method-assign]
    result, out = bridge_env.run("chatty")
    assert result.status is Status.SUCCEEDED, result.message
    assert len(streams) > 3  # the cuts happened and were resumed from a timestamp
    assert all(since for since in streams[1:])
    assert out == [f"line {i}" for i in range(1, 10001)]


def test_bursts_of_429_and_500_are_survived(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job("steady", "echo steady")
    faults = bridge_env.sb.faults
    faults.fail_next(3, status=429, retry_after=0, method="POST", path=r"/pods$")
    faults.fail_next(2, status=500, retry_after=None, method="POST", path=r"/secrets$")
    faults.fail_next(3, status=500, retry_after=None, method="GET", path=r"/jobs/steady$")
    faults.fail_next(2, status=429, retry_after=0, method="GET", path=r"/namespaces/[^/]+$")
    result, out = bridge_env.run("steady")
    assert result.status is Status.SUCCEEDED, result.message
    assert out == ["steady"]
    assert len(result.attempts) == 1  # a retried create never makes a second pod
    assert bridge_env.pods() == []


def test_forbidden_ends_with_a_clear_message_after_at_most_one_retry(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job("guarded", "echo ok")
    faults = bridge_env.sb.faults
    # One 403 is retried once (a rotated token) and the run succeeds ...
    faults.fail_next(1, status=403, method="GET", path=r"/jobs/guarded$")
    ok, _ = bridge_env.run("guarded", batch_operation_id="b-403-once")
    assert ok.status is Status.SUCCEEDED, ok.message
    # ... two in a row end the run: no storm of retries.
    faults.fail_next(2, status=403, method="GET", path=r"/jobs/guarded$")
    done = bridge_env.cli(bridge_env.run_args("guarded", batch="b-403-twice"))
    assert done.returncode == 1, done.stderr
    assert "forbidden" in done.stderr.lower() or "403" in done.stderr
    assert "rbac" in done.stderr.lower()
    assert "Traceback" not in done.stderr
    assert bridge_env.pods() == []


def test_forbidden_by_rbac_is_an_error_naming_the_permission(
    bridge_env: BridgeEnv, sandbox_rbac: Sandbox
) -> None:
    token = sandbox_rbac.issue_token(user="system:serviceaccount:argo:nobody")
    with Kube(settings=FAST.kube, host=sandbox_rbac.url, token=token) as kube:
        result, out = bridge_env.run("anything", kube=kube, namespace="team-x")
    assert result.status is Status.ERROR
    assert result.reason == "Forbidden"
    assert result.process_exit_code == 1
    assert "403" in result.message
    assert "system:serviceaccount:argo:nobody" in result.message
    assert out == []


def _start(env: BridgeEnv, argv: list[str]) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
    )
    lines: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return process, lines


def _wait_for(predicate: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_sigkill_then_restart_attaches_to_the_same_pod(
    bridge_env: BridgeEnv, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    bridge_env.add_job("once", f"echo run >> {runs}; echo started; sleep 1.5; echo finished")
    argv = bridge_env.run_args("once", "--result", str(tmp_path / "result.json"))
    first, _ = _start(bridge_env, argv)
    try:
        _wait_for(lambda: runs.exists() and runs.read_text())
        first.kill()
        first.communicate(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate(timeout=10)
    assert len(bridge_env.pods()) == 1
    second = bridge_env.cli(argv)
    assert second.returncode == 0, second.stderr
    assert "attaching to existing pod" in second.stderr
    assert "finished" in second.stdout.splitlines()
    assert runs.read_text() == "run\n"  # the job ran once
    result = json.loads((tmp_path / "result.json").read_text())
    assert [a["attempt"] for a in result["attempts"]] == [1]
    assert bridge_env.pods() == []


def test_sigterm_deletes_the_pod_and_exits_143(bridge_env: BridgeEnv, tmp_path: Path) -> None:
    bridge_env.add_job("long", "echo started; sleep 60")
    result_path = tmp_path / "result.json"
    process, lines = _start(bridge_env, bridge_env.run_args("long", "--result", str(result_path)))
    try:
        _wait_for(lambda: "started" in lines)
        pod = bridge_env.pods()[0]["metadata"]["name"]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 143, stderr
    try:
        gone = bridge_env.kube.get(PODS, pod, namespace=bridge_env.namespace)
    except NotFoundError:
        gone = None
    assert gone is None
    assert bridge_env.secrets() == []
    result = json.loads(result_path.read_text())
    assert result["status"] == "cancelled"
    assert result["attempts"][0]["pod"] == pod
    assert pod.startswith("lc-long-")
    assert PREFIX  # labels are checked in test_bridge_run


def _in_thread(env: BridgeEnv, job: str, **kwargs: Any) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(env.run(job, **kwargs)), daemon=True)
    thread.start()
    return thread, box


def test_evicted_pod_counts_as_a_failure_and_is_retried(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job("evictee", "echo attempt $LIFECYCLE_ATTEMPT; sleep 1", backoff_limit=1)
    batch = "b-evict"
    thread, box = _in_thread(bridge_env, "evictee", batch_operation_id=batch)
    first = podspec.pod_name(
        batch_operation_id=batch, namespace=bridge_env.namespace, job="evictee", attempt=1
    )
    bridge_env.sb.wait_for_pod(bridge_env.namespace, first, phases=("Running",))
    bridge_env.sb.faults.evict_pod(bridge_env.namespace, first)
    thread.join(60)
    result, out = box[0]
    assert result.status is Status.SUCCEEDED, result.message
    assert [(a.attempt, a.counted) for a in result.attempts] == [(1, True), (2, True)]
    assert result.attempts[0].reason != "Completed"
    assert out[-1] == "attempt 2"


def test_cut_watch_streams_are_resumed(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job("watched", "sleep 1.5; echo done")
    bridge_env.sb.faults.cut_streams(after_seconds=0.3, kind="watch")
    result, out = bridge_env.run("watched")
    assert result.status is Status.SUCCEEDED, result.message
    assert out == ["done"]


def test_api_unavailable_after_retries_exits_75(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job("cut-off")
    impatient = dataclasses.replace(FAST.kube, max_retries=1, retry_after_max=0.05)
    sb = bridge_env.sb
    sb.faults.unavailable(10)
    with Kube(settings=impatient, host=sb.url, token=sb.admin_token) as kube:
        result, _ = bridge_env.run("cut-off", kube=kube)
    sb.faults.clear()
    assert result.status is Status.ERROR
    assert result.process_exit_code == 75
    assert "503" in result.message


def test_restart_replays_finished_attempts_and_reads_a_finished_pod(
    bridge_env: BridgeEnv, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    bridge_env.add_job(
        "twice",
        f'echo "attempt $LIFECYCLE_ATTEMPT" >> {runs}; '
        'if [ "$LIFECYCLE_ATTEMPT" = 1 ]; then exit 3; fi; sleep 0.5; echo second done',
        backoff_limit=1,
    )
    argv = bridge_env.run_args("twice", "--result", str(tmp_path / "result.json"), batch="b-rs")
    first, _ = _start(bridge_env, argv)
    try:
        _wait_for(lambda: runs.exists() and "attempt 2" in runs.read_text())
        first.kill()
        first.communicate(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate(timeout=10)
    second_pod = podspec.pod_name(
        batch_operation_id="b-rs", namespace=bridge_env.namespace, job="twice", attempt=2
    )
    bridge_env.sb.wait_for_pod(bridge_env.namespace, second_pod)  # it ends while no bridge runs
    # The same request again (in-process; test_sigkill_then_restart_... restarts the CLI).
    result, out = bridge_env.run("twice", batch_operation_id="b-rs")
    assert result.status is Status.SUCCEEDED, result.message
    assert "second done" in out
    assert runs.read_text() == "attempt 1\nattempt 2\n"  # nothing ran again
    assert [(a.attempt, a.exit_code, a.counted) for a in result.attempts] == [
        (1, 3, True),
        (2, 0, True),
    ]


def test_a_namespace_the_sweeper_may_not_read_does_not_stop_the_sweep(
    bridge_env: BridgeEnv,
) -> None:
    env = bridge_env
    env.add_namespace("argo", opted_in=False)
    env.add_namespace("a-sweep-forbidden")
    env.backend.apply([_pod(env, "p-gone", "wf-missing", "true")])
    env.backend.wait_for_pod(env.namespace, "p-gone")
    # Every read of that namespace's pods is refused (the retry included).
    env.sb.faults.fail_next(
        n=5, status=403, retry_after=None, path=r"/api/v1/namespaces/a-sweep-forbidden/pods"
    )
    try:
        report = Sweeper(env.kube, contract=ContractSettings(), older_than=0).run()
    finally:
        env.sb.faults.clear()
    mine = {(a.kind, a.name) for a in report.deleted if a.namespace == env.namespace}
    assert mine == {("pod", "p-gone")}  # swept although another namespace failed first
    refused = [e for e in report.errors if "a-sweep-forbidden" in e]
    assert len(refused) == 1
    assert refused[0].startswith("cannot list bridge pods in a-sweep-forbidden:")
