"""Fixtures of the bridge's integration tests: each module runs on both backends (``backend``:
the sandbox, and the real control plane with the node agent), a fresh namespace per test, helpers
to declare lifecycle Jobs and to run the bridge in-process or as `python -m bridge`.

A module whose tests inject faults (a sandbox feature: the real apiserver has no fault knobs)
overrides ``backend`` with the sandbox alone and says so.
"""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bridge.__main__ import main as bridge_cli
from bridge.contract import ContractSettings
from bridge.hooks import RunHooks
from bridge.kube import PODS, SECRETS, Kube, KubeSettings
from bridge.result import RunResult
from bridge.runner import Runner, RunRequest
from bridge.settings import BridgeSettings
from sandbox import Sandbox
from tests.fixtures.cluster import Backend, SandboxBackend

PREFIX = "tenant-lifecycle.dev"
FAST_KUBE = KubeSettings(max_retries=5, backoff_base=0.05, backoff_max=0.2, request_timeout=10)
FAST = BridgeSettings(
    contract=ContractSettings(),
    kube=FAST_KUBE,
    stuck_grace_seconds=1.0,
    unschedulable_grace_seconds=1.0,
    delete_grace_seconds=1,
    log_drain_timeout=5.0,
    log_reconnect_delay=0.05,
    watch_timeout_seconds=5,
)
# For `python -m bridge` subprocesses: the same fast settings through the environment.
FAST_ENV = {
    "BRIDGE_BACKOFF_BASE": "0.05",
    "BRIDGE_BACKOFF_MAX": "0.2",
    "BRIDGE_STUCK_GRACE": "1",
    "BRIDGE_UNSCHEDULABLE_GRACE": "1",
    "BRIDGE_DELETE_GRACE": "1",
    "BRIDGE_LOG_RECONNECT_DELAY": "0.05",
}
_counter = itertools.count(1)


@pytest.fixture(scope="module", params=["sandbox", "real"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def bridge_backend(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """The API the module's tests run against (each test has its own namespaces)."""
    if backend == "real":
        yield request.getfixturevalue("real_install")
        return
    with Sandbox(rbac=False, workdir=tmp_path_factory.mktemp("bridge-sandbox")) as sb:
        yield SandboxBackend(sb)


@dataclass
class BridgeEnv:
    """A test's view of the backend: admin client, a fresh opted-in namespace, helpers."""

    backend: Backend
    kube: Kube
    namespace: str
    tmp: Path
    kubeconfig: Path
    created: list[str] = field(default_factory=list)

    @property
    def sb(self) -> Sandbox:
        """The sandbox itself, for tests of sandbox-only features (fault injection)."""
        assert isinstance(self.backend, SandboxBackend), "this test needs the sandbox backend"
        return self.backend.sb

    def add_namespace(self, name: str, *, opted_in: bool = True) -> str:
        labels = {f"{PREFIX}/enabled": "true"} if opted_in else {}
        self.backend.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels},
                }
            ]
        )
        return name

    def add_job(
        self,
        name: str,
        script: str = "echo hello",
        *,
        namespace: str | None = None,
        operations: str | None = "lifecycle.upsert",
        label: bool = True,
        suspend: Any = True,
        backoff_limit: int | None = 0,
        deadline: int | None = None,
        pod_failure_policy: Mapping[str, Any] | None = None,
        annotations: Mapping[str, str] | None = None,
        image: str = "busybox:1.36",
        pod_spec: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        meta_annotations = dict(annotations or {})
        if operations is not None:
            meta_annotations[f"{PREFIX}/operations"] = operations
        spec: dict[str, Any] = {
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": dict(pod_spec)
                if pod_spec is not None
                else {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": image, "command": ["sh", "-c", script]}
                    ],
                },
            },
        }
        if suspend is not None:
            spec["suspend"] = suspend
        if backoff_limit is not None:
            spec["backoffLimit"] = backoff_limit
        if deadline is not None:
            spec["activeDeadlineSeconds"] = deadline
        if pod_failure_policy is not None:
            spec["podFailurePolicy"] = pod_failure_policy
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": namespace or self.namespace,
                "labels": {f"{PREFIX}/enabled": "true"} if label else {},
                "annotations": meta_annotations,
            },
            "spec": spec,
        }
        self.backend.apply([job])
        return job

    def request(self, job: str, **kwargs: Any) -> RunRequest:
        values: dict[str, Any] = {
            "namespace": self.namespace,
            "job": job,
            "operation": "lifecycle.upsert",
            "tenant_env_id": "t-799a",
            "batch_operation_id": f"batch-{self.namespace}-{job}",
        }
        values.update(kwargs)
        return RunRequest(**values)

    def run(
        self,
        job: str,
        *,
        settings: BridgeSettings = FAST,
        hooks: RunHooks | None = None,
        kube: Kube | None = None,
        **kwargs: Any,
    ) -> tuple[RunResult, list[str]]:
        """The bridge in-process: (result, stdout lines)."""
        out = io.StringIO()
        runner = Runner(
            kube or self.kube, self.request(job, **kwargs), settings=settings, hooks=hooks, out=out
        )
        result = runner.run()
        return result, out.getvalue().splitlines()

    def cli_args(self, command: str, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bridge",
            command,
            "--kubeconfig",
            str(self.kubeconfig),
            *args,
        ]

    def run_args(self, job: str, *extra: str, batch: str | None = None) -> list[str]:
        return self.cli_args(
            "run",
            "--namespace",
            self.namespace,
            "--job",
            job,
            "--operation",
            "lifecycle.upsert",
            "--tenant-env-id",
            "t-799a",
            "--batch-operation-id",
            batch or f"batch-{self.namespace}-{job}",
            *extra,
        )

    def cli_in_process(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m bridge <command>`` through click in this process (no interpreter start):
        for commands that install no signal handlers (discover, sweep)."""
        argv = [command, "--kubeconfig", str(self.kubeconfig), *args]
        result = CliRunner().invoke(bridge_cli, argv, env=FAST_ENV, catch_exceptions=False)
        return subprocess.CompletedProcess(argv, result.exit_code, result.stdout, result.stderr)

    def cli(self, argv: Sequence[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, env=cli_env(), check=False
        )

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return list(
            self.kube.list(
                PODS,
                namespace=namespace or self.namespace,
                label_selector=f"{PREFIX}/managed-by=bridge",
            )
        )

    def pods_gone(self, namespace: str | None = None, timeout: float = 30) -> bool:
        """True once the bridge's pods are gone: a real pod the bridge deleted stays listed
        through its graceful termination, a sandbox pod goes at once."""
        deadline = time.monotonic() + timeout
        while self.pods(namespace):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def secrets(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return list(
            self.kube.list(
                SECRETS,
                namespace=namespace or self.namespace,
                label_selector=f"{PREFIX}/managed-by=bridge",
            )
        )


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(FAST_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def admin_kube(backend: Backend) -> Kube:
    return Kube(
        settings=FAST_KUBE, host=backend.url, token=backend.admin_token, ca_file=backend.ca_file
    )


@pytest.fixture
def bridge_env(bridge_backend: Backend, tmp_path: Path) -> Iterator[BridgeEnv]:
    namespace = f"team-{next(_counter)}"
    kube = admin_kube(bridge_backend)
    env = BridgeEnv(
        backend=bridge_backend,
        kube=kube,
        namespace=namespace,
        tmp=tmp_path,
        kubeconfig=bridge_backend.kubeconfig(),
    )
    env.add_namespace(namespace)
    try:
        yield env
    finally:
        if isinstance(bridge_backend, SandboxBackend):
            bridge_backend.sb.faults.clear()
        kube.close()
