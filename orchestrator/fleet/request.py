"""What a fleet run is asked to do: its settings and failure budget, the parent and child batch
ids (a child id is derived from the parent, the tenant and the attempt, so a resumed run finds
it again), one tenant's request and the per-tenant runner seam (:class:`TenantRunner`).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.errors import UsageError
from orchestrator.fleet.inventory import Tenant
from orchestrator.outcome import RunOutcome

FLEET_SOURCE = "tenantctl-fleet"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


# -- ids and budget ------------------------------------------------------------------------


_BUDGET_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


@dataclass(frozen=True)
class FailureBudget:
    """How many failed tenants a run tolerates: an absolute count or a percentage of the
    tenants selected (rounded down: ``2%`` of 200 is 4, of 49 is 0)."""

    count: int | None = 0
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> FailureBudget:
        match = _BUDGET_RE.match(text)
        if match is None:
            raise UsageError(
                f"--max-failures {text!r} is neither a count nor a percentage",
                hint="write a whole number (5) or a percentage (2%)",
            )
        number, percent = match.groups()
        if percent:
            value = float(number)
            if value > 100:
                raise UsageError(f"--max-failures {text!r} is more than 100%")
            return cls(count=None, percent=value)
        if "." in number:
            raise UsageError(
                f"--max-failures {text!r}: a count must be a whole number",
                hint="write 5, or a percentage such as 2.5%",
            )
        return cls(count=int(number))

    def allowed(self, total: int) -> int:
        if self.percent is not None:
            return math.floor(total * self.percent / 100 + 1e-9)
        return self.count or 0

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else str(self.count)


@dataclass(frozen=True)
class FleetSettings:
    concurrency: int = 10
    canary: int = 0
    max_failures: FailureBudget = field(default_factory=FailureBudget)
    # How often the dispatcher wakes up to notice an interruption while waiting.
    poll_seconds: float = 0.1

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError(f"--concurrency {self.concurrency}: must be at least 1")
        if self.canary < 0:
            raise UsageError(f"--canary {self.canary}: must be 0 or more")


# -- the runner seam -----------------------------------------------------------------------


@dataclass(frozen=True)
class TenantRequest:
    """One tenant's request in a fleet run; fits the local engine's ``RequestLike``."""

    batch_operation_id: str
    parent_batch_operation_id: str
    tenant: Tenant
    operation: str
    changeset: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1
    source_batch_operation_id: str | None = None

    @property
    def tenant_env_id(self) -> str:
        return self.tenant.id

    @property
    def region(self) -> str | None:
        return self.tenant.region

    @property
    def environment(self) -> Mapping[str, Any]:
        return self.tenant.environment()


# A tenant's outcome is any run's outcome (status, message, jobs, Workflow).
TenantOutcome = RunOutcome


class TenantRunner(Protocol):
    """Runs one tenant's request to its end and says how it went. Must return promptly with
    ``cancelled`` once ``cancel`` is set. May raise: the fleet records the error."""

    def run(self, request: TenantRequest, *, cancel: threading.Event) -> TenantOutcome: ...
