"""In-memory object storage with a global resourceVersion, indexes and a bounded event history.

Objects are immutable once stored: every write stores a new dict, so a list snapshot (for
``limit``/``continue``) or a watch event can hold references without copying. Indexes by
namespace, by label (key, value) and by owner uid keep lists, selectors and garbage collection
fast at tens of thousands of objects. The history is what watches replay from; events older than
the history are gone and a watch asking for them gets 410.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
Obj = dict[str, Any]


@dataclass(frozen=True)
class Change:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    rkey: str
    namespace: str
    obj: Obj
    old: Obj | None


class _Table:
    """All objects of one resource type, with their indexes."""

    def __init__(self) -> None:
        self.objects: dict[Key, Obj] = {}
        self.by_ns: dict[str, set[str]] = {}
        self.by_label: dict[tuple[str, str], set[Key]] = {}
        self.sorted_cache: dict[str | None, list[Key]] = {}

    def index(self, key: Key, obj: Obj) -> None:
        self.by_ns.setdefault(key[0], set()).add(key[1])
        for pair in (obj.get("metadata", {}).get("labels") or {}).items():
            self.by_label.setdefault(pair, set()).add(key)

    def unindex(self, key: Key, obj: Obj) -> None:
        names = self.by_ns.get(key[0])
        if names is not None:
            names.discard(key[1])
            if not names:
                del self.by_ns[key[0]]
        for pair in (obj.get("metadata", {}).get("labels") or {}).items():
            keys = self.by_label.get(pair)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.by_label[pair]

    def sorted_keys(self, namespace: str | None) -> list[Key]:
        # Rebuilt lazily after a create or delete: pagination over a stable set sorts once.
        cached = self.sorted_cache.get(namespace)
        if cached is None:
            if namespace is None:
                cached = sorted(self.objects)
            else:
                cached = sorted((namespace, n) for n in self.by_ns.get(namespace, ()))
            self.sorted_cache[namespace] = cached
        return cached


class Store:
    def __init__(self, *, history: int = 20000, first_rv: int = 1000) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._rv = first_rv
        self._tables: dict[str, _Table] = {}
        self._by_owner: dict[str, set[tuple[str, Key]]] = {}
        self._history: deque[Change] = deque()
        self._history_max = history
        self._evicted_rv = first_rv  # every change with rv <= this is no longer replayable

    # reads -----------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def oldest_replayable(self) -> int:
        return self._evicted_rv

    def _table(self, rkey: str) -> _Table:
        table = self._tables.get(rkey)
        if table is None:
            table = self._tables[rkey] = _Table()
        return table

    def get(self, rkey: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            return self._table(rkey).objects.get((namespace, name))

    def count(self, rkey: str, namespace: str | None = None) -> int:
        with self.lock:
            table = self._table(rkey)
            if namespace is None:
                return len(table.objects)
            return len(table.by_ns.get(namespace, ()))

    def candidates(
        self, rkey: str, namespace: str | None, equalities: Iterable[tuple[str, str]] = ()
    ) -> list[tuple[Key, Obj]]:
        """Objects sorted by key, narrowed by namespace and the most selective label index."""
        with self.lock:
            table = self._table(rkey)
            best: set[Key] | None = None
            for pair in equalities:
                keys = table.by_label.get(pair, set())
                if best is None or len(keys) < len(best):
                    best = keys
            if best is not None:
                # A namespaced LIST over a label shared by the whole cluster (discovery's
                # enabled label) must not scan every namespace's matches: start from the
                # smaller of the namespace's names and the label's keys.
                names = table.by_ns.get(namespace, set()) if namespace is not None else None
                if namespace is not None and names is not None and len(names) <= len(best):
                    ns: str = namespace
                    keys_sorted = sorted((ns, n) for n in names if (ns, n) in best)
                else:
                    keys_sorted = sorted(k for k in best if namespace is None or k[0] == namespace)
            else:
                keys_sorted = table.sorted_keys(namespace)
            objects = table.objects
            return [(k, objects[k]) for k in keys_sorted]

    def namespaces_in_use(self, namespace: str) -> list[tuple[str, str]]:
        """(rkey, name) of every object in a namespace."""
        with self.lock:
            return [
                (rkey, name)
                for rkey, table in self._tables.items()
                for name in sorted(table.by_ns.get(namespace, ()))
                if namespace
            ]

    def dependents(self, uid: str) -> list[tuple[str, Key]]:
        with self.lock:
            return sorted(self._by_owner.get(uid, ()))

    def changes_since(self, rv: int) -> list[Change]:
        with self.lock:
            if not self._history or self._history[-1].rv <= rv:
                return []
            # History is ordered by rv: skip from the left quickly with a bisect-like scan.
            items = self._history
            lo, hi = 0, len(items)
            while lo < hi:
                mid = (lo + hi) // 2
                if items[mid].rv <= rv:
                    lo = mid + 1
                else:
                    hi = mid
            return [items[i] for i in range(lo, len(items))]

    # writes ----------------------------------------------------------------------------------

    def next_rv(self) -> int:
        with self.lock:
            self._rv += 1
            return self._rv

    def put(self, rkey: str, obj: Obj, *, rv: int, event: str) -> None:
        """Store ``obj`` (already stamped with ``rv``) and record the change."""
        meta = obj["metadata"]
        key = (meta.get("namespace") or "", meta["name"])
        with self.lock:
            table = self._table(rkey)
            old = table.objects.get(key)
            if old is not None:
                table.unindex(key, old)
                self._unindex_owner(rkey, key, old)
            else:
                for ns in (None, key[0]):
                    table.sorted_cache.pop(ns, None)
            table.objects[key] = obj
            table.index(key, obj)
            self._index_owner(rkey, key, obj)
            self._record(Change(rv, event, rkey, key[0], obj, old))

    def remove(self, rkey: str, namespace: str, name: str, *, rv: int, final: Obj) -> None:
        key = (namespace, name)
        with self.lock:
            table = self._table(rkey)
            old = table.objects.pop(key, None)
            if old is None:
                return
            table.unindex(key, old)
            self._unindex_owner(rkey, key, old)
            for ns in (None, namespace):
                table.sorted_cache.pop(ns, None)
            self._record(Change(rv, "DELETED", rkey, namespace, final, old))

    def compact(self) -> None:
        """Forget the whole event history (as etcd compaction does): old watches get 410."""
        with self.lock:
            self._history.clear()
            self._evicted_rv = self._rv
            self.changed.notify_all()

    def _record(self, change: Change) -> None:
        self._history.append(change)
        while len(self._history) > self._history_max:
            self._evicted_rv = self._history.popleft().rv
        self.changed.notify_all()

    def _index_owner(self, rkey: str, key: Key, obj: Obj) -> None:
        for ref in obj.get("metadata", {}).get("ownerReferences") or []:
            uid = ref.get("uid")
            if uid:
                self._by_owner.setdefault(uid, set()).add((rkey, key))

    def _unindex_owner(self, rkey: str, key: Key, obj: Obj) -> None:
        for ref in obj.get("metadata", {}).get("ownerReferences") or []:
            deps = self._by_owner.get(ref.get("uid", ""))
            if deps is not None:
                deps.discard((rkey, key))
                if not deps:
                    del self._by_owner[ref["uid"]]
