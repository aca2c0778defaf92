"""The thread launcher, the local engine's default (issue 21), at its seam: stand-in runners.

* every ``BRIDGE_*`` setting ``python -m bridge run`` reads reaches the bridge in a thread;
* a settings mistake ends the job as the process would (exit 2, no result);
* cancel goes through the runner; a bridge that ignores it is abandoned after the grace
  period, its pods deleted by the engine, the job ``cancelled`` -- and what the hung thread
  does later changes nothing.

The real bridges, pods and SIGINT are in ``tests/e2e/engine/test_engine_threads.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import click
import pytest
import yaml

from bridge.cli.run_command import run
from bridge.errors import UnavailableError, UsageError
from bridge.result import Status
from orchestrator.engine import (
    BridgeSettings,
    BridgeSpec,
    EngineSettings,
    PlannedJob,
    SubprocessBridgeLauncher,
    local_engine,
)
from orchestrator.engine.threads import ThreadBridgeLauncher

SPEC = BridgeSpec(
    job=PlannedJob("team-a", "schema"),
    operation="lifecycle.upsert",
    tenant_env_id="t1",
    batch_operation_id="b1",
    environment={"applications": ["catalog"]},
)

# Every BRIDGE_* option of `python -m bridge run`, set to something other than its default.
BRIDGE_ENV = {
    "BRIDGE_CONTEXT": "other",
    "BRIDGE_PREFIX": "example.org",
    "BRIDGE_LEGACY_KEY": "example.org/ops",
    "BRIDGE_MAX_RETRIES": "2",
    "BRIDGE_BACKOFF_BASE": "0.5",
    "BRIDGE_BACKOFF_MAX": "9",
    "BRIDGE_REQUEST_TIMEOUT": "11",
    "BRIDGE_WORKFLOW_NAMESPACE": "wf-ns",
    "BRIDGE_STORAGE_CONFIG": "/etc/storage.yaml",
    "BRIDGE_STUCK_GRACE": "7",
    "BRIDGE_UNSCHEDULABLE_GRACE": "8",
    "BRIDGE_DELETE_GRACE": "3",
    "BRIDGE_LOG_RECONNECT_DELAY": "0.25",
    "BRIDGE_SERVICE_ACCOUNT_DIR": "/elsewhere",
}
# Connection options the launcher itself passes (kubeconfig), or that switch to in-cluster.
CONNECTION_ENV = {"BRIDGE_KUBECONFIG", "BRIDGE_IN_CLUSTER"}


@dataclass
class FakeResult:
    status: Any
    reason: str
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "reason": self.reason, "exitCode": 0}


@dataclass
class StandIn:
    """What the launcher built, and a runner that finishes at once or hangs."""

    hang: bool = False
    ignores_cancel: bool = False
    built: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    cancels: list[bool] = field(default_factory=list)
    seen: dict[str, Any] = field(default_factory=dict)

    def __call__(self, kube: Any, setup: Any, hooks: Any, out: TextIO, emit: Any) -> Any:
        self.seen.update(kube=kube, setup=setup, hooks=hooks)
        stand_in = self

        class Runner:
            def cancel(self) -> None:
                stand_in.cancels.append(True)
                if not stand_in.ignores_cancel:
                    stand_in.release.set()

            def run(self) -> FakeResult:
                out.write("a line from the pod\n")
                emit("created pod lc-schema-1 (attempt 1)")
                if stand_in.hang:
                    stand_in.release.wait()
                if stand_in.cancels:
                    return FakeResult(Status.CANCELLED, "Cancelled")
                return FakeResult(Status.SUCCEEDED, "Completed")

        self.built.set()
        return Runner()


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    """Two contexts on addresses never contacted (the stand-in runner makes no call)."""
    path = tmp_path / "kubeconfig"
    clusters = {"main": "http://127.0.0.1:9", "other": "http://127.0.0.2:9"}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": n, "cluster": {"server": u}} for n, u in clusters.items()],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": n, "context": {"cluster": n, "user": "u"}} for n in clusters],
                "current-context": "main",
            }
        )
    )
    return str(path)


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, job: PlannedJob, line: str, stream: str) -> None:
        self.lines.append((stream, line))


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    runner = StandIn()
    yield runner
    runner.release.set()  # never leave a hung thread behind the test


def test_every_bridge_setting_reaches_the_bridge_in_a_thread(
    kubeconfig: str, stand_in: StandIn
) -> None:
    # The test covers every BRIDGE_* option `python -m bridge run` has.
    envvars = {p.envvar for p in run.params if isinstance(p, click.Option) and p.envvar}
    assert envvars == set(BRIDGE_ENV) | CONNECTION_ENV
    settings = BridgeSettings(kubeconfig=kubeconfig, env=BRIDGE_ENV)
    result = ThreadBridgeLauncher(settings, runner_factory=stand_in).launch(SPEC, on_line=Lines())
    assert result.wait()["status"] == "succeeded"
    setup = stand_in.seen["setup"]
    bridge, kube = setup.settings, setup.settings.kube
    assert (bridge.contract.prefix, bridge.contract.legacy_key) == (
        "example.org",
        "example.org/ops",
    )
    assert (kube.context, kube.max_retries, kube.backoff_base, kube.backoff_max) == (
        "other",
        2,
        0.5,
        9.0,
    )
    assert (kube.request_timeout, kube.service_account_dir) == (11.0, "/elsewhere")
    assert stand_in.seen["kube"].host == "http://127.0.0.2:9"  # the context was used
    assert bridge.stuck_grace_seconds == 7.0
    assert bridge.unschedulable_grace_seconds == 8.0
    assert bridge.delete_grace_seconds == 3
    assert bridge.log_reconnect_delay == 0.25
    assert setup.storage_config == "/etc/storage.yaml"
    request = setup.request
    assert (request.namespace, request.job, request.batch_operation_id) == (
        "team-a",
        "schema",
        "b1",
    )
    assert request.workflow_namespace == "wf-ns"
    assert request.environment == {"applications": ["catalog"]}


def test_the_launchers_own_arguments_win_over_the_environment(
    kubeconfig: str, stand_in: StandIn
) -> None:
    env = {"BRIDGE_KUBECONFIG": "/nonexistent", "BRIDGE_PREFIX": "example.org"}
    settings = BridgeSettings(kubeconfig=kubeconfig, prefix="mine.dev", env=env)
    ThreadBridgeLauncher(settings, runner_factory=stand_in).launch(SPEC, on_line=Lines()).wait()
    setup = stand_in.seen["setup"]
    assert setup.settings.kube.kubeconfig == kubeconfig
    assert setup.settings.contract.prefix == "mine.dev"


def test_a_settings_mistake_ends_the_job_as_the_process_would(
    kubeconfig: str, stand_in: StandIn
) -> None:
    settings = BridgeSettings(kubeconfig=kubeconfig, env={"BRIDGE_STUCK_GRACE": "-1"})
    lines = Lines()
    result = ThreadBridgeLauncher(settings, runner_factory=stand_in).launch(SPEC, on_line=lines)
    data = result.wait()
    assert (data["status"], data["exitCode"], data["reason"]) == ("error", 2, "NoResult")
    assert "--stuck-grace" in data["message"]
    assert not stand_in.built.is_set()  # no bridge ran
    assert any(stream == "stderr" and "--stuck-grace" in line for stream, line in lines.lines)


def test_cancel_goes_through_the_runner_and_its_result_stands(
    kubeconfig: str, stand_in: StandIn
) -> None:
    stand_in.hang = True
    reaped: list[BridgeSpec] = []

    def reap(settings: BridgeSettings, spec: BridgeSpec) -> list[str]:
        reaped.append(spec)
        return []

    launcher = ThreadBridgeLauncher(
        BridgeSettings(kubeconfig=kubeconfig), reap=reap, runner_factory=stand_in
    )
    handle = launcher.launch(SPEC, on_line=Lines())
    assert stand_in.built.wait(30)
    handle.terminate()
    data = handle.wait()
    assert (data["status"], data["reason"]) == ("cancelled", "Cancelled")
    assert stand_in.cancels == [True]
    assert reaped == []  # the bridge deleted its own pod


def test_a_hung_bridge_is_abandoned_and_its_pods_deleted_by_the_engine(
    kubeconfig: str, stand_in: StandIn
) -> None:
    stand_in.hang = True
    stand_in.ignores_cancel = True
    reaped: list[BridgeSpec] = []

    def reap(settings: BridgeSettings, spec: BridgeSpec) -> list[str]:
        reaped.append(spec)
        return ["lc-schema-b1-1"]

    settings = BridgeSettings(kubeconfig=kubeconfig, terminate_grace_seconds=0.05)
    lines = Lines()
    handle = ThreadBridgeLauncher(settings, reap=reap, runner_factory=stand_in).launch(
        SPEC, on_line=lines
    )
    assert stand_in.built.wait(30)
    handle.terminate()
    data = handle.wait()
    assert stand_in.cancels == [True]  # asked first, through the runner
    assert reaped == [SPEC]
    assert (data["status"], data["reason"], data["exitCode"]) == ("cancelled", "Terminated", 143)
    assert "did not stop within 0.05s" in data["message"]
    assert "the engine deleted its pods: lc-schema-b1-1" in data["message"]
    assert ("engine", f"engine: {data['message']}") in lines.lines
    # The hung thread ends later: its result and output change nothing.
    seen = list(lines.lines)
    stand_in.release.set()
    thread = next(t for t in threading.enumerate() if t.name == "bridge-team-a/schema")
    thread.join(30)
    assert not thread.is_alive()
    assert handle.wait() == data
    assert lines.lines == seen


def test_a_failed_pod_deletion_is_said_in_the_result(kubeconfig: str, stand_in: StandIn) -> None:
    stand_in.hang = True
    stand_in.ignores_cancel = True

    def reap(settings: BridgeSettings, spec: BridgeSpec) -> list[str]:
        raise UnavailableError("list pods team-a: 503", status=503)

    settings = BridgeSettings(kubeconfig=kubeconfig, terminate_grace_seconds=0.01)
    handle = ThreadBridgeLauncher(settings, reap=reap, runner_factory=stand_in).launch(
        SPEC, on_line=Lines()
    )
    assert stand_in.built.wait(30)
    handle.terminate()
    data: Mapping[str, Any] = handle.wait()
    assert data["status"] == "cancelled"
    assert "deleting its pods failed: list pods team-a: 503" in data["message"]
    assert "python -m bridge sweep" in data["message"]


def test_storage_settings_from_the_launchers_environment_reach_the_hooks(
    kubeconfig: str, stand_in: StandIn
) -> None:
    """``BRIDGE_STORAGE_*`` are read by the storage hooks, not by click: they come from the
    subprocess's environment too (``BridgeSettings.env``, as the demo sets them)."""
    from bridge.storage_hooks import StorageHooks

    env = {
        "BRIDGE_STORAGE_BUCKET": "tenant-exports",
        "BRIDGE_STORAGE_REGION": "eu-west-1",
        "BRIDGE_STORAGE_ROLE_ARN": "arn:aws:iam::123456789012:role/tenant-lifecycle-jobs",
    }
    spec = BridgeSpec(
        job=PlannedJob("team-a", "schema"),
        operation="lifecycle.backup",
        tenant_env_id="t1",
        batch_operation_id="b1",
    )
    settings = BridgeSettings(kubeconfig=kubeconfig, env=env)
    data = ThreadBridgeLauncher(settings, runner_factory=stand_in).launch(spec, on_line=Lines())
    assert data.wait()["status"] == "succeeded", data.wait()
    hooks = stand_in.seen["hooks"]
    assert isinstance(hooks, StorageHooks)
    assert hooks.settings.bucket == "tenant-exports"


def test_tenantctl_launcher_chooses_where_no_one_passes_a_launcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``tenantctl listen --engine local``, the demo and migrations take the default launcher;
    ``TENANTCTL_LAUNCHER=process`` brings back one ``python -m bridge run`` per bridge."""
    monkeypatch.delenv("TENANTCTL_LAUNCHER", raising=False)
    assert EngineSettings().launcher == "thread"
    assert isinstance(local_engine().launcher, ThreadBridgeLauncher)
    monkeypatch.setenv("TENANTCTL_LAUNCHER", "process")
    assert EngineSettings().launcher == "process"
    assert isinstance(local_engine().launcher, SubprocessBridgeLauncher)
    monkeypatch.setenv("TENANTCTL_LAUNCHER", "fork")
    with pytest.raises(UsageError, match="TENANTCTL_LAUNCHER"):
        EngineSettings()
