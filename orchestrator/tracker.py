"""Result tracking: one result event per finished Workflow, also across restarts.

:class:`ResultPublisher` is shared by the tracker (``tenantctl listen``) and the Argo exit handler
(``tenantctl publish-result``). Both follow the same protocol on the Workflow's annotations:

1. **claim**: merge-patch ``result-claim: "<owner> <unix time>"`` *with the resourceVersion just
   read* -- the API server's optimistic concurrency (409 on a stale version) lets exactly one
   contender win; the loser re-reads and sees the claim (or the marker);
2. **publish** the result event and wait until the bus accepted it;
3. **mark**: merge-patch ``result-published: <time>`` and drop the claim.

A crash between 2 and 3 leaves a claim and no marker: after ``claim_ttl`` (immediately for the
same owner) someone publishes again; a mark that merely *failed* (the API server, not the process)
is retried alone by the same publisher, without a second publish. Publishing is therefore
at-least-once only across a crash, and the result event
``id`` is the batch operation id -- deterministic -- so consumers deduplicate by ``id`` + ``type``.
A crash before 2 only delays the result; a marker is never set without a publish, so no result is
lost. On start the tracker lists every labelled Workflow and catches up on terminal, unmarked
ones, then watches from the list's resourceVersion (re-listing after a 410).

Every reading of a Workflow's nodes goes through :func:`workflow_nodes`: Argo's controller keeps
them in ``status.nodes`` only while the Workflow is small (see there).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import io
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from bridge.errors import ConflictError, GoneError, LifecycleError, NotFoundError, UnavailableError
from bridge.kube import WORKFLOWS, Kube, WatchStream

from .bus import Bus
from .engine.plan import ABORT, EnginePlan
from .engine.result import JobResult
from .events import result_event, rfc3339, structured_message
from .history.recorder import HistoryRecorder
from .metrics import Metrics
from .naming import (
    BATCH_LABEL,
    OPERATION_LABEL,
    RECEIVED_AT_ANNOTATION,
    REGION_ANNOTATION,
    REQUESTED_AT_ANNOTATION,
    RESULT_CLAIM_ANNOTATION,
    RESULT_PUBLISHED_ANNOTATION,
    TENANT_LABEL,
)

log = logging.getLogger(__name__)

TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed", "Error"})
RESULT_PARAMETER: Final = "result"
PLAN_PARAMETER: Final = "plan"
DEFAULT_CLAIM_TTL: Final = 60.0

# Result ``reason`` when the nodes cannot be read (see workflow_nodes).
NODES_OFFLOADED: Final = "NodeStatusOffloaded"
NODES_UNREADABLE: Final = "NodeStatusUnreadable"
# The controller keeps a Workflow, compressed nodes included, under its MAX_WORKFLOW_SIZE (1 MiB
# by default), and node JSON compresses about 10-20x. A bound far above that keeps a forged
# status.compressedNodes (a gzip bomb) from exhausting the tracker's memory.
MAX_NODES_JSON_BYTES: Final = 256 * 1024 * 1024
_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_OFFLOAD_FIX: Final = (
    "raise the workflow-controller's MAX_WORKFLOW_SIZE so the compressed node status fits in "
    "the Workflow (status.compressedNodes, which the tracker reads), and do not enable node "
    "status offloading (persistence.nodeStatusOffLoad, ALWAYS_OFFLOAD_NODE_STATUS) for the "
    "controller of this namespace"
)


# --------------------------------------------------------------------------------------------
# reading a Workflow's nodes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowNodes:
    """A Workflow's node map, or why it cannot be read.

    ``reason``/``message`` are set when the nodes exist but are out of reach; ``nodes`` is then
    empty. Callers build the result anyway and carry the reason on it: raising instead would
    leave the Workflow unpublished for ever (the tracker retries errors, and this one does not
    heal), so nobody would hear of the operation at all.
    """

    nodes: Mapping[str, Any]
    reason: str | None = None
    message: str | None = None

    @property
    def readable(self) -> bool:
        return self.reason is None


def workflow_nodes(workflow: Mapping[str, Any]) -> WorkflowNodes:
    """The nodes of ``workflow`` from wherever Argo's controller put them.

    Above ``MAX_WORKFLOW_SIZE`` (1 MiB by default) the controller moves ``status.nodes`` into
    ``status.compressedNodes``: base64 (standard, padded) of the gzip of the nodes map's JSON
    (argo-workflows ``workflow/packer``, ``util/file``; zstd or brotli only when its
    ``WORKFLOW_COMPRESSION_ALGORITHM`` says so). If even that is too large and node status
    offloading is on -- or it is set to always offload -- the nodes go to Argo's persistence
    database and only ``status.offloadNodeStatusVersion`` is left, which the Kubernetes API does
    not resolve: that is reported as :data:`NODES_OFFLOADED`.
    """
    status = workflow.get("status") or {}
    nodes = status.get("nodes")
    if isinstance(nodes, Mapping) and nodes:
        return WorkflowNodes(nodes)
    compressed = status.get("compressedNodes")
    if isinstance(compressed, str) and compressed:
        return _decompressed(workflow, compressed)
    if status.get("offloadNodeStatusVersion"):
        return WorkflowNodes(
            {},
            NODES_OFFLOADED,
            f"workflow {_display_name(workflow)}: its node status was offloaded to Argo's "
            "persistence database (status.offloadNodeStatusVersion is set, status.nodes is "
            "empty), which the tracker cannot read, so the jobs' results are unknown. "
            f"Fix: {_OFFLOAD_FIX}.",
        )
    return WorkflowNodes({})


def _decompressed(workflow: Mapping[str, Any], compressed: str) -> WorkflowNodes:
    def unreadable(why: str, fix: str) -> WorkflowNodes:
        return WorkflowNodes(
            {},
            NODES_UNREADABLE,
            f"workflow {_display_name(workflow)}: status.compressedNodes {why}, so the jobs' "
            f"results are unknown. Fix: {fix}.",
        )

    try:
        packed = base64.b64decode(compressed, validate=True)
    except (binascii.Error, ValueError):
        return unreadable("is not base64", "check the workflow-controller's version and logs")
    if not packed.startswith(_GZIP_MAGIC):
        # The standard library has no zstd or brotli before Python 3.14; Argo writes them only
        # when told to (and brotli without a magic number, hence "or brotli").
        what = "zstd" if packed.startswith(_ZSTD_MAGIC) else "not gzip (brotli?)"
        return unreadable(
            f"is {what}; the tracker reads gzip only",
            "unset WORKFLOW_COMPRESSION_ALGORITHM on the workflow-controller (gzip, its default)",
        )
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as stream:
            text = stream.read(MAX_NODES_JSON_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        return unreadable(f"is not valid gzip ({exc})", "check the workflow-controller's logs")
    if len(text) > MAX_NODES_JSON_BYTES:
        return unreadable(
            f"expands to more than {MAX_NODES_JSON_BYTES // (1024 * 1024)} MiB",
            "split the operation into Workflows with fewer jobs",
        )
    try:
        nodes = json.loads(text)
    except ValueError as exc:
        return unreadable(f"is not a JSON node map ({exc})", "check the workflow-controller's logs")
    if not isinstance(nodes, dict):
        return unreadable("is not a JSON node map", "check the workflow-controller's logs")
    return WorkflowNodes(nodes)


def _display_name(workflow: Mapping[str, Any]) -> str:
    metadata = workflow.get("metadata") or {}
    name = str(metadata.get("name") or "?")
    return f"{metadata['namespace']}/{name}" if metadata.get("namespace") else name


# --------------------------------------------------------------------------------------------
# building the result from a Workflow
# --------------------------------------------------------------------------------------------


def _parameters(node: Mapping[str, Any], kind: str) -> dict[str, Any]:
    section = node.get(kind) or {}
    return {
        str(p.get("name")): p.get("value")
        for p in section.get("parameters") or []
        if isinstance(p, dict)
    }


def _plan_waves(nodes: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """(namespace, job) -> wave, from the discovery node's ``plan`` output when there is one."""
    waves: dict[tuple[str, str], int] = {}
    for node in nodes.values():
        raw = _parameters(node, "outputs").get(PLAN_PARAMETER)
        if not isinstance(raw, str):
            continue
        try:
            plan = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(plan, dict):
            continue
        for wave in plan.get("waves") or []:
            if not isinstance(wave, dict) or not _is_int(wave.get("wave", 0)):
                continue
            for job in wave.get("jobs") or []:
                if isinstance(job, dict):
                    waves[(str(job.get("namespace")), str(job.get("name")))] = int(
                        str(wave.get("wave", 0))
                    )
    return waves


