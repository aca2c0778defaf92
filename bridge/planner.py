"""The planner: participants + operation + tenant environment -> ordered waves.

A plan is what discovery hands to Argo (``withParam``) and to the local engine, and what
``tenantctl plan`` shows. It is deterministic: the same inputs give byte-identical JSON, so a
re-run of discovery after a restart fans out exactly the same nodes.

Rules:

* only participants that take part in ``operation`` are planned;
* the applications filter: a job with ``applications`` runs only when the tenant environment
  lists at least one of them; a job without runs always; with no environment at all (``None``)
  nothing is filtered (``tenantctl plan`` without ``--environment``);
* waves ascend; inside a wave jobs are ordered by namespace, then name;
* jobs filtered out by applications are listed under ``skipped`` so an operator can see why a
  job did not run; invalid jobs are carried as ``rejected`` with their errors.

The JSON keys ``operation``, ``waves[].wave``, ``waves[].jobs[].namespace/name`` and
``rejected[].namespace/name/errors`` are fixed: other tools rely on them. Per-job entries stay
small on purpose (Argo caps a step output at 256 kB; 2,000 jobs must fit).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .contract import DeletePolicy, OnFailure, Participant, operation_name_problem
from .errors import ContractError

# Argo's limit on a step's output parameter; discovery checks the plan against it.
MAX_PLAN_BYTES = 256 * 1024
# The WorkflowTemplate runs waves one after another by recursion (one template level per wave),
# and Argo's controller refuses a Workflow nested deeper than 100 levels ("Maximum recursion
# depth exceeded") part-way through, after earlier waves ran. Wave k's bridge runs at depth
# k + 4; the margin keeps room for retries and the exit handler. Wave numbers may still range
# over -1000..1000: what counts is how many distinct waves one plan has.
MAX_WAVES = 90


def plan_limits_problem(plan: Plan) -> str | None:
    """Why Argo cannot run ``plan`` (its size or its number of waves), or None."""
    size = plan_size(plan)
    if size > MAX_PLAN_BYTES:
        return (
            f"the plan of {plan.operation} is {size} bytes, more than Argo's {MAX_PLAN_BYTES}-byte "
            f"limit on a step output ({plan.job_count} jobs)"
        )
    if len(plan.waves) > MAX_WAVES:
        return (
            f"the plan of {plan.operation} has {len(plan.waves)} distinct waves, more than the "
            f"{MAX_WAVES} the WorkflowTemplate can nest on Argo (waves "
            f"{plan.waves[0].wave}..{plan.waves[-1].wave})"
        )
    return None


_NAME = {"type": "string", "minLength": 1}
# JSON Schema (draft 2020-12) of Plan.to_json(): the fixed keys other tools rely on. Extra keys
# may be added later (consumers must ignore unknown keys); these ones never change meaning.
PLAN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "tenant-lifecycle plan",
    "type": "object",
    "required": ["operation", "waves", "rejected"],
    "properties": {
        "operation": _NAME,
        "tenantEnvId": {"type": ["string", "null"]},
        "waves": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["wave", "jobs"],
                "properties": {
                    "wave": {"type": "integer"},
                    "jobs": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["namespace", "name", "wave", "onFailure", "deletePolicy"],
                            "properties": {
                                "namespace": _NAME,
                                "name": _NAME,
                                "wave": {"type": "integer"},
                                "onFailure": {"enum": [m.value for m in OnFailure]},
                                "deletePolicy": {"enum": [m.value for m in DeletePolicy]},
                            },
                        },
                    },
                },
            },
        },
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["namespace", "name", "errors"],
                "properties": {
                    "namespace": _NAME,
                    "name": _NAME,
                    "errors": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "skipped": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["namespace", "name", "reason"],
                "properties": {"namespace": _NAME, "name": _NAME, "reason": {"type": "string"}},
            },
        },
    },
}


@dataclass(frozen=True)
class Rejected:
    """A Job that meant to take part but does not satisfy the contract."""

    namespace: str
    name: str
    errors: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "errors": list(self.errors)}


@dataclass(frozen=True)
class Skipped:
    """A valid participant of the operation that the applications filter left out."""

    namespace: str
    name: str
    reason: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "reason": self.reason}


@dataclass(frozen=True)
class Wave:
    """One wave: its jobs run in parallel; the next wave starts when this one is done."""

    wave: int
    jobs: tuple[Participant, ...]


def _job_json(job: Participant) -> dict[str, Any]:
    # No "display" key (INTERFACES.md listed one): it repeats namespace/name and costs
    # 2*(len(namespace)+len(name)) bytes per job, which breaks the 256 kB budget at 2,000 jobs
    # with ordinary names (e.g. team-catalog/catalog-schema: 149 B/job with it, 110 B without).
    # Render "namespace/name" where it is shown instead.
    return {
        "namespace": job.namespace,
        "name": job.name,
        "wave": job.wave,
        "onFailure": job.on_failure.value,
        "deletePolicy": job.delete_policy.value,
    }


@dataclass(frozen=True)
class Plan:
    """The ordered waves of one operation (for one tenant, when ``tenant_env_id`` is set)."""

    operation: str
    waves: tuple[Wave, ...]
    rejected: tuple[Rejected, ...] = ()
    tenant_env_id: str | None = None
    skipped: tuple[Skipped, ...] = ()

    def jobs(self) -> list[Participant]:
        """Every planned job, wave by wave, in plan order."""
        return [job for wave in self.waves for job in wave.jobs]

    @property
    def job_count(self) -> int:
        return sum(len(wave.jobs) for wave in self.waves)

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "tenantEnvId": self.tenant_env_id,
            "waves": [
                {"wave": wave.wave, "jobs": [_job_json(job) for job in wave.jobs]}
                for wave in self.waves
            ],
            "rejected": [item.to_json() for item in self.rejected],
            "skipped": [item.to_json() for item in self.skipped],
        }

    def to_compact_json(self) -> str:
        """The exact text handed to Argo: no spaces, stable key order."""
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        """Rebuild a plan from :meth:`to_json` output (e.g. discovery's file).

        The JSON carries only what the engines need, so the participants come back with just
        this operation and the per-job keys in the JSON (other settings at their defaults).
        Raises :class:`ContractError` on a malformed document.
        """
        try:
            operation = str(data["operation"])
            waves = tuple(
                Wave(
                    wave=int(wave["wave"]),
                    jobs=tuple(
                        Participant(
                            namespace=str(job["namespace"]),
                            name=str(job["name"]),
                            operations=(operation,),
                            wave=int(job.get("wave", wave["wave"])),
                            on_failure=OnFailure(job.get("onFailure", OnFailure.ABORT.value)),
                            delete_policy=DeletePolicy(
                                job.get("deletePolicy", DeletePolicy.SUCCEEDED.value)
                            ),
                        )
                        for job in wave["jobs"]
                    ),
                )
                for wave in data["waves"]
            )
            rejected = tuple(
                Rejected(str(r["namespace"]), str(r["name"]), tuple(str(e) for e in r["errors"]))
                for r in data.get("rejected") or ()
            )
            skipped = tuple(
                Skipped(str(s["namespace"]), str(s["name"]), str(s.get("reason", "")))
                for s in data.get("skipped") or ()
            )
            tenant = data.get("tenantEnvId")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ContractError(
                f"malformed plan JSON: {exc!r}",
                hint="pass the output of `python -m bridge discover` or `tenantctl plan -o json`",
            ) from exc
        return cls(
            operation=operation,
            waves=waves,
            rejected=rejected,
            tenant_env_id=str(tenant) if tenant is not None else None,
            skipped=skipped,
        )


def environment_applications(environment: Mapping[str, Any] | None) -> list[str] | None:
    """The tenant environment's ``applications`` list; None when there is no environment.

    An environment without ``applications`` lists none: jobs with a filter do not run.
    """
    if environment is None:
        return None
    if not isinstance(environment, Mapping):
        raise ContractError(
            f"the tenant environment must be a mapping, not {type(environment).__name__}",
            hint="give e.g. {applications: [catalog, search]}",
        )
    applications = environment.get("applications")
    if applications is None:
        return []
    if not isinstance(applications, list) or not all(isinstance(a, str) for a in applications):
        raise ContractError(
            "tenantEnvironment.applications must be a list of application names",
            hint="give e.g. applications: [catalog, search]",
        )
    return list(applications)


def build_plan(
    participants: Iterable[Participant],
    *,
    operation: str,
    environment: Mapping[str, Any] | None = None,
    rejected: Iterable[Rejected] = (),
    tenant_env_id: str | None = None,
) -> Plan:
    """Plan ``operation``: filter, group by wave, order deterministically.

    Raises :class:`ContractError` for an invalid operation name, a malformed environment, or
    two participants with the same namespace/name.
    """
    problem = operation_name_problem(operation)
    if problem:
        raise ContractError(problem, hint="use e.g. lifecycle.upsert or <team>.<operation>")
    applications = environment_applications(environment)

    seen: set[str] = set()
    by_wave: dict[int, list[Participant]] = {}
    skipped: list[Skipped] = []
    for job in participants:
        if job.key in seen:
            raise ContractError(
                f"Job {job.key} is listed twice",
                hint="each namespace/name may appear once in a plan",
            )
        seen.add(job.key)
        if not job.takes_part_in(operation):
            continue
        if not job.runs_for(applications):
            listed = ", ".join(applications or ()) or "none"
            skipped.append(
                Skipped(
                    job.namespace,
                    job.name,
                    f"runs only for applications {', '.join(job.applications)}; "
                    f"the tenant environment lists {listed}",
                )
            )
            continue
        by_wave.setdefault(job.wave, []).append(job)

    waves = tuple(
        Wave(wave=number, jobs=tuple(sorted(jobs, key=lambda j: (j.namespace, j.name))))
        for number, jobs in sorted(by_wave.items())
    )
    return Plan(
        operation=operation,
        waves=waves,
        rejected=tuple(sorted(rejected, key=lambda r: (r.namespace, r.name))),
        tenant_env_id=tenant_env_id,
        skipped=tuple(sorted(skipped, key=lambda s: (s.namespace, s.name))),
    )


def plan_size(plan: Plan) -> int:
    """Bytes of the compact JSON (what counts against Argo's output limit)."""
    return len(plan.to_compact_json().encode("utf-8"))


def summarize(plan: Plan) -> str:
    """One line for logs: ``lifecycle.upsert: 3 waves, 7 jobs, 1 rejected, 2 skipped``."""
    parts = [f"{len(plan.waves)} waves", f"{plan.job_count} jobs"]
    if plan.rejected:
        parts.append(f"{len(plan.rejected)} rejected")
    if plan.skipped:
        parts.append(f"{len(plan.skipped)} skipped")
    return f"{plan.operation}: {', '.join(parts)}"


__all__: Sequence[str] = (
    "MAX_PLAN_BYTES",
    "MAX_WAVES",
    "PLAN_SCHEMA",
    "Plan",
    "Rejected",
    "Skipped",
    "Wave",
    "build_plan",
    "environment_applications",
    "plan_limits_problem",
    "plan_size",
    "summarize",
)
