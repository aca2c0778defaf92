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
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from bridge.errors import ConflictError, GoneError, LifecycleError, NotFoundError, UnavailableError
from bridge.kube import WORKFLOWS, Kube, WatchStream
from orchestrator.argo.nodes import NODES_OFFLOADED, NODES_UNREADABLE
from orchestrator.argo.outcome import TERMINAL_PHASES, build_result, parse_time
from orchestrator.bus import Bus
from orchestrator.events import event_time, structured_message
from orchestrator.history.recorder import HistoryRecorder
from orchestrator.metrics import Metrics
from orchestrator.naming import (
    BATCH_LABEL,
    RECEIVED_AT_ANNOTATION,
    REQUESTED_AT_ANNOTATION,
    RESULT_CLAIM_ANNOTATION,
    RESULT_PUBLISHED_ANNOTATION,
)

log = logging.getLogger(__name__)
DEFAULT_CLAIM_TTL: Final = 60.0


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
                            RESULT_PUBLISHED_ANNOTATION: event_time(datetime.now(UTC)),
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
        moment = parse_time(annotations.get(key))
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
