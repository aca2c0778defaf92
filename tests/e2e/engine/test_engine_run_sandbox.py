"""``tenantctl run --engine local`` against the sandbox: the real CLI, discovery, bridges, pods.

One sandbox for the module; each test uses its own team operation (``e2e.waves``,
``e2e.abort``, ...) so discovery in one test never plans another test's Jobs. The Jobs run a
small recorder program that writes, per job and batch, when it started and ended into a
hostPath directory: wave order is proven from those timestamps, not from our own output.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.errors import NotFoundError
from bridge.kube import PODS, WORKFLOWS, Kube
from orchestrator.engine import BridgeSettings, BridgeSpec, PlannedJob
from orchestrator.engine.bridges import SubprocessBridgeLauncher, delete_run_pods
from sandbox import Sandbox

TENANTCTL = str(Path(sys.executable).parent / "tenantctl")
REPO = Path(__file__).resolve().parents[3]
PREFIX = "tenant-lifecycle.dev"
NAMESPACES = ("e2e-a", "e2e-b", "e2e-c")
# Where deploy/base installs the WorkflowTemplate, and where `run --engine argo` submits.
WORKFLOW_NAMESPACE = "tenant-lifecycle"

RECORDER = r"""
import json, os, sys, time
state, job = os.environ["STATE"], os.environ["JOB"]
behaviour = os.environ.get("BEHAVIOUR", "ok")
batch = os.environ["LIFECYCLE_BATCH_OPERATION_ID"]
start = time.time()
print(f"{job} starting for tenant {os.environ['LIFECYCLE_TENANT_ENV_ID']}", flush=True)
if behaviour == "hang":
    open(os.path.join(state, f"{job}.{batch}.started"), "w").close()
    time.sleep(120)
time.sleep(0.2)
with open(os.path.join(state, f"{job}.{batch}.json"), "w") as out:
    json.dump({"start": start, "end": time.time()}, out)
if behaviour == "fail":
    print("failing on purpose", flush=True)
    sys.exit(3)
print(f"{job} done", flush=True)
"""


def lifecycle_job(
    namespace: str,
    name: str,
    *,
    operation: str,
    wave: int,
    state: Path,
    behaviour: str = "ok",
    on_failure: str | None = None,
) -> dict[str, Any]:
    annotations = {f"{PREFIX}/operations": operation, f"{PREFIX}/wave": str(wave)}
    if on_failure:
        annotations[f"{PREFIX}/on-failure"] = on_failure
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
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "main",
                            "image": "python:3.11-slim",
                            "command": ["python3", "-c", RECORDER],
                            "env": [
                                {"name": "STATE", "value": str(state)},
                                {"name": "JOB", "value": f"{namespace}.{name}"},
                                {"name": "BEHAVIOUR", "value": behaviour},
                            ],
                            "volumeMounts": [{"name": "state", "mountPath": str(state)}],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "state",
                            "hostPath": {"path": str(state), "type": "DirectoryOrCreate"},
                        }
                    ],
                }
            },
        },
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Path, str]]:
    """The sandbox with three opted-in team namespaces and every test's Jobs."""
    root = tmp_path_factory.mktemp("engine-run")
    state = root / "state"
    state.mkdir()
    sandbox = Sandbox(rbac=False, workdir=root / "sandbox").start()
    try:
        objects: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {f"{PREFIX}/enabled": "true"}},
            }
            for ns in NAMESPACES
        ]
        job = lifecycle_job
        objects += [
            # e2e.waves: -1 -> 0 (two jobs) -> 1
            job("e2e-a", "first", operation="e2e.waves", wave=-1, state=state),
            job("e2e-a", "middle", operation="e2e.waves", wave=0, state=state),
            job("e2e-b", "middle", operation="e2e.waves", wave=0, state=state),
            job("e2e-c", "last", operation="e2e.waves", wave=1, state=state),
            # e2e.failures: wave 0 a failing continue job (wave 1 still runs), wave 1 a
            # failing abort job (wave 2 does not)
            job(
                "e2e-a",
                "best-effort",
                operation="e2e.failures",
                wave=0,
                state=state,
                behaviour="fail",
                on_failure="continue",
            ),
            job("e2e-b", "sibling", operation="e2e.failures", wave=0, state=state),
            job("e2e-a", "breaks", operation="e2e.failures", wave=1, state=state, behaviour="fail"),
            job("e2e-c", "after-continue", operation="e2e.failures", wave=1, state=state),
            job("e2e-c", "after", operation="e2e.failures", wave=2, state=state),
            # e2e.cancel: a job that runs until cancelled, and one after it
            job("e2e-a", "slow", operation="e2e.cancel", wave=0, state=state, behaviour="hang"),
            job("e2e-c", "never", operation="e2e.cancel", wave=1, state=state),
        ]
        sandbox.apply(objects)
        yield sandbox, state, str(sandbox.kubeconfig_path())
    finally:
        sandbox.stop()


def tenantctl(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TENANTCTL, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "TERM": "dumb"},
    )


