"""The API server's semantics, independent of HTTP: create, read, list, update, patch, delete.

What clients rely on lives here: uid, a global resourceVersion, creationTimestamp, generateName,
optimistic concurrency (409 on a stale resourceVersion), the status subresource, finalizers,
deletion with grace (pods are deleted by the runtime once their processes are gone), namespace
termination, ownerReference garbage collection, and ``limit``/``continue`` over a snapshot.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from . import defaults, pagination
from .clock import rfc3339
from .collector import GarbageCollector
from .object_rules import delete_answer, merged_update, namespace_terminating, new_object
from .pagination import Snapshots
from .patch import apply_patch
from .resources import Registry, ResourceType
from .selectors import FieldSelector, LabelSelector
from .status import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    not_found,
)
from .store import Obj, Store

log = logging.getLogger(__name__)
_UNDELETABLE_NAMESPACES = ("default", "kube-system", "kube-public")


class PodLifecycle(Protocol):
    """What the API needs from the pod runtime."""

    def pod_created(self, pod: Obj) -> None: ...

    def pod_deleting(self, pod: Obj, grace_seconds: int) -> bool:
        """Start stopping the pod; True when the runtime will call ``finish_pod_deletion``."""
        ...

    def pod_active(self, uid: str) -> bool:
        """Whether the pod's worker still runs (its processes may be alive)."""
        ...


