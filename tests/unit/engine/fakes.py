"""Small fakes at the local engine's own seam (PlanSource, BridgeLauncher)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.engine import BridgeSpec, EnginePlan, PlannedJob, PlannedWave
from orchestrator.engine.launcher import LineSink


def plan_of(operation: str, *jobs: tuple[str, int, str]) -> EnginePlan:
    """A plan from (``namespace/name``, wave, on-failure) triples."""
    waves: dict[int, list[PlannedJob]] = {}
    for key, wave, on_failure in jobs:
        namespace, name = key.split("/")
        waves.setdefault(wave, []).append(PlannedJob(namespace, name, wave, on_failure))
    return EnginePlan(
        operation=operation,
        waves=tuple(PlannedWave(w, tuple(waves[w])) for w in sorted(waves)),
    )


@dataclass
class FakePlanSource:
    plan: EnginePlan
    calls: list[dict[str, Any]] = field(default_factory=list)

    def discover(
        self, *, operation: str, tenant_env_id: str, environment: Mapping[str, Any]
    ) -> EnginePlan:
        self.calls.append(
            {"operation": operation, "tenant": tenant_env_id, "environment": environment}
        )
        return self.plan


@dataclass
class FakeJob:
    """How one fake bridge behaves: its status/exit code, log lines, and what it waits for."""

    status: str = "succeeded"
    exit_code: int = 0
    attempts: int = 1
    lines: tuple[str, ...] = ()
    seconds: float = 0.0
    gate: Callable[[], None] | None = None  # called before finishing (a barrier, an event)
    hang: bool = False  # run until terminated
    reason: str | None = None  # the result's reason, when not the status' usual one


class FakeBridge:
    def __init__(self, spec: BridgeSpec, job: FakeJob, launcher: FakeBridgeLauncher) -> None:
        self.spec = spec
        self.job = job
        self.launcher = launcher
        self.terminated = threading.Event()

    def wait(self) -> Mapping[str, Any]:
        launcher = self.launcher
        with launcher.lock:
            launcher.running += 1
            launcher.max_running = max(launcher.max_running, launcher.running)
            launcher.events.append(("start", self.spec.job.key, time.monotonic()))
        try:
            if self.job.gate is not None:
                self.job.gate()
            if self.job.hang:
                self.terminated.wait(30)
            else:
                self.terminated.wait(self.job.seconds)
        finally:
            with launcher.lock:
                launcher.running -= 1
                launcher.events.append(("finish", self.spec.job.key, time.monotonic()))
        if self.terminated.is_set():
            status, code, reason = "cancelled", 143, "Terminated"
        else:
            status, code = self.job.status, self.job.exit_code
            reason = self.job.reason or (
                "Completed" if status == "succeeded" else "BackoffLimitExceeded"
            )
        return {
            "namespace": self.spec.job.namespace,
            "job": self.spec.job.name,
            "operation": self.spec.operation,
            "tenantEnvId": self.spec.tenant_env_id,
            "batchOperationId": self.spec.batch_operation_id,
            "status": status,
            "exitCode": code,
            "reason": reason,
            "message": "",
            "attempts": [{"attempt": n + 1} for n in range(self.job.attempts)],
            "startedAt": "2026-01-01T00:00:00Z",
            "finishedAt": "2026-01-01T00:00:01Z",
            "durationSeconds": 1.0,
        }

    def terminate(self) -> None:
        self.launcher.terminated.append(self.spec.job.key)
        self.terminated.set()


@dataclass
class FakeBridgeLauncher:
    """Launches :class:`FakeBridge` objects scripted by job key (default: succeed at once)."""

    jobs: dict[str, FakeJob] = field(default_factory=dict)
    launched: list[BridgeSpec] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    events: list[tuple[str, str, float]] = field(default_factory=list)
    running: int = 0
    max_running: int = 0
    fail_launch: set[str] = field(default_factory=set)
    cleaned: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cleanup(self, spec: BridgeSpec) -> list[str]:
        """Delete what a bridge that exited 75 left (its pod); the names deleted."""
        self.cleaned.append(spec.job.key)
        return [f"lc-{spec.job.name}-1"]

    def launch(self, spec: BridgeSpec, *, on_line: LineSink) -> FakeBridge:
        if spec.job.key in self.fail_launch:
            raise OSError("no python here")
        self.launched.append(spec)
        job = self.jobs.get(spec.job.key, FakeJob())
        for line in job.lines:
            on_line(spec.job, line, "stdout")
        return FakeBridge(spec, job, self)

    def order(self, kind: str) -> list[str]:
        return [key for what, key, _ in self.events if what == kind]

    def first(self, kind: str, key: str) -> float:
        return next(t for what, k, t in self.events if what == kind and k == key)