def collect_jobs(
    workflow: Mapping[str, Any], *, include_skipped: bool = False
) -> list[dict[str, Any]]:
    """Each bridge node's ``result`` output (the bridge's result JSON), plus ``wave``.

    Argo copies a retried node's last attempt's outputs onto the parent retry node, so one job can
    appear more than once: the latest finished one wins. A bridge node that died without writing a
    result (its pod was killed) is reported as ``error`` from the node's own phase and message.
    ``include_skipped`` (for a finished Workflow): every job of the discovery plan that never
    ran is listed as ``skipped``, exactly as the local engine lists it. No jobs when the nodes
    cannot be read (:func:`workflow_nodes` says why).
    """
    return _collect_jobs(workflow, workflow_nodes(workflow).nodes, include_skipped=include_skipped)


def _collect_jobs(
    workflow: Mapping[str, Any], nodes: Mapping[str, Any], *, include_skipped: bool
) -> list[dict[str, Any]]:
    waves = _plan_waves(nodes)
    batch, tenant, operation = _identity(workflow)
    best: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for node in nodes.values():
        if not isinstance(node, dict):
            continue
        outputs = _parameters(node, "outputs")
        raw = outputs.get(RESULT_PARAMETER)
        job: dict[str, Any] | None = None
        if isinstance(raw, str) and raw.strip():
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and parsed.get("namespace") and parsed.get("job"):
                job = parsed
        inputs = _parameters(node, "inputs")
        if job is None and _is_failed_bridge_node(node, inputs):
            namespace, _, name = str(inputs["job"]).partition("/")
            # The same keys as a bridge result (and as the local engine's job without one).
            job = {
                "namespace": namespace,
                "job": name,
                "operation": operation,
                "tenantEnvId": tenant,
                "batchOperationId": batch,
                "status": "error",
                "exitCode": None,
                "reason": str(node.get("phase")),
                "message": str(node.get("message") or "the bridge node ended without a result"),
                "attempts": [],
                "startedAt": node.get("startedAt"),
                "finishedAt": node.get("finishedAt"),
                "durationSeconds": _duration(node.get("startedAt"), node.get("finishedAt")),
            }
        if job is not None and "wave" not in job and _is_int(inputs.get("wave")):
            job = {**job, "wave": int(str(inputs["wave"]))}
        if job is None:
            continue
        key = (str(job["namespace"]), str(job["job"]))
        finished = str(job.get("finishedAt") or node.get("finishedAt") or "")
        if key not in best or finished >= best[key][0]:
            best[key] = (finished, job)
    jobs = []
    for key, (_, job) in best.items():
        entry = dict(job)
        if "wave" not in entry:
            entry["wave"] = waves.get(key)
        jobs.append(entry)
    if include_skipped:
        jobs += _never_ran(_plan(nodes), best, batch=batch, tenant=tenant, operation=operation)
    jobs.sort(key=_job_order)
    return jobs


