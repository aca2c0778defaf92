"""Discovery: which Jobs take part in an operation, in which waves.

Two server-side label-selected LISTs, never a scan of all Jobs: the opted-in Namespaces
(``<prefix>/enabled=true``), then the Jobs with the same label across the cluster (paginated),
kept when their namespace is opted in; an account that may only list Jobs per namespace falls
back to one such LIST in each opted-in namespace.
The label is what makes a Job discoverable: a Job annotated for an operation but missing the
label cannot be found by the selector, and a cluster-wide scan to catch it would not scale to
thousands of namespaces -- ``tenantctl validate`` reports the missing label before deploy.

Each Job found is checked with the contract. One that takes part in the operation (or whose
operations cannot even be read) but is invalid or not suspended *fails* discovery, naming it:
silently skipping a team's step would lose that tenant's data. ``skip_invalid`` proceeds and
lists it under ``rejected``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.contract import (
    ContractSettings,
    Participant,
    Problem,
    check_job,
    is_namespace_opted_in,
)
from bridge.errors import ContractError, ForbiddenError
from bridge.kube import JOBS, NAMESPACES, Kube
from bridge.planner import Plan, Rejected, build_plan, plan_limits_problem


@dataclass(frozen=True)
class Discovery:
    """What discovery found: the plan, and every invalid Job with its problems."""

    plan: Plan
    namespaces: tuple[str, ...]
    jobs_seen: int
    invalid: tuple[Rejected, ...] = ()
    ignored_invalid: tuple[Rejected, ...] = field(default=())  # invalid, other operations only


def annotated_operations(job: Mapping[str, Any], settings: ContractSettings) -> set[str] | None:
    """The operations a Job's annotations name, read leniently; None when there is no list."""
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    if not isinstance(annotations, Mapping):
        return None
    found: set[str] | None = None
    for key in (settings.operations_key, settings.legacy_key):
        if key and isinstance(annotations.get(key), str):
            found = (found or set()) | {
                item.strip() for item in annotations[key].split(",") if item.strip()
            }
    return found


def discover(
    kube: Kube,
    *,
    operation: str,
    settings: ContractSettings,
    environment: Mapping[str, Any] | None = None,
    tenant_env_id: str | None = None,
    skip_invalid: bool = False,
    page_size: int = 500,
) -> Discovery:
    """List, check and plan. Raises ContractError naming every invalid participant unless
    ``skip_invalid``."""
    selector = settings.label_selector()
    namespaces = sorted(
        str(ns["metadata"]["name"])
        for ns in kube.list(NAMESPACES, label_selector=selector, page_size=page_size)
        # The selector already says so; re-check in case a server ignores selectors.
        if is_namespace_opted_in(ns, settings=settings)
    )
    participants: list[Participant] = []
    invalid: list[Rejected] = []
    ignored: list[Rejected] = []
    seen = 0
    for namespace, job in _lifecycle_jobs(kube, namespaces, selector=selector, page_size=page_size):
        seen += 1
        participant, problems = check_job(job, settings=settings, source="cluster")
        if participant is not None:
            participants.append(participant)
            continue
        if not problems:
            continue  # not a participant at all (e.g. enabled: "false")
        meta = job.get("metadata") or {}
        rejected = Rejected(
            namespace=str(meta.get("namespace") or namespace),
            name=str(meta.get("name") or "<unnamed>"),
            errors=tuple(_describe(p) for p in problems),
        )
        operations = annotated_operations(job, settings)
        # Unreadable operations: it may be meant for this operation, so count it.
        if operations is None or operation in operations:
            invalid.append(rejected)
        else:
            ignored.append(rejected)
    if invalid and not skip_invalid:
        lines = "\n".join(
            f"  Job {r.namespace}/{r.name}:\n" + "\n".join(f"    - {e}" for e in r.errors)
            for r in invalid
        )
        raise ContractError(
            f"{len(invalid)} Job(s) annotated for {operation} are invalid:\n{lines}",
            hint="fix the Jobs (tenantctl validate), or pass --skip-invalid to run without them",
        )
    plan = build_plan(
        participants,
        operation=operation,
        environment=environment,
        rejected=invalid,
        tenant_env_id=tenant_env_id,
    )
    check_plan_limits(plan)
    return Discovery(
        plan=plan,
        namespaces=tuple(namespaces),
        jobs_seen=seen,
        invalid=tuple(invalid),
        ignored_invalid=tuple(ignored),
    )


def _lifecycle_jobs(
    kube: Kube, namespaces: list[str], *, selector: str, page_size: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The labelled Jobs of the opted-in namespaces, as (namespace, job).

    One cluster-wide, label-selected LIST costs as many requests as the matching Jobs need
    pages, where one LIST per namespace costs at least one request per opted-in namespace (2,000
    of them in the discovery benchmark: 8x the floor). A discovery account bound only per
    namespace gets 403 on the cluster-wide LIST, on its first page: then list per namespace.
    """
    opted_in = set(namespaces)
    yielded = False
    try:
        for job in kube.list(JOBS, label_selector=selector, page_size=page_size):
            namespace = str((job.get("metadata") or {}).get("namespace") or "")
            if namespace in opted_in:
                yielded = True
                yield namespace, job
        return
    except ForbiddenError:
        if yielded:
            raise  # never mid-way in practice; falling back would repeat Jobs already planned
    for namespace in namespaces:
        for job in kube.list(
            JOBS, namespace=namespace, label_selector=selector, page_size=page_size
        ):
            yield namespace, job


def _describe(problem: Problem) -> str:
    return f"{problem.field}: {problem.message} (fix: {problem.fix})"


def check_plan_limits(plan: Plan) -> None:
    """Raise :class:`ContractError` when Argo could not run ``plan`` (its size, its waves)."""
    problem = plan_limits_problem(plan)
    if problem:
        raise ContractError(
            problem,
            hint="split the operation by application (tenant-lifecycle.dev/applications), use "
            "fewer distinct waves, or run it with the local engine",
        )
