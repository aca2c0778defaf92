"""How the local engine runs: parallelism, the tenant lock's wait, reruns of infrastructure
errors, and which launcher starts the bridges."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from bridge.errors import UsageError

LAUNCHERS = ("process", "thread")
# Chooses the launcher wherever no one passes one (tenantctl listen --engine local, the demo,
# migrations; `tenantctl run`/`fleet --launcher` read it too): "thread" when unset.
LAUNCHER_ENV = "TENANTCTL_LAUNCHER"


def default_launcher() -> str:
    return os.environ.get(LAUNCHER_ENV) or "thread"


@dataclass(frozen=True)
class EngineSettings:
    parallelism: int = 4
    # How long a request for a busy tenant waits before it is refused (0: refuse at once).
    lock_wait_seconds: float = 0.0
    # How often the waiting thread looks at the cancel flag (and lets Ctrl-C in).
    poll_seconds: float = 0.1
    # A bridge exiting 75 (infrastructure error) is rerun, like Argo's retryStrategy does
    # (there: 4 retries from 15s); locally the backoff starts shorter, for people waiting.
    infra_retries: int = 4
    infra_backoff_seconds: float = 2.0
    infra_backoff_cap: float = 30.0
    # How local_engine() runs each bridge: "thread" (the default: the same Runner with the same
    # BRIDGE_* settings in a thread, no interpreter start per bridge; a watchdog deletes the
    # pods of a bridge that does not stop when cancelled -- orchestrator.engine.threads) or
    # "process" (a `python -m bridge run` subprocess, as in Argo: SIGTERM, SIGKILL, isolation).
    launcher: str = field(default_factory=default_launcher)

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise UsageError(
                f"launcher must be one of {', '.join(LAUNCHERS)}, not {self.launcher!r}",
                hint=f"pass --launcher process or --launcher thread (or set {LAUNCHER_ENV})",
            )
        if self.parallelism < 1:
            raise UsageError(
                f"parallelism must be at least 1, not {self.parallelism}",
                hint="pass --parallelism 1 or more",
            )
