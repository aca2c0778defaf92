"""Changes the benchmarks propose to the product, measured beside the code as it is.

Nothing here is used by the product: each function is the patch the performance notes
(docs/performance.md) ask the owning engineer to apply, run by the benchmark so the gain is a
measured figure rather than a guess.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from bridge.contract import ContractSettings, Participant, check_job, is_namespace_opted_in
from bridge.discovery import Discovery, _describe, annotated_operations
from bridge.errors import ContractError, ForbiddenError
from bridge.kube import JOBS, NAMESPACES, Kube
from bridge.planner import Rejected, build_plan


def lifecycle_jobs(
    kube: Kube, namespaces: list[str], *, selector: str, page_size: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(namespace, Job) of every labelled Job in an opted-in namespace.

    One cluster-wide, label-selected, paginated LIST (the discovery ClusterRole allows it)
    instead of one LIST per namespace: 2,000 opted-in namespaces are 2,000 round trips
    otherwise. Falls back to per-namespace LISTs when a cluster-wide list is forbidden (a
    deployment that grants discovery only per-namespace RoleBindings).
    """
    wanted = set(namespaces)
    try:
        for job in kube.list(JOBS, label_selector=selector, page_size=page_size):
            namespace = str((job.get("metadata") or {}).get("namespace") or "")
            if namespace in wanted:
                yield namespace, job
        return
    except ForbiddenError:
        pass
    for namespace in namespaces:
        for job in kube.list(JOBS, namespace=namespace, label_selector=selector, page_size=page_size):
            yield namespace, job


def discover_clusterwide(
    kube: Kube,
    *,
    operation: str,
    settings: ContractSettings,
    environment: Mapping[str, Any] | None = None,
    tenant_env_id: str | None = None,
    skip_invalid: bool = False,
    page_size: int = 500,
) -> Discovery:
    """``bridge.discovery.discover`` with :func:`lifecycle_jobs` as its only change."""
    selector = settings.label_selector()
    namespaces = sorted(
        str(ns["metadata"]["name"])
        for ns in kube.list(NAMESPACES, label_selector=selector, page_size=page_size)
        if is_namespace_opted_in(ns, settings=settings)
    )
    participants: list[Participant] = []
    invalid: list[Rejected] = []
    ignored: list[Rejected] = []
    seen = 0
    for namespace, job in lifecycle_jobs(kube, namespaces, selector=selector, page_size=page_size):
        seen += 1
        participant, problems = check_job(job, settings=settings, source="cluster")
        if participant is not None:
            participants.append(participant)
            continue
        if not problems:
            continue
        meta = job.get("metadata") or {}
        rejected = Rejected(
            namespace=str(meta.get("namespace") or namespace),
            name=str(meta.get("name") or "<unnamed>"),
            errors=tuple(_describe(p) for p in problems),
        )
        operations = annotated_operations(job, settings)
        if operations is None or operation in operations:
            invalid.append(rejected)
        else:
            ignored.append(rejected)
    if invalid and not skip_invalid:
        raise ContractError(f"{len(invalid)} Job(s) annotated for {operation} are invalid")
    plan = build_plan(
        participants,
        operation=operation,
        environment=environment,
        rejected=invalid,
        tenant_env_id=tenant_env_id,
    )
    return Discovery(
        plan=plan,
        namespaces=tuple(namespaces),
        jobs_seen=seen,
        invalid=tuple(invalid),
        ignored_invalid=tuple(ignored),
    )