def _plan(nodes: Mapping[str, Any]) -> EnginePlan | None:
    """The discovery node's ``plan`` output, when there is a readable one."""
    for node in nodes.values():
        raw = _parameters(node, "outputs").get(PLAN_PARAMETER) if isinstance(node, dict) else None
        if not isinstance(raw, str):
            continue
        try:
            return EnginePlan.from_json(json.loads(raw))
        except (ValueError, LifecycleError):
            continue
    return None


def _never_ran(
    plan: EnginePlan | None,
    ran: Mapping[tuple[str, str], tuple[str, Mapping[str, Any]]],
    *,
    batch: str,
    tenant: str,
    operation: str,
) -> list[dict[str, Any]]:
    """The plan's jobs without a bridge node result, as the local engine reports them: after a
    failed ``abort`` job in an earlier wave ``WaveAborted``, otherwise (the Workflow was
    stopped) ``Cancelled``."""
    if plan is None:
        return []
    skipped: list[dict[str, Any]] = []
    aborted = False  # an earlier wave had a failed abort job
    for wave in plan.waves:
        failed_abort = False
        for job in wave.jobs:
            key = (job.namespace, job.name)
            if key in ran:
                failed_abort |= job.on_failure == ABORT and ran[key][1].get("status") != "succeeded"
                continue
            why = "WaveAborted" if aborted else "Cancelled"
            result = JobResult.skipped(
                job, operation=operation, tenant_env_id=tenant, batch=batch, why=why
            )
            skipped.append(result.to_json())
        aborted = aborted or failed_abort
    return skipped