class Api:
    def __init__(self, *, store: Store | None = None, registry: Registry | None = None) -> None:
        self.store = store or Store()
        self.registry = registry or Registry.default()
        self.runtime: PodLifecycle | None = None
        self.snapshots = Snapshots()
        self.gc = GarbageCollector(self)
        self.on_write: list[Callable[[ResourceType, str, Obj | None], None]] = []

    # helpers ---------------------------------------------------------------------------------

    def _now(self) -> str:
        return rfc3339()

    def _require_namespace(self, rtype: ResourceType, namespace: str, name: str) -> None:
        if not rtype.namespaced:
            return
        ns = self.store.get("namespaces", "", namespace)
        if ns is None:
            raise not_found("namespaces", "", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise namespace_terminating(rtype, namespace, name)

    def _get_or_404(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rtype.key, namespace if rtype.namespaced else "", name)
        if obj is None:
            raise not_found(rtype.plural, rtype.group, name)
        return obj

    def _stamp(self, obj: Obj, rv: int) -> Obj:
        obj["metadata"]["resourceVersion"] = str(rv)
        return obj

    def _notify(self, rtype: ResourceType, namespace: str, obj: Obj | None) -> None:
        for hook in self.on_write:
            hook(rtype, namespace, obj)

    # create ----------------------------------------------------------------------------------

    def create(
        self, rtype: ResourceType, namespace: str, body: Obj, *, dry_run: bool = False
    ) -> Obj:
        obj = new_object(rtype, namespace, body)
        name = obj["metadata"]["name"]
        with self.store.lock:
            self._require_namespace(rtype, namespace, name)
            key_ns = namespace if rtype.namespaced else ""
            if self.store.get(rtype.key, key_ns, name) is not None:
                raise already_exists(rtype.plural, rtype.group, name)
            if dry_run:
                return obj
            rv = self.store.next_rv()
            self._stamp(obj, rv)
            self.store.put(rtype.key, obj, rv=rv, event="ADDED")
        self._after_create(rtype, obj)
        return obj

    def _after_create(self, rtype: ResourceType, obj: Obj) -> None:
        if rtype.key == "namespaces":
            name = obj["metadata"]["name"]
            sa = self.registry.lookup("", "v1", "serviceaccounts")
            if sa is not None:
                with contextlib.suppress(ApiError):
                    self.create(sa, name, {"metadata": {"name": "default"}})
        if rtype.key == "customresourcedefinitions.apiextensions.k8s.io":
            defaults.register_crd(self.registry, obj)
        if rtype.key == "pods" and self.runtime is not None:
            self.runtime.pod_created(obj)
        self._notify(rtype, obj["metadata"].get("namespace", ""), obj)

    # read ------------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        return self._get_or_404(rtype, namespace, name)

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> Obj:
        labels = labels or LabelSelector()
        fields = fields or FieldSelector()
        if continue_token:
            rv, offset, snap_id, items = self.snapshots.resume(continue_token)
        else:
            with self.store.lock:
                rv = self.store.resource_version
                name = fields.name()
                if name is not None and namespace is not None:
                    one = self.store.get(rtype.key, namespace, name)
                    found = [((namespace, name), one)] if one is not None else []
                else:
                    found = self.store.candidates(rtype.key, namespace, labels.equalities())
            items = [
                obj
                for _, obj in found
                if labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)
            ]
            offset = 0
            snap_id = ""
        page = items[offset:] if limit <= 0 else items[offset : offset + limit]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        end = offset + len(page)
        if limit > 0 and end < len(items):
            if not snap_id:
                snap_id = self.snapshots.save(rv, items)
            meta["continue"] = pagination.encode(rv, end, snap_id)
            meta["remainingItemCount"] = len(items) - end
        return {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": meta,
            "items": page,
        }

    def forget_snapshots(self) -> None:
        self.snapshots.clear()

    # update / patch --------------------------------------------------------------------------

    def replace(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        with self.store.lock:
            old = self._get_or_404(rtype, namespace, name)
            want_rv = (body.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise conflict(rtype.plural, rtype.group, name)
            new = merged_update(rtype, old, copy.deepcopy(body), subresource)
            return self._write(rtype, old, new, dry_run=dry_run)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        with self.store.lock:
            old = self._get_or_404(rtype, namespace, name)
            patched = apply_patch(content_type, copy.deepcopy(old), body)
            want_rv = None
            if isinstance(body, dict):
                want_rv = (body.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise conflict(rtype.plural, rtype.group, name)
            new = merged_update(rtype, old, patched, subresource)
            return self._write(rtype, old, new, dry_run=dry_run)

    def _write(self, rtype: ResourceType, old: Obj, new: Obj, *, dry_run: bool = False) -> Obj:
        meta = new["metadata"]
        ns = meta.get("namespace", "")
        comparable_old = {**old, "metadata": {**old["metadata"], "resourceVersion": None}}
        comparable_new = {**new, "metadata": {**meta, "resourceVersion": None}}
        if comparable_old == comparable_new:
            return old  # a no-op write does not bump the resourceVersion, as on a real server
        if dry_run:
            return new
        # The last finalizer went: the object goes (a pod once its processes have ended).
        pod_alive = (
            rtype.key == "pods"
            and self.runtime is not None
            and self.runtime.pod_active(meta["uid"])
        )
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not pod_alive:
            self.remove(rtype, new)
            return new
        rv = self.store.next_rv()
        self._stamp(new, rv)
        self.store.put(rtype.key, new, rv=rv, event="MODIFIED")
        self._notify(rtype, ns, new)
        return new

    def update_with(
        self, rtype: ResourceType, namespace: str, name: str, change: Callable[[Obj], None]
    ) -> Obj | None:
        """Internal writer (the runtime): apply ``change`` to a copy and store it; None if gone."""
        with self.store.lock:
            old = self.store.get(rtype.key, namespace if rtype.namespaced else "", name)
            if old is None:
                return None
            new = copy.deepcopy(old)
            change(new)
            if new == old:
                return old
            rv = self.store.next_rv()
            self._stamp(new, rv)
            self.store.put(rtype.key, new, rv=rv, event="MODIFIED")
        self._notify(rtype, namespace, new)
        return new

    # delete ----------------------------------------------------------------------------------

    def delete(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        *,
        grace_seconds: int | None = None,
        propagation: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        with self.store.lock:
            obj = self._get_or_404(rtype, namespace, name)
            meta = obj["metadata"]
            pre = preconditions or {}
            if (pre.get("uid") and pre["uid"] != meta["uid"]) or (
                pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]
            ):
                raise conflict(rtype.plural, rtype.group, name)
            if dry_run:
                return delete_answer(rtype, obj)
            if propagation is None:
                propagation = "Orphan" if rtype.default_orphan else "Background"
            if propagation == "Orphan":
                self.gc.orphan_dependents(meta["uid"])
            if rtype.key == "namespaces":
                if name in _UNDELETABLE_NAMESPACES:
                    raise ApiError(
                        403,
                        f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                        details={"name": name, "kind": "namespaces"},
                    )
                return delete_answer(rtype, self._terminate_namespace(rtype, obj))
            if rtype.key == "pods":
                return delete_answer(rtype, self._delete_pod(rtype, obj, grace_seconds))
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return delete_answer(rtype, obj)
                new = copy.deepcopy(obj)
                new["metadata"]["deletionTimestamp"] = self._now()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                rv = self.store.next_rv()
                self._stamp(new, rv)
                self.store.put(rtype.key, new, rv=rv, event="MODIFIED")
                return delete_answer(rtype, new)
            final = self.remove(rtype, obj)
        return delete_answer(rtype, final)

    def _delete_pod(self, rtype: ResourceType, pod: Obj, grace_seconds: int | None) -> Obj:
        meta = pod["metadata"]
        if grace_seconds is None:
            grace_seconds = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        if meta.get("deletionTimestamp"):
            # Already terminating: a shorter grace period may still speed it up.
            if self.runtime is not None and grace_seconds == 0:
                self.runtime.pod_deleting(pod, 0)
                return self.remove(rtype, pod)
            return pod
        pending = self.runtime is not None and self.runtime.pod_deleting(pod, grace_seconds)
        if pending and grace_seconds > 0:
            new = copy.deepcopy(pod)
            new["metadata"]["deletionTimestamp"] = rfc3339(time.time() + grace_seconds)
            new["metadata"]["deletionGracePeriodSeconds"] = grace_seconds
            rv = self.store.next_rv()
            self._stamp(new, rv)
            self.store.put(rtype.key, new, rv=rv, event="MODIFIED")
            return new
        if meta.get("finalizers"):
            new = copy.deepcopy(pod)
            new["metadata"]["deletionTimestamp"] = self._now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            rv = self.store.next_rv()
            self._stamp(new, rv)
            self.store.put(rtype.key, new, rv=rv, event="MODIFIED")
            return new
        return self.remove(rtype, pod)

    def finish_pod_deletion(self, namespace: str, name: str, uid: str) -> None:
        """Called by the runtime once a terminating pod's processes are gone."""
        rtype = self.registry.lookup("", "v1", "pods")
        assert rtype is not None
        with self.store.lock:
            pod = self.store.get("pods", namespace, name)
            if pod is None or pod["metadata"]["uid"] != uid:
                return
            if pod["metadata"].get("finalizers"):
                return
            self.remove(rtype, pod)

    def remove(self, rtype: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        with self.store.lock:
            rv = self.store.next_rv()
            final = copy.deepcopy(obj)
            self._stamp(final, rv)
            self.store.remove(rtype.key, ns, meta["name"], rv=rv, final=final)
        self._notify(rtype, ns, None)
        if rtype.key == "customresourcedefinitions.apiextensions.k8s.io":
            defaults.unregister_crd(self.registry, obj)
        # Garbage collection runs outside the caller's critical path.
        threading.Thread(
            target=self.gc.collect, args=(meta["uid"],), name="sandbox-gc", daemon=True
        ).start()
        return final

    def _terminate_namespace(self, rtype: ResourceType, ns_obj: Obj) -> Obj:
        if ns_obj["metadata"].get("deletionTimestamp"):
            return ns_obj
        new = copy.deepcopy(ns_obj)
        new["metadata"]["deletionTimestamp"] = self._now()
        new.setdefault("status", {})["phase"] = "Terminating"
        rv = self.store.next_rv()
        self._stamp(new, rv)
        self.store.put(rtype.key, new, rv=rv, event="MODIFIED")
        threading.Thread(
            target=self.gc.empty_namespace,
            args=(new["metadata"]["name"],),
            name="sandbox-ns-delete",
            daemon=True,
        ).start()
        return new

    def delete_collection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
        grace_seconds: int | None = None,
        propagation: str | None = None,
    ) -> Obj:
        listing = self.list(rtype, namespace, labels=labels, fields=fields)
        for item in listing["items"]:
            meta = item["metadata"]
            try:
                self.delete(
                    rtype,
                    meta.get("namespace", ""),
                    meta["name"],
                    grace_seconds=grace_seconds,
                    propagation=propagation,
                )
            except ApiError as exc:
                if exc.code != 404:
                    raise
        listing["items"] = []
        return listing
