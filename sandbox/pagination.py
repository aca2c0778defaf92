"""``limit``/``continue``: list snapshots and the continue tokens that point into them.

A list with a limit keeps the whole matching result (references to immutable objects, so
cheap) under an id; the continue token carries that id, the resourceVersion of the first page
and the offset reached. Later pages read the snapshot, so objects created or deleted meanwhile
neither appear nor vanish. Only the most recent snapshots are kept: a token whose snapshot is
gone (or after ``compact()``) gets 410 Expired, as an etcd-compacted continue token does.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import uuid
from collections import OrderedDict
from typing import Any

from .status import bad_request, expired

Obj = dict[str, Any]

_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this response "
    "to retrieve the remainder of the results. Continuing with the provided token results in an "
    "inconsistent list - objects that were created, modified, or deleted between the time the "
    "first chunk was returned and now may show up in the list."
)


class Snapshots:
    def __init__(self, *, keep: int = 256) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[int, list[Obj]]] = OrderedDict()

    def save(self, rv: int, items: list[Obj]) -> str:
        snap_id = uuid.uuid4().hex
        with self._lock:
            self._items[snap_id] = (rv, items)
            while len(self._items) > self._keep:
                self._items.popitem(last=False)
        return snap_id

    def resume(self, token: str) -> tuple[int, int, str, list[Obj]]:
        """(resourceVersion, offset, snapshot id, items) for a continue token; 410 when gone."""
        rv, offset, snap_id = decode(token)
        with self._lock:
            snap = self._items.get(snap_id)
            if snap is not None:
                self._items.move_to_end(snap_id)
        if snap is None:
            raise expired(_EXPIRED)
        return rv, offset, snap_id, snap[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def encode(rv: int, offset: int, snap_id: str) -> str:
    raw = json.dumps({"v": "sandbox/v1", "rv": rv, "start": offset, "snap": snap_id})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode(token: str) -> tuple[int, int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode() + b"==="))
        return int(data["rv"]), int(data["start"]), str(data["snap"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise bad_request(f"continue key is not valid: {exc}") from exc


__all__ = ["Snapshots", "decode", "encode"]