def _duration(started: Any, finished: Any) -> float | None:
    begin, end = _parse_time(started), _parse_time(finished)
    if begin is None or end is None:
        return None
    return round((end - begin).total_seconds(), 3)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _identity(workflow: Mapping[str, Any]) -> tuple[str, str, str]:
    """(batch operation id, tenant env id, operation) from the labels, else the arguments."""
    labels = (workflow.get("metadata") or {}).get("labels") or {}
    batch = labels.get(BATCH_LABEL) or _argument(workflow, "batch-operation-id") or ""
    tenant = labels.get(TENANT_LABEL) or _argument(workflow, "tenant-env-id") or ""
    operation = labels.get(OPERATION_LABEL) or _argument(workflow, "operation") or ""
    return str(batch), str(tenant), str(operation)


def _job_order(job: Mapping[str, Any]) -> tuple[int, str, str]:
    wave = job.get("wave")
    return (wave if isinstance(wave, int) else 0, str(job["namespace"]), str(job["job"]))


def _is_int(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and value.lstrip("-").isdigit()


def _is_failed_bridge_node(node: Mapping[str, Any], inputs: Mapping[str, Any]) -> bool:
    """A bridge node (its ``job`` input is ``namespace/job``) that failed without a result."""
    job = inputs.get("job")
    return node.get("phase") in {"Failed", "Error"} and isinstance(job, str) and job.count("/") == 1


def failed_steps(workflow: Mapping[str, Any]) -> list[str]:
    """Display names of failed nodes that count for the outcome.

    Used when the Workflow is not finished yet (Argo's exit handler runs before the phase is
    set): an attempt that a retry node superseded does not count, nor does the exit handler.
    """
    return _failed_steps(workflow_nodes(workflow).nodes)


def _failed_steps(nodes: Mapping[str, Any]) -> list[str]:
    superseded = {
        child
        for node in nodes.values()
        if isinstance(node, dict) and node.get("type") == "Retry"
        for child in node.get("children") or []
    }
    return sorted(
        str(node.get("displayName") or node_id)
        for node_id, node in nodes.items()
        if isinstance(node, dict)
        and node_id not in superseded
        and node.get("type") in {"Pod", "Retry"}
        and node.get("phase") in {"Failed", "Error"}
        and ".onExit" not in str(node.get("displayName") or "")
    )


def _argument(workflow: Mapping[str, Any], name: str) -> str | None:
    for p in ((workflow.get("spec") or {}).get("arguments") or {}).get("parameters") or []:
        if isinstance(p, dict) and p.get("name") == name and p.get("value") is not None:
            return str(p["value"])
    return None


def build_result(
    workflow: Mapping[str, Any], *, workflow_status: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The result CloudEvent of a Workflow.

    ``workflow_status`` overrides ``status.phase`` (Argo's exit handler passes
    ``{{workflow.status}}`` while the Workflow itself is still Running). The operation succeeded
    only when the Workflow did and every job did. When the nodes cannot be read the result is
    still built -- ``failed`` (a job's failure cannot be ruled out, and an ``on-failure:
    continue`` job fails without failing the Workflow), with no jobs and the data's ``reason``
    and ``message`` (as a local run that could not start) saying why and how to fix it.
    """
    metadata = workflow.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    status = workflow.get("status") or {}
    phase = workflow_status or status.get("phase") or ""
    nodes = workflow_nodes(workflow)
    jobs = _collect_jobs(workflow, nodes.nodes, include_skipped=phase in TERMINAL_PHASES)
    ok = phase not in {"Failed", "Error"} and all(j.get("status") == "succeeded" for j in jobs)
    if ok and phase not in TERMINAL_PHASES:
        ok = not _failed_steps(nodes.nodes)
    ok = ok and nodes.readable
    batch, tenant, operation = _identity(workflow)
    event = result_event(
        batch_operation_id=batch,
        tenant_env_id=tenant,
        operation=operation,
        status="succeeded" if ok else "failed",
        jobs=jobs,
        workflow=metadata.get("name"),
        region=annotations.get(REGION_ANNOTATION),
        started_at=status.get("startedAt"),
        finished_at=status.get("finishedAt") or rfc3339(now or datetime.now(UTC)),
        time=now,
    )
    if not nodes.readable:
        event["data"].update(
            reason=nodes.reason, message=f"{nodes.message} The Workflow's phase is {phase or '?'}."
        )
    return event


# --------------------------------------------------------------------------------------------
# publishing exactly once (in effect)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishOutcome:
    status: Literal["published", "already-published", "claimed", "not-finished", "gone"]
    workflow: str
    event: dict[str, Any] | None = None


class ResultPublisher:
    """Claim, publish, mark (see the module docstring)."""

    def __init__(
        self,
        kube: Kube,
        bus: Bus,
        *,
        namespace: str,
        topic: str,
        owner: str,
        claim_ttl: float = DEFAULT_CLAIM_TTL,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        history: HistoryRecorder | None = None,
    ) -> None:
        self.history = history
        self.kube = kube
        self.bus = bus
        self.namespace = namespace
        self.topic = topic
        self.owner = owner.replace(" ", "_")
        self.claim_ttl = claim_ttl
        self.metrics = metrics
        self._clock = clock
        # Published, but the marker could not be set yet (the API server failed after the bus
        # took the event): the next attempt only sets the marker -- publishing again here would
        # be a duplicate without any crash to excuse it.
        self._unmarked: dict[str, tuple[Mapping[str, Any], dict[str, Any], str | None]] = {}

    def _claim_holder(self, annotations: Mapping[str, Any]) -> str | None:
        """Who holds a live claim (None when nobody, or when it is ours or expired)."""
        claim = annotations.get(RESULT_CLAIM_ANNOTATION)
        if not isinstance(claim, str) or not claim:
            return None
        owner, _, stamp = claim.rpartition(" ")
        if owner == self.owner:
            return None
        try:
            age = self._clock() - float(stamp)
        except ValueError:
            return None
        return owner if age < self.claim_ttl else None

    def publish(
        self,
        name: str,
        *,
        workflow: Mapping[str, Any] | None = None,
        allow_unfinished: bool = False,
        workflow_status: str | None = None,
    ) -> PublishOutcome:
        """Publish the result of Workflow ``name`` unless it was (or is being) published."""
        if name in self._unmarked:
            return self._mark_published(name)
        current = workflow
        for _ in range(10):
            if current is None:
                try:
                    current = self.kube.get(WORKFLOWS, name, namespace=self.namespace)
                except NotFoundError:
                    return PublishOutcome("gone", name)
            metadata = current.get("metadata") or {}
            annotations = metadata.get("annotations") or {}
            if annotations.get(RESULT_PUBLISHED_ANNOTATION):
                return PublishOutcome("already-published", name)
            phase = workflow_status or (current.get("status") or {}).get("phase")
            if phase not in TERMINAL_PHASES and not allow_unfinished:
                return PublishOutcome("not-finished", name)
            if self._claim_holder(annotations):
                return PublishOutcome("claimed", name)
            # Built before claiming: a Workflow the builder chokes on is left unclaimed, so the
            # exit handler (or another replica) is not kept waiting for a claim that never ends.
            event = build_result(current, workflow_status=workflow_status)
            claim = {
                "metadata": {
                    "resourceVersion": metadata.get("resourceVersion"),
                    "annotations": {RESULT_CLAIM_ANNOTATION: f"{self.owner} {self._clock():.3f}"},
                }
            }
            try:
                self.kube.patch(WORKFLOWS, name, claim, namespace=self.namespace)
            except ConflictError:
                current = None  # changed under us (Argo, another publisher): read it again
                continue
            except NotFoundError:
                return PublishOutcome("gone", name)
            return self._publish_claimed(current, event, workflow_status=workflow_status)
        raise UnavailableError(
            f"workflow {self.namespace}/{name} kept changing; could not claim its result",
            reason="ClaimContention",
        )

    def _publish_claimed(
        self, workflow: Mapping[str, Any], event: dict[str, Any], *, workflow_status: str | None
    ) -> PublishOutcome:
        name = str(workflow["metadata"]["name"])
        try:
            data, attributes = structured_message(event)
            attributes.update(workflow=name, tenant=str(event["subject"]))
            self.bus.publish(self.topic, data, attributes)
        except LifecycleError:
            self._release(name)
            raise
        self._unmarked[name] = (workflow, event, workflow_status)
        return self._mark_published(name)

    def _mark_published(self, name: str) -> PublishOutcome:
        workflow, event, workflow_status = self._unmarked[name]
        # NotFound: deleted after its result went out, nothing left to mark.
        with contextlib.suppress(NotFoundError):
            self.kube.patch(
                WORKFLOWS,
                name,
                {
                    "metadata": {
                        "annotations": {
                            RESULT_PUBLISHED_ANNOTATION: rfc3339(datetime.now(UTC)),
                            RESULT_CLAIM_ANNOTATION: None,
                        }
                    }
                },
                namespace=self.namespace,
            )
        del self._unmarked[name]
        if self.metrics is not None:
            phase = str(workflow_status or (workflow.get("status") or {}).get("phase") or "")
            self.metrics.workflows_finished.labels(phase or "Unknown").inc()
            self.metrics.results_published.labels(event["data"]["status"]).inc()
            started = _request_time(workflow)
            if started is not None:
                latency = (datetime.now(UTC) - started).total_seconds()
                self.metrics.end_to_end_latency.observe(max(latency, 0.0))
        log.info("published %s for workflow %s", event["type"], name)
        if event["data"].get("reason") in {NODES_OFFLOADED, NODES_UNREADABLE}:
            log.warning("%s", event["data"]["message"])
        if self.history is not None:
            self.history.result(str(event["id"]), event["data"])
        return PublishOutcome("published", name, event)

    def _release(self, name: str) -> None:
        try:
            self.kube.patch(
                WORKFLOWS,
                name,
                {"metadata": {"annotations": {RESULT_CLAIM_ANNOTATION: None}}},
                namespace=self.namespace,
            )
        except LifecycleError:
            log.warning("could not release the result claim on %s", name, exc_info=True)


def _request_time(workflow: Mapping[str, Any]) -> datetime | None:
    annotations = (workflow.get("metadata") or {}).get("annotations") or {}
    for key in (REQUESTED_AT_ANNOTATION, RECEIVED_AT_ANNOTATION):
        moment = _parse_time(annotations.get(key))
        if moment is not None:
            return moment
    return None


# --------------------------------------------------------------------------------------------
# the tracker loop
# --------------------------------------------------------------------------------------------


class Tracker:
    """Lists, then watches, the labelled Workflows of one namespace and publishes results."""

    def __init__(
        self,
        kube: Kube,
        publisher: ResultPublisher,
        *,
        namespace: str,
        label_selector: str = BATCH_LABEL,
        watch_timeout: int = 60,
        retry_delay: float = 1.0,
    ) -> None:
        self.kube = kube
        self.publisher = publisher
        self.namespace = namespace
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self.retry_delay = retry_delay
        # Workflows claimed by someone else: look again once their claim may have expired.
        self._recheck: dict[str, float] = {}
        self._busy = threading.Lock()
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self.healthy = True
        self.last_error: str = ""

    def handle(self, workflow: Mapping[str, Any]) -> PublishOutcome | None:
        """Publish for one observed Workflow when it is finished and unpublished."""
        metadata = workflow.get("metadata") or {}
        name = str(metadata.get("name") or "")
        if (metadata.get("annotations") or {}).get(RESULT_PUBLISHED_ANNOTATION):
            self._recheck.pop(name, None)
            return None
        if (workflow.get("status") or {}).get("phase") not in TERMINAL_PHASES:
            return None
        with self._busy:  # shutdown waits for a publish in progress
            outcome = self.publisher.publish(name, workflow=workflow)
        if outcome.status == "claimed":
            self._recheck[name] = time.monotonic() + self.publisher.claim_ttl
        else:
            self._recheck.pop(name, None)
        return outcome

    def catch_up(self) -> str:
        """Handle every labelled Workflow once; returns the list's resourceVersion."""
        items, version = self.kube.list_with_version(
            WORKFLOWS, namespace=self.namespace, label_selector=self.label_selector
        )
        for workflow in items:
            if self._stop.is_set():
                break
            self._handle_safely(workflow)
        return version

    def _handle_safely(self, workflow: Mapping[str, Any]) -> None:
        try:
            self.handle(workflow)
        except LifecycleError as exc:
            # Not marked: the next re-list (or a later event) retries it.
            name = (workflow.get("metadata") or {}).get("name")
            log.warning("result of workflow %s not published yet: %s", name, exc)
            self._recheck[str(name)] = time.monotonic() + self.retry_delay
        except Exception:
            # A bug on one Workflow's data must not end the tracker thread (and with it every
            # other Workflow's result); look at it again much later, it will not heal by itself.
            name = (workflow.get("metadata") or {}).get("name")
            log.exception("result of workflow %s could not be built", name)
            self._recheck[str(name)] = time.monotonic() + self.publisher.claim_ttl

    def _recheck_due(self) -> None:
        now = time.monotonic()
        for name, due in list(self._recheck.items()):
            if due <= now and not self._stop.is_set():
                try:
                    workflow = self.kube.get(WORKFLOWS, name, namespace=self.namespace)
                except NotFoundError:
                    self._recheck.pop(name, None)
                    continue
                except LifecycleError:
                    continue
                self._handle_safely(workflow)

    def run(self) -> None:
        """Loop until :meth:`stop`: catch up, watch, re-list on 410, back off on errors."""
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self.catch_up()
                self._recheck_due()
                stream = self.kube.watch(
                    WORKFLOWS,
                    namespace=self.namespace,
                    label_selector=self.label_selector,
                    resource_version=version,
                    timeout_seconds=self.watch_timeout,
                )
                self._stream = stream
                if self._stop.is_set():
                    stream.close()
                for kind, workflow in stream:
                    if kind in ("ADDED", "MODIFIED"):
                        self._handle_safely(workflow)
                    if self._stop.is_set():
                        break
                    self._recheck_due()
                version = stream.resource_version or version
                stream.close()
                self.healthy = True
            except GoneError:
                version = None  # too old: list again
            except LifecycleError as exc:
                self.healthy = False
                self.last_error = str(exc)
                log.warning("tracker: %s; retrying in %.1fs", exc, self.retry_delay)
                self._stop.wait(self.retry_delay)
            finally:
                self._stream = None

    def stop(self) -> None:
        """Stop watching; waits for a publish in progress (so its result is flushed)."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        with self._busy:
            pass
