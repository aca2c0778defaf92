"""The subprocess launcher and discovery, against a stand-in for ``python -m bridge``.

``BridgeSettings.python`` is our seam: here it is a tiny script that accepts the bridge CLI's
arguments and behaves as told by ``FAKE_BRIDGE_MODE`` -- so argv building, log pumping, result
reading, SIGTERM handling and the no-result fallback are tested without Kubernetes.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from bridge.errors import ContractError, LifecycleError
from orchestrator.engine import BridgeSettings, BridgeSpec, PlannedJob
from orchestrator.engine.bridges import SubprocessBridgeLauncher
from orchestrator.engine.discovery import SubprocessDiscovery

FAKE_BRIDGE = r"""
import json, os, signal, sys, time
args = sys.argv[sys.argv.index("-m") + 3:]
command = sys.argv[sys.argv.index("-m") + 2]
opts = {args[i]: args[i + 1] for i in range(0, len(args) - 1) if args[i].startswith("--")}
mode = os.environ.get("FAKE_BRIDGE_MODE", "succeed")
if command == "discover":
    env = open(opts["--environment"]).read()
    if mode == "invalid":
        print("error: 1 Job(s) annotated for x.y are invalid:", file=sys.stderr)
        print("  Job a/b:", file=sys.stderr)
        print("hint: fix the Jobs", file=sys.stderr)
        sys.exit(1)
    plan = {"operation": opts["--operation"], "tenantEnvId": opts["--tenant-env-id"],
            "waves": [{"wave": 0, "jobs": [{"namespace": "a", "name": "b"}]}], "rejected": []}
    open(opts["--output"], "w").write(json.dumps(plan))
    print("discovery: env " + env.strip(), file=sys.stderr)
    sys.exit(0)
def result(status, code):
    data = {"namespace": opts["--namespace"], "job": opts["--job"], "status": status,
            "exitCode": code, "reason": "Completed", "attempts": [{"attempt": 1}],
            "argv": args, "environment": open(opts["--environment"]).read(),
            "changeset": open(opts["--changeset"]).read()}
    open(opts["--result"], "w").write(json.dumps(data))
def on_term(signum, frame):
    print("bridge: deleting pod", file=sys.stderr, flush=True)
    result("cancelled", None)
    sys.exit(143)
signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "deaf" else on_term)
print("hello from the pod", flush=True)
print("bridge: created pod p-1 (attempt 1)", file=sys.stderr, flush=True)
if mode in ("hang", "deaf"):
    print("READY", flush=True)
    time.sleep(60)
if mode == "crash":
    sys.exit(9)
