"""Streams: watches and followed logs, chunked, checking faults and shutdown as they go.

Each event or log chunk goes through :func:`_write_or_cut`, which asks the fault injector how
many bytes may still go out: a byte-budget cut writes exactly that many and drops the
connection mid-line, as a broken connection would. Idle ticks check time-based cuts, injected
unavailability and sandbox shutdown.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from . import tables
from .clock import parse_rfc3339_ns
from .exchange import Exchange
from .faults import StreamState
from .logs import LogOptions
from .pod_host import ContainerRun
from .protocol import DROPPED, AbortStreamError, Route, flag, integer
from .status import bad_request
from .watch import watch_events

Obj = dict[str, Any]


def serve_watch(router: Exchange, route: Route, labels: Any, fields: Any) -> None:
    timeout = integer(router.query, "timeoutSeconds")
    events = watch_events(
        router.sb.api,
        route.rtype,
        route.namespace,
        labels=labels,
        fields=fields,
        resource_version=router.query.get("resourceVersion", [""])[-1] or None,
        timeout=float(timeout) if timeout is not None else None,
        stop=router.sb.stopping,
        bookmarks=flag(router.query, "allowWatchBookmarks"),
        send_initial_events=flag(router.query, "sendInitialEvents"),
    )
    as_table = tables.wants_table(router.accept)
    include = router.query.get("includeObject", ["Metadata"])[-1]
    state = StreamState("watch")
    first = next(events, None)  # errors such as a bad resourceVersion still answer plainly
    router.h.start_stream("application/json")
    try:
        for event in itertools.chain([first], events):
            if router.sb.stopping.is_set():
                raise AbortStreamError
            if event is None:
                if router.sb.faults.should_cut(state):
                    raise AbortStreamError
                continue
            if as_table and event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                obj = event["object"]
                event = {  # noqa: PLW2901
                    "type": event["type"],
                    "object": tables.table(
                        route.rtype.kind,
                        [obj],
                        list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                        include=include,
                    ),
                }
            data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
            _write_or_cut(router, state, data)
        router.h.end_stream()
    except DROPPED as exc:
        raise AbortStreamError from exc
    finally:
        events.close()


def _write_or_cut(router: Exchange, state: StreamState, data: bytes) -> None:
    point = router.sb.faults.cut_point(state, len(data))
    if point is not None:
        if point:
            router.h.write_chunk(data[:point])
        raise AbortStreamError
    router.h.write_chunk(data)
    state.sent += len(data)


def serve_logs(router: Exchange, route: Route) -> None:
    pod = router.sb.api.get(route.rtype, route.namespace or "", route.name)
    container = _log_container(router, route, pod)
    previous = flag(router.query, "previous")
    run = _log_run(router, route, pod, container, previous=previous)
    options = _log_options(router, previous=previous)
    chunks = run.log.read(options, router.sb.stopping)
    if not options.follow:
        router.h.send_bytes(200, b"".join(chunks), "text/plain")
        return
    state = StreamState("log")
    router.h.start_stream("text/plain")
    try:
        for chunk in chunks:
            if router.sb.stopping.is_set():
                raise AbortStreamError
            if not chunk:
                if router.sb.faults.should_cut(state):
                    raise AbortStreamError
                continue
            _write_or_cut(router, state, chunk)
        router.h.end_stream()
    except DROPPED as exc:
        raise AbortStreamError from exc
    finally:
        chunks.close()


# what a log request asks for -------------------------------------------------------------


def _log_container(router: Exchange, route: Route, pod: Obj) -> str:
    """The container whose log is asked for; the only one when the pod has one."""
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    init_names = [c["name"] for c in spec.get("initContainers") or []]
    container = router.query.get("container", [""])[-1]
    if not container:
        if len(names) == 1:
            container = names[0]
        else:
            message = (
                f"a container name must be specified for pod {route.name}, choose one "
                f"of: [{' '.join(names)}]"
            )
            if init_names:
                message += f" or one of the init containers: [{' '.join(init_names)}]"
            raise bad_request(message)
    if container not in names and container not in init_names:
        raise bad_request(f"container {container} is not valid for pod {route.name}")
    return container


def _log_run(
    router: Exchange, route: Route, pod: Obj, container: str, *, previous: bool
) -> ContainerRun:
    """The current run of the container, or the one before it (``previous``)."""
    worker = router.sb.runtime.worker(pod["metadata"]["uid"])
    runs = worker.log_runs(container) if worker is not None else []
    if previous:
        if len(runs) < 2:
            raise bad_request(
                f'previous terminated container "{container}" in pod "{route.name}" not found'
            )
        return runs[-2]
    if not runs:
        statuses = (pod.get("status") or {}).get("containerStatuses", []) + (
            pod.get("status") or {}
        ).get("initContainerStatuses", [])
        reason = "ContainerCreating"
        for cs in statuses:
            if cs.get("name") == container:
                reason = (cs.get("state") or {}).get("waiting", {}).get("reason", reason)
        if reason in ("ErrImagePull", "ImagePullBackOff"):
            reason = "trying and failing to pull image"
        raise bad_request(
            f'container "{container}" in pod "{route.name}" is waiting to start: {reason}'
        )
    return runs[-1]


def _log_options(router: Exchange, *, previous: bool) -> LogOptions:
    since_ns = None
    since_time = router.query.get("sinceTime", [""])[-1]
    if since_time:
        try:
            since_ns = parse_rfc3339_ns(since_time)
        except ValueError as exc:
            raise bad_request(f"invalid sinceTime {since_time!r}: {exc}") from exc
    since_seconds = integer(router.query, "sinceSeconds")
    if since_seconds is not None:
        since_ns = time.time_ns() - since_seconds * 1_000_000_000
    return LogOptions(
        follow=flag(router.query, "follow") and not previous,
        timestamps=flag(router.query, "timestamps"),
        since_ns=since_ns,
        tail_lines=integer(router.query, "tailLines"),
        limit_bytes=integer(router.query, "limitBytes"),
    )
