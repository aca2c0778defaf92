"""Watch: replay changes after a resourceVersion from the history, then follow new ones.

Without a resourceVersion (or "0") a watch starts with synthetic ADDED events for the current
state, as the real server does. A resourceVersion older than the retained history yields one
ERROR event carrying a 410 ``Expired`` Status, exactly the shape clients handle. Selector
semantics follow the watch cache: an object that starts matching arrives as ADDED, one that
stops matching as DELETED.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from typing import Any

from .api import Api
from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector
from .status import bad_request, expired

_POLL = 0.25


def _matches(obj: dict[str, Any] | None, labels: LabelSelector, fields: FieldSelector) -> bool:
    return obj is not None and labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)


def too_old(rv: int, current: int) -> dict[str, Any]:
    return {
        "type": "ERROR",
        "object": expired(f"too old resource version: {rv} ({current})").body(),
    }


def watch_events(
    api: Api,
    rtype: ResourceType,
    namespace: str | None,
    *,
    labels: LabelSelector,
    fields: FieldSelector,
    resource_version: str | None,
    timeout: float | None,
    stop: threading.Event,
    bookmarks: bool = False,
    send_initial_events: bool = False,
) -> Generator[dict[str, Any] | None, None, None]:
    """Events to send; None on an idle tick, so the caller can check faults and shutdown.

    ``send_initial_events`` (the watch-list protocol) sends the current state as ADDED events
    and then a BOOKMARK annotated ``k8s.io/initial-events-end``, whatever the resourceVersion.
    """
    store = api.store
    deadline = None if timeout is None else time.monotonic() + timeout
    start = yield from _initial_events(
        api,
        rtype,
        namespace,
        labels=labels,
        fields=fields,
        resource_version=resource_version,
        send_initial_events=send_initial_events,
    )
    if start is None:
        return
    last = start
    idle_since = time.monotonic()
    while not stop.is_set():
        with store.changed:
            if last < store.oldest_replayable:
                changes = None
            else:
                changes = store.changes_since(last)
                if not changes:
                    store.changed.wait(_POLL)
                    changes = store.changes_since(last)
        if changes is None:
            yield too_old(last, store.resource_version)
            return
        if not changes:
            yield None
        for change in changes:
            last = change.rv
            if change.rkey != rtype.key:
                continue
            if namespace is not None and change.namespace != namespace:
                continue
            if change.type == "DELETED":
                if _matches(change.old, labels, fields):
                    yield {"type": "DELETED", "object": change.obj}
                continue
            now_in = _matches(change.obj, labels, fields)
            was_in = change.type == "MODIFIED" and _matches(change.old, labels, fields)
            if now_in and was_in:
                yield {"type": "MODIFIED", "object": change.obj}
            elif now_in:
                yield {"type": "ADDED", "object": change.obj}
            elif was_in:
                yield {"type": "DELETED", "object": change.obj}
            idle_since = time.monotonic()
        if bookmarks and time.monotonic() - idle_since > 1.0:
            idle_since = time.monotonic()
            yield {
                "type": "BOOKMARK",
                "object": {
                    "kind": rtype.kind,
                    "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": str(last)},
                },
            }
        if deadline is not None and time.monotonic() >= deadline:
            return


def _initial_events(
    api: Api,
    rtype: ResourceType,
    namespace: str | None,
    *,
    labels: LabelSelector,
    fields: FieldSelector,
    resource_version: str | None,
    send_initial_events: bool,
) -> Generator[dict[str, Any], None, int | None]:
    """The events before the first change: the current state as ADDED (and the watch-list
    BOOKMARK) when the watch starts from now, an ERROR 410 when ``resource_version`` is older
    than the history. Returns the resourceVersion to follow changes from, None after an ERROR.
    """
    store = api.store
    if resource_version in (None, "", "0") or send_initial_events:
        listing = api.list(rtype, namespace, labels=labels, fields=fields)
        last = int(listing["metadata"]["resourceVersion"])
        for item in listing["items"]:
            yield {"type": "ADDED", "object": item}
        if send_initial_events:
            yield {
                "type": "BOOKMARK",
                "object": {
                    "kind": rtype.kind,
                    "apiVersion": rtype.api_version,
                    "metadata": {
                        "resourceVersion": str(last),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                },
            }
        return last
    try:
        last = int(str(resource_version))
    except ValueError as exc:
        raise bad_request(f"invalid resource version {resource_version!r}") from exc
    if last < store.oldest_replayable:
        yield too_old(last, store.resource_version)
        return None
    return last
