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
        for job in kube.list(
            JOBS, namespace=namespace, label_selector=selector, page_size=page_size
        ):
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


class _ThreadBridge:
    """:class:`orchestrator.engine.launcher.BridgeHandle` for a bridge running in a thread."""

    def __init__(self, runner: Any, kube: Kube) -> None:
        import threading

        self._runner = runner
        self._kube = kube
        self._result: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, name="bridge", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._runner.run().to_json()
        finally:
            self._kube.close()

    def wait(self) -> Mapping[str, Any]:
        self._thread.join()
        return self._result

    def terminate(self) -> None:
        self._runner.cancel()


class ThreadBridgeLauncher:
    """A :class:`~orchestrator.engine.launcher.BridgeLauncher` running ``bridge.runner.Runner``
    in a thread of the engine's process instead of a ``python -m bridge run`` subprocess.

    What it saves: one interpreter start and ~1 s of imports (mostly ``kubernetes``) per job,
    which at parallelism 50 on 2 cores is the whole fan-out's bottleneck. What it gives up (why
    the engine uses subprocesses today): SIGTERM reaching each bridge as in Argo, and isolation
    from a bridge that hangs. Cancel maps to ``Runner.cancel()``, the same path SIGTERM takes.
    """

    def __init__(self, *, kubeconfig: str, out: Any = None) -> None:
        import io

        from bridge.kube import KubeSettings
        from bridge.settings import BridgeSettings

        self._settings = BridgeSettings(kube=KubeSettings(kubeconfig=kubeconfig))
        self._out = out or io.StringIO()

    def launch(self, spec: Any, *, on_line: Any) -> _ThreadBridge:
        from bridge.runner import Runner, RunRequest

        kube = Kube(settings=self._settings.kube)
        request = RunRequest(
            namespace=spec.job.namespace,
            job=spec.job.name,
            operation=spec.operation,
            tenant_env_id=spec.tenant_env_id,
            batch_operation_id=spec.batch_operation_id,
            environment=spec.environment,
            changeset=spec.changeset,
            source_batch_operation_id=spec.source_batch_operation_id,
        )
        runner = Runner(kube, request, settings=self._settings, out=self._out)
        return _ThreadBridge(runner, kube)
