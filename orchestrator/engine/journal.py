"""The run journal: what ``tenantctl listen --engine local`` records so that a consumer killed
mid-run (SIGKILL, OOM, a lost node) loses no request and runs no job twice.

The request's message is held (not acked) until its result event is published
(:class:`~orchestrator.engine.submitter.LocalSubmitter` with ``hold=True``), so a killed
consumer's requests come back from the bus. What the next consumer must not do is run again the
jobs that had already finished: their pods are gone (``delete-policy: succeeded``), so the
bridge has nothing to re-attach to. The journal keeps each finished job's result JSON, written
the moment its bridge returns; a redelivered request resumes from it: recorded jobs are not run
again, unrecorded ones are (and a bridge whose pod still runs re-attaches to it). Once the
result event is published the journal says so, and a later redelivery is a duplicate.

:class:`KubeRunJournal` keeps one ConfigMap per request in the workflow namespace (named as the
Workflow would be, ``lc-<batch id>``), data key ``job.<namespace>.<job>`` per finished job and
``published`` once answered. Journals whose result was published more than
``retention_seconds`` ago are deleted (:meth:`KubeRunJournal.prune`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from bridge.errors import LifecycleError, NotFoundError
from bridge.kube import CONFIGMAPS, Kube
from orchestrator.naming import workflow_name

from .observer import RunObserver
from .request import RequestLike
from .result import CANCELLED, SKIPPED, JobResult

log = logging.getLogger(__name__)

LABEL_PREFIX: Final = "tenant-lifecycle.dev"
COMPONENT: Final = "run-journal"
JOB_KEY_PREFIX: Final = "job."
PUBLISHED_KEY: Final = "published"
BATCH_KEY: Final = "batchOperationId"
DEFAULT_RETENTION_SECONDS: Final = 3600.0


@dataclass(frozen=True)
class JournalState:
    """A request's journal: finished jobs' result JSON by ``namespace/job``, and whether its
    result event was published."""

    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    published: bool = False


class RunJournal(Protocol):
    def load(self, request: RequestLike) -> JournalState: ...

    def record_job(self, request: RequestLike, result: JobResult) -> None: ...

    def mark_published(self, request: RequestLike) -> None: ...


class NoJournal:
    """Records nothing: a restarted consumer runs a redelivered request from the start."""

    def load(self, request: RequestLike) -> JournalState:
        return JournalState()

    def record_job(self, request: RequestLike, result: JobResult) -> None:
        return None

    def mark_published(self, request: RequestLike) -> None:
        return None


def _job_key(key: str) -> str:
    """``namespace/job`` -> a ConfigMap data key (DNS names: no '/' but '.' is allowed)."""
    return JOB_KEY_PREFIX + key.replace("/", ".", 1)


class KubeRunJournal:
    """:class:`RunJournal` as one ConfigMap per request in ``namespace``."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        *,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.retention_seconds = retention_seconds
        self._clock = clock

    def _name(self, request: RequestLike) -> str:
        return workflow_name(request.batch_operation_id)

    def load(self, request: RequestLike) -> JournalState:
        try:
            found = self.kube.get(CONFIGMAPS, self._name(request), namespace=self.namespace)
        except NotFoundError:
            return JournalState()
        data: Mapping[str, str] = found.get("data") or {}
        if data.get(BATCH_KEY) != request.batch_operation_id:
            return JournalState()  # another batch id that sanitizes to the same name
        jobs: dict[str, Mapping[str, Any]] = {}
        for key, value in data.items():
            if not key.startswith(JOB_KEY_PREFIX):
                continue
            try:
                recorded = json.loads(value)
            except ValueError:
                continue  # unreadable: run the job (its bridge re-attaches if it can)
            if isinstance(recorded, dict) and recorded.get("namespace") and recorded.get("job"):
                jobs[f"{recorded['namespace']}/{recorded['job']}"] = recorded
        return JournalState(jobs=jobs, published=PUBLISHED_KEY in data)

    def record_job(self, request: RequestLike, result: JobResult) -> None:
        self._patch(request, {_job_key(result.job.key): json.dumps(result.data)})

    def mark_published(self, request: RequestLike) -> None:
        self._patch(request, {PUBLISHED_KEY: f"{self._clock():.0f}"})

    def _patch(self, request: RequestLike, data: Mapping[str, str]) -> None:
        name = self._name(request)
        body = {BATCH_KEY: request.batch_operation_id, **data}
        try:
            self.kube.patch(CONFIGMAPS, name, {"data": body}, namespace=self.namespace)
            return
        except NotFoundError:
            pass
        labels = {
            "app.kubernetes.io/name": "tenant-lifecycle",
            "app.kubernetes.io/component": COMPONENT,
            f"{LABEL_PREFIX}/batch": request.batch_operation_id,
            f"{LABEL_PREFIX}/tenant": request.tenant_env_id,
        }
        manifest = {"metadata": {"name": name, "labels": labels}, "data": body}
        try:
            self.kube.create(CONFIGMAPS, manifest, namespace=self.namespace)
        except LifecycleError:
            # Created meanwhile by a concurrent record of the same run: patch it.
            self.kube.patch(CONFIGMAPS, name, {"data": body}, namespace=self.namespace)

    def prune(self) -> int:
        """Delete journals published more than ``retention_seconds`` ago; how many."""
        selector = f"app.kubernetes.io/component={COMPONENT}"
        now, deleted = self._clock(), 0
        for item in self.kube.list(CONFIGMAPS, namespace=self.namespace, label_selector=selector):
            published = (item.get("data") or {}).get(PUBLISHED_KEY)
            try:
                age = now - float(published) if published else None
            except ValueError:
                age = None
            if age is None or age < self.retention_seconds:
                continue
            name = str(item["metadata"]["name"])
            self.kube.delete(CONFIGMAPS, name, namespace=self.namespace, missing_ok=True)
            deleted += 1
        return deleted


class JournalObserver(RunObserver):
    """Records each job's final result in the journal as its bridge returns it (skipped and
    cancelled jobs are not final: a resumed run runs them)."""

    def __init__(
        self,
        journal: RunJournal,
        request: RequestLike,
        recorded: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self.journal = journal
        self.request = request
        self.recorded = recorded

    def on_job_finish(self, result: JobResult) -> None:
        if result.job.key in self.recorded or result.status in {SKIPPED, CANCELLED}:
            return
        try:
            self.journal.record_job(self.request, result)
        except LifecycleError as exc:
            # Not fatal to the run: only a kill before its result is published would run
            # this job again.
            log.warning(
                "journal of %s: %s not recorded (%s)",
                self.request.batch_operation_id,
                result.job.key,
                exc,
            )