def install_workflow_template(sandbox: Sandbox) -> None:
    """The install's namespace and the rendered WorkflowTemplate: `run --engine argo` checks the
    template exists before it submits (the sandbox has no Argo controller to run it)."""
    rendered = yaml.safe_load(
        (REPO / "workflows" / "rendered" / "workflowtemplate.yaml").read_text()
    )
    assert rendered["metadata"]["namespace"] == WORKFLOW_NAMESPACE
    sandbox.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": WORKFLOW_NAMESPACE}},
            rendered,
        ]
    )


def recorded(state: Path, job: str, batch: str) -> dict[str, float]:
    data: dict[str, float] = json.loads((state / f"{job}.{batch}.json").read_text())
    return data


def test_waves_run_in_order_proven_by_the_jobs_timestamps(
    world: tuple[Sandbox, Path, str],
) -> None:
    _, state, kubeconfig = world
    batch = "e2e-waves-1"
    done = tenantctl(
        "run",
        "e2e.waves",
        "--tenant-env-id",
        "t-1",
        "--batch-operation-id",
        batch,
        "--kubeconfig",
        kubeconfig,
        "--output",
        "json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # The --output json document is stable: the result event's data plus the local extras.
    assert list(result) == [
        "operation", "tenantEnvId", "region", "status", "jobs", "workflow", "startedAt",
        "finishedAt", "batchOperationId", "engine", "durationSeconds", "abortedBy",
        "rejected", "errors",
    ]  # fmt: skip
    assert result["status"] == "succeeded"
    assert {"namespace", "job", "wave", "status", "exitCode", "reason", "attempts"} <= set(
        result["jobs"][0]
    )
    assert [(j["wave"], j["namespace"], j["job"]) for j in result["jobs"]] == [
        (-1, "e2e-a", "first"),
        (0, "e2e-a", "middle"),
        (0, "e2e-b", "middle"),
        (1, "e2e-c", "last"),
    ]
    first = recorded(state, "e2e-a.first", batch)
    middles = [recorded(state, f"{ns}.middle", batch) for ns in ("e2e-a", "e2e-b")]
    last = recorded(state, "e2e-c.last", batch)
    assert first["end"] <= min(m["start"] for m in middles)
    assert max(m["end"] for m in middles) <= last["start"]
    # The live view went to stderr (stdout is the JSON document), logs prefixed by job.
    assert "[e2e-a/first] e2e-a.first starting for tenant t-1" in done.stderr
    assert "wave -1: 1 job" in done.stderr
    assert "e2e.waves for tenant t-1: SUCCEEDED" in done.stderr


@pytest.fixture(scope="module")
def failures_run(world: tuple[Sandbox, Path, str]) -> tuple[subprocess.CompletedProcess[str], str]:
    """One run of e2e.failures: wave 0 has a failing continue job, wave 1 a failing abort job."""
    _, _, kubeconfig = world
    batch = "e2e-failures-1"
    done = tenantctl(
        "run", "e2e.failures", "--tenant-env-id", "t-1", "--batch-operation-id", batch,
        "--kubeconfig", kubeconfig, "--logs", "failed",
    )  # fmt: skip
    return done, batch


def test_a_failed_continue_job_lets_later_waves_run(
    world: tuple[Sandbox, Path, str], failures_run: tuple[subprocess.CompletedProcess[str], str]
) -> None:
    _, state, _ = world
    done, batch = failures_run
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "e2e-a/best-effort: failed: exit 3" in out
    assert "e2e-b/sibling: succeeded" in out  # its wave ran to the end
    # Wave 1 ran after the continue job failed in wave 0, as its timestamps show.
    assert "e2e-c/after-continue: succeeded" in out
    after = recorded(state, "e2e-c.after-continue", batch)
    assert recorded(state, "e2e-a.best-effort", batch)["end"] <= after["start"]
    assert "e2e.failures for tenant t-1: FAILED" in out
    # --logs failed: the failed jobs' logs are shown, the succeeded ones' are not.
    assert "[e2e-a/best-effort] failing on purpose" in out
    assert "[e2e-b/sibling]" not in out


def test_a_failed_abort_job_stops_later_waves(
    world: tuple[Sandbox, Path, str], failures_run: tuple[subprocess.CompletedProcess[str], str]
) -> None:
    _, state, _ = world
    done, batch = failures_run
    out = done.stdout
    assert "[e2e-a/breaks] failing on purpose" in out
    assert "e2e-a/breaks: failed: exit 3" in out
    assert "e2e-c/after (wave 2): skipped" in out
    assert "later waves not started because e2e-a/breaks failed (on-failure abort)" in out
    assert re.search(r"^2 +e2e-c/after +skipped +0 +- +- +WaveAborted$", out, re.M)
    assert not (state / f"e2e-c.after.{batch}.json").exists()


def test_sigint_cancels_the_run_and_deletes_its_pods(world: tuple[Sandbox, Path, str]) -> None:
    sandbox, state, kubeconfig = world
    batch = "e2e-cancel-1"
    started = state / f"e2e-a.slow.{batch}.started"
    process = subprocess.Popen(
        [
            TENANTCTL,
            "run",
            "e2e.cancel",
            "--tenant-env-id",
            "t-1",
            "--batch-operation-id",
            batch,
            "--kubeconfig",
            kubeconfig,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TERM": "dumb"},
    )
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
    assert "cancelling: every running bridge deletes its pod" in out
    assert "e2e-a/slow: cancelled" in out
    assert "e2e-c/never (wave 1): skipped - not started: the run was cancelled" in out
    assert "e2e.cancel for tenant t-1: CANCELLED" in out
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


def test_argo_engine_submits_a_workflow_and_prints_its_link(
    world: tuple[Sandbox, Path, str],
) -> None:
    sandbox, _, kubeconfig = world
    install_workflow_template(sandbox)
    done = tenantctl(
        "run",
        "lifecycle.upsert",
        "--tenant-env-id",
        "t-9",
        "--engine",
        "argo",
        "--batch-operation-id",
        "e2e-argo-1",
        "--kubeconfig",
        kubeconfig,
        "--argo-ui-url",
        "https://argo.example.com/",
    )
    assert done.returncode == 0, done.stderr
    assert "workflow lc-e2e-argo-1 submitted in namespace tenant-lifecycle" in done.stdout
    assert (
        "Argo UI: https://argo.example.com/workflows/tenant-lifecycle/lc-e2e-argo-1" in done.stdout
    )
    workflow = sandbox.get(
        ("argoproj.io/v1alpha1", "Workflow"), "lc-e2e-argo-1", WORKFLOW_NAMESPACE
    )
    assert workflow is not None
    assert workflow["spec"]["workflowTemplateRef"]["name"] == "tenant-lifecycle"
    again = tenantctl(
        "run",
        "lifecycle.upsert",
        "--tenant-env-id",
        "t-9",
        "--engine",
        "argo",
        "--batch-operation-id",
        "e2e-argo-1",
        "--kubeconfig",
        kubeconfig,
        "-o",
        "json",
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "duplicate"


def test_argo_wait_follows_the_workflow_to_its_end(world: tuple[Sandbox, Path, str]) -> None:
    sandbox, _, kubeconfig = world
    install_workflow_template(sandbox)
    process = subprocess.Popen(
        [
            TENANTCTL, "run", "lifecycle.upsert", "--tenant-env-id", "t-9", "--engine", "argo",
            "--batch-operation-id", "e2e-argo-2", "--kubeconfig", kubeconfig, "--wait",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        with Kube(host=sandbox.url, token=sandbox.admin_token) as kube:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    kube.get(WORKFLOWS, "lc-e2e-argo-2", namespace=WORKFLOW_NAMESPACE)
                    break
                except NotFoundError:
                    time.sleep(0.1)
            # What Argo's controller writes (Workflows have no status subresource).
            kube.patch(
                WORKFLOWS,
                "lc-e2e-argo-2",
                {
                    "status": {
                        "phase": "Failed",
                        "nodes": {
                            "n1": {
                                "id": "n1",
                                "type": "Pod",
                                "displayName": "abort-on-failure(0:team-a/schema)",
                                "phase": "Failed",
                                "message": "Error (exit code 3)",
                                "startedAt": "2026-01-01T00:00:00Z",
                            }
                        },
                    }
                },
                namespace=WORKFLOW_NAMESPACE,
            )
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, out + err
    assert "workflow lc-e2e-argo-2 submitted in namespace tenant-lifecycle" in out
    assert "  abort-on-failure(0:team-a/schema): Failed - Error (exit code 3)" in out
    assert "workflow lc-e2e-argo-2: Failed" in out


def test_the_pods_of_a_killed_bridge_are_deleted_by_the_engine(
    world: tuple[Sandbox, Path, str],
) -> None:
    """The safety net behind cancel: a bridge that had to be SIGKILLed leaves its pod; the
    engine finds it by the bridge's own run labels and deletes it."""
    sandbox, state, kubeconfig = world
    batch = "e2e-reap-1"
    settings = BridgeSettings(kubeconfig=kubeconfig)
    spec = BridgeSpec(
        job=PlannedJob("e2e-a", "slow"),
        operation="e2e.cancel",
        tenant_env_id="t-1",
        batch_operation_id=batch,
    )
    handle = SubprocessBridgeLauncher(settings).launch(spec, on_line=lambda *_: None)
    started = state / f"e2e-a.slow.{batch}.started"
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started.exists(), "the slow job's pod never started"
    finally:
        handle.process.kill()
        handle.wait()
    deleted = delete_run_pods(settings, spec)
    assert len(deleted) == 1
    assert deleted[0].startswith("lc-slow-")
    with Kube(host=sandbox.url, token=sandbox.admin_token) as kube:
        left = list(kube.list(PODS, label_selector=f"{PREFIX}/batch={batch}"))
    assert [p["metadata"]["name"] for p in left if not p["metadata"].get("deletionTimestamp")] == []
    deadline = time.monotonic() + 10
    while sandbox.pod_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sandbox.pod_pids() == []
