"""A scripted :class:`orchestrator.fleet.TenantRunner` for tests of the fleet logic."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.fleet import TenantRequest
from orchestrator.outcome import CANCELLED, SUCCEEDED, RunOutcome


@dataclass(frozen=True)
class FakeScript:
    """What :class:`FakeTenantRunner` does for one tenant."""

    status: str = SUCCEEDED
    seconds: float = 0.0
    message: str = ""


class FakeTenantRunner:
    """A scripted runner for tests of the fleet logic (budget, canary, concurrency, resume):
    sleeps ``seconds`` (waking up at once on cancel) and returns the scripted status. Keeps
    the peak number of concurrent runs and the order of starts."""

    def __init__(
        self,
        script: Mapping[str, FakeScript] | None = None,
        *,
        default: FakeScript = FakeScript(),
        raises: Mapping[str, Exception] | None = None,
    ) -> None:
        self.script = dict(script or {})
        self.default = default
        self.raises = dict(raises or {})
        self.started: list[str] = []
        self.peak = 0
        self._running = 0
        self._lock = threading.Lock()

    def run(self, request: TenantRequest, *, cancel: threading.Event) -> RunOutcome:
        step = self.script.get(request.tenant.id, self.default)
        with self._lock:
            self.started.append(request.tenant.id)
            self._running += 1
            self.peak = max(self.peak, self._running)
        try:
            if request.tenant.id in self.raises:
                raise self.raises[request.tenant.id]
            if cancel.wait(step.seconds):
                return RunOutcome(CANCELLED, "interrupted")
            return RunOutcome(step.status, step.message or step.status)
        finally:
            with self._lock:
                self._running -= 1
