"""Garbage collection: dependents of a deleted owner, orphaning, and namespace termination.

Runs in background threads after the owner is gone, as the controller manager's garbage
collector and namespace controller do: a dependent whose owners are all gone is deleted
(background propagation), one that still has a live owner only loses the dead reference; a
terminating namespace is emptied (finalizers of already-deleted objects dropped) and then removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from .resources import Registry, ResourceType
from .status import ApiError
from .store import Obj, Store

log = logging.getLogger(__name__)


class ObjectWriter(Protocol):
    """What the collector needs from the API (``api.Api``, which owns the collector): the API
    calls the collector and the collector writes through the API, so this seam keeps the two
    modules from importing each other."""

    store: Store
    registry: Registry

    def update_with(
        self, rtype: ResourceType, namespace: str, name: str, change: Callable[[Obj], None]
    ) -> Obj | None: ...

    def delete(
        self, rtype: ResourceType, namespace: str, name: str, *, propagation: str | None = None
    ) -> Obj: ...

    def finish_pod_deletion(self, namespace: str, name: str, uid: str) -> None: ...

    def remove(self, rtype: ResourceType, obj: Obj) -> Obj:
        """Remove ``obj`` from the store now, finalizers or not."""
        ...


class GarbageCollector:
    def __init__(self, api: ObjectWriter) -> None:
        self.api = api

    def collect(self, uid: str) -> None:
        try:
            self._collect_dependents(uid)
        except Exception:  # a GC bug must not kill the caller's test with a thread exception
            log.exception("sandbox: garbage collection of dependents of %s failed", uid)

    def _collect_dependents(self, uid: str) -> None:
        for rkey, (ns, name) in self.api.store.dependents(uid):
            rtype = self.api.registry.by_key(rkey)
            if rtype is None:
                continue
            with self.api.store.lock:
                dep = self.api.store.get(rkey, ns, name)
                if dep is None:
                    continue
                refs = dep["metadata"].get("ownerReferences") or []
                alive = [r for r in refs if r.get("uid") != uid and self._owner_exists(r, ns)]
            try:
                if alive:

                    def keep_alive(o: Obj, keep: list[Any] = alive) -> None:
                        o["metadata"]["ownerReferences"] = keep

                    self.api.update_with(rtype, ns, name, keep_alive)
                else:
                    self.api.delete(rtype, ns, name, propagation="Background")
            except ApiError:
                continue

    def _owner_exists(self, ref: dict[str, Any], namespace: str) -> bool:
        rtype = self.api.registry.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if rtype is None:
            return False
        owner = self.api.store.get(
            rtype.key, namespace if rtype.namespaced else "", ref.get("name", "")
        )
        return owner is not None and owner["metadata"]["uid"] == ref.get("uid")

    def orphan_dependents(self, uid: str) -> None:
        for rkey, (ns, name) in self.api.store.dependents(uid):
            rtype = self.api.registry.by_key(rkey)
            if rtype is None:
                continue

            def drop(obj: Obj) -> None:
                refs = [
                    r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
                ]
                if refs:
                    obj["metadata"]["ownerReferences"] = refs
                else:
                    obj["metadata"].pop("ownerReferences", None)

            self.api.update_with(rtype, ns, name, drop)

    def empty_namespace(self, namespace: str) -> None:
        try:
            self._empty_namespace_now(namespace)
        except Exception:
            log.exception("sandbox: terminating namespace %s failed", namespace)

    def _empty_namespace_now(self, namespace: str) -> None:
        nstype = self.api.registry.lookup("", "v1", "namespaces")
        assert nstype is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            contents = self.api.store.namespaces_in_use(namespace)
            if not contents:
                break
            for rkey, name in contents:
                rtype = self.api.registry.by_key(rkey)
                if rtype is None:
                    continue
                try:
                    obj = self.api.store.get(rkey, namespace, name)
                    if (
                        obj is not None
                        and obj["metadata"].get("deletionTimestamp")
                        and obj["metadata"].get("finalizers")
                    ):
                        self.api.update_with(
                            rtype,
                            namespace,
                            name,
                            lambda o: o["metadata"].pop("finalizers", None),
                        )
                        self.api.finish_pod_deletion(namespace, name, obj["metadata"]["uid"])
                    self.api.delete(rtype, namespace, name, propagation="Background")
                except ApiError:
                    continue
            time.sleep(0.05)
        with self.api.store.lock:
            ns_obj = self.api.store.get("namespaces", "", namespace)
            if ns_obj is not None:
                self.api.remove(nstype, ns_obj)