result("succeeded", 0)
"""


@pytest.fixture
def fake_python(tmp_path: Path) -> str:
    script = tmp_path / "fake_bridge.py"
    script.write_text(FAKE_BRIDGE)
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def spec() -> BridgeSpec:
    return BridgeSpec(
        job=PlannedJob("team-a", "schema"),
        operation="lifecycle.upsert",
        tenant_env_id="t1",
        batch_operation_id="b1",
        environment={"applications": ["catalog"]},
        changeset={"v": 2},
        source_batch_operation_id="b0",
    )


def collect() -> tuple[list[tuple[str, str]], object]:
    lines: list[tuple[str, str]] = []
    lock = threading.Lock()

    def on_line(job: PlannedJob, line: str, stream: str) -> None:
        with lock:
            lines.append((stream, line))

    return lines, on_line


def test_a_bridge_runs_with_the_contracted_arguments_and_files(fake_python: str) -> None:
    settings = BridgeSettings(python=fake_python, kubeconfig="/k/config", prefix="acme.io")
    lines, on_line = collect()
    data = SubprocessBridgeLauncher(settings).launch(spec(), on_line=on_line).wait()  # type: ignore[arg-type]

    assert data["status"] == "succeeded"
    argv = data["argv"]
    for flag, value in [
        ("--namespace", "team-a"),
        ("--job", "schema"),
        ("--operation", "lifecycle.upsert"),
        ("--tenant-env-id", "t1"),
        ("--batch-operation-id", "b1"),
        ("--kubeconfig", "/k/config"),
        ("--prefix", "acme.io"),
        ("--source-batch-operation-id", "b0"),
    ]:
        assert argv[argv.index(flag) + 1] == value
    assert "catalog" in data["environment"]
    assert "v: 2" in data["changeset"]
    assert ("stdout", "hello from the pod") in lines
    assert ("stderr", "bridge: created pod p-1 (attempt 1)") in lines
    # The private files are gone with the bridge.
    assert not Path(argv[argv.index("--environment") + 1]).exists()


def test_terminate_sends_sigterm_and_the_bridge_reports_cancelled(fake_python: str) -> None:
    settings = BridgeSettings(python=fake_python, env={"FAKE_BRIDGE_MODE": "hang"})
    ready = threading.Event()

    def on_line(job: PlannedJob, line: str, stream: str) -> None:
        if line == "READY":
            ready.set()

    handle = SubprocessBridgeLauncher(settings).launch(spec(), on_line=on_line)
    assert ready.wait(10)
    handle.terminate()
    data = handle.wait()
    assert data["status"] == "cancelled"
    assert handle.process.returncode == 143


def test_a_bridge_that_dies_without_a_result_is_an_error(fake_python: str) -> None:
    settings = BridgeSettings(python=fake_python, env={"FAKE_BRIDGE_MODE": "crash"})
    _lines, on_line = collect()
    data = SubprocessBridgeLauncher(settings).launch(spec(), on_line=on_line).wait()  # type: ignore[arg-type]
    assert (data["status"], data["exitCode"], data["reason"]) == ("error", 9, "NoResult")
    assert "created pod p-1" in data["message"]


def test_discovery_reads_the_plan(fake_python: str) -> None:
    discovery = SubprocessDiscovery(BridgeSettings(python=fake_python, skip_invalid=True))
    plan = discovery.discover(
        operation="lifecycle.upsert", tenant_env_id="t1", environment={"applications": ["x"]}
    )
    assert plan.operation == "lifecycle.upsert"
    assert [job.key for job in plan.jobs] == ["a/b"]
    argv = discovery.command(
        operation="o.p", tenant_env_id="t", environment=Path("e"), output=Path("o")
    )
    assert "--skip-invalid" in argv


def test_discovery_failure_keeps_every_line_of_the_error(fake_python: str) -> None:
    settings = BridgeSettings(python=fake_python, env={"FAKE_BRIDGE_MODE": "invalid"})
    with pytest.raises(ContractError) as caught:
        SubprocessDiscovery(settings).discover(operation="x.y", tenant_env_id="t", environment={})
    text = str(caught.value)
    assert "1 Job(s) annotated for x.y are invalid" in text
    assert "Job a/b" in text
    assert text.endswith("(fix the Jobs)")


def test_discovery_that_cannot_start_is_a_lifecycle_error(tmp_path: Path) -> None:
    missing = tmp_path / "python"
    missing.write_text("#!/bin/sh\necho 'error: cannot reach the API' >&2\nexit 75\n")
    missing.chmod(0o755)
    with pytest.raises(LifecycleError, match=r"failed \(exit 75\): cannot reach the API"):
        SubprocessDiscovery(BridgeSettings(python=str(missing))).discover(
            operation="x.y", tenant_env_id="t", environment={}
        )


def test_a_bridge_deaf_to_sigterm_is_killed_and_its_pods_reaped(fake_python: str) -> None:
    settings = BridgeSettings(
        python=fake_python, env={"FAKE_BRIDGE_MODE": "deaf"}, terminate_grace_seconds=0.3
    )
    reaped: list[str] = []

    def reap(settings: BridgeSettings, spec: BridgeSpec) -> list[str]:
        reaped.append(spec.job.key)
        return ["lc-schema-1"]

    ready = threading.Event()
    lines: list[str] = []

    def on_line(job: PlannedJob, line: str, stream: str) -> None:
        lines.append(line)
        if line == "READY":
            ready.set()

    handle = SubprocessBridgeLauncher(settings, reap=reap).launch(spec(), on_line=on_line)
    assert ready.wait(10)
    handle.terminate()
    data = handle.wait()
    assert reaped == ["team-a/schema"]
    assert (data["status"], data["reason"]) == ("cancelled", "Terminated")
    assert "did not stop within 0.3s of SIGTERM" in data["message"]
    assert "deleted its pods: lc-schema-1" in data["message"]
    assert any(line.startswith("engine: the bridge did not stop") for line in lines)
