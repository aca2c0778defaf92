"""The plan as the local engine reads it: waves of jobs, parsed from discovery's JSON.

Discovery (``python -m bridge discover``) emits one JSON document that both engines consume:
Argo fans it out with ``withParam``, the local engine walks it here. Reading the JSON -- rather
than re-planning in-process -- is what makes "one plan, two engines" true: the local engine
runs exactly the waves Argo would. The keys are fixed by INTERFACES.md; anything we do not use is
ignored so the planner can add fields without breaking us. The engine keeps its own small
view of a job (:class:`PlannedJob`) so its seam stays independent of the contract's classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.planner import Plan

ABORT = "abort"
CONTINUE = "continue"


@dataclass(frozen=True)
class PlannedJob:
    """One job of one wave: what the engine needs to launch its bridge and judge its failure."""

    namespace: str
    name: str
    wave: int = 0
    on_failure: str = ABORT
    delete_policy: str = "succeeded"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PlannedWave:
    wave: int
    jobs: tuple[PlannedJob, ...]


@dataclass(frozen=True)
class RejectedJob:
    """A Job discovery found but left out (contract problems), with why."""

    namespace: str
    name: str
    errors: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class FilteredJob:
    """A participant the applications filter left out for this tenant."""

    namespace: str
    name: str
    reason: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class EnginePlan:
    operation: str
    waves: tuple[PlannedWave, ...]
    rejected: tuple[RejectedJob, ...] = ()
    filtered: tuple[FilteredJob, ...] = ()
    tenant_env_id: str | None = None

    @property
    def jobs(self) -> tuple[PlannedJob, ...]:
        return tuple(job for wave in self.waves for job in wave.jobs)

    @classmethod
    def from_plan(cls, plan: Plan) -> EnginePlan:
        return cls(
            operation=plan.operation,
            waves=tuple(
                PlannedWave(
                    wave=wave.wave,
                    jobs=tuple(
                        PlannedJob(
                            namespace=job.namespace,
                            name=job.name,
                            wave=job.wave,
                            on_failure=str(job.on_failure.value),
                            delete_policy=str(job.delete_policy.value),
                        )
                        for job in wave.jobs
                    ),
                )
                for wave in sorted(plan.waves, key=lambda w: w.wave)
            ),
            rejected=tuple(RejectedJob(r.namespace, r.name, r.errors) for r in plan.rejected),
            filtered=tuple(FilteredJob(f.namespace, f.name, f.reason) for f in plan.skipped),
            tenant_env_id=plan.tenant_env_id,
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnginePlan:
        """Parse discovery's plan JSON with the planner's own parser (one plan, two engines).

        A malformed plan is a :class:`~bridge.errors.ContractError`.
        """
        return cls.from_plan(Plan.from_json(data))
