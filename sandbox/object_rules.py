"""What the API server does to an object's fields when it is written, apart from storing it.

On create: apiVersion/kind defaulted and checked, the namespace taken from the URL, a name from
``generateName``, fresh uid/creationTimestamp/generation, system fields dropped, defaults and
validation. On update: identity and system fields kept from the stored object, the status
subresource, ``generation`` bumped only when the spec changed. On delete: the answer is the
object or a Status, as each type's real registry answers. Pure functions of the objects, so
``api.py`` keeps only storage, concurrency and the lifecycle around them.
"""

from __future__ import annotations

import copy
import random
import uuid
from typing import Any

from . import defaults
from .clock import rfc3339
from .resources import ResourceType
from .status import ApiError, bad_request, success_status
from .store import Obj
from .validation import normalize_secret, validate

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Types whose DELETE answers with the object rather than a Status (as their real registries do).
_RETURNS_OBJECT = {"pods", "namespaces", "customresourcedefinitions.apiextensions.k8s.io"}
# Fields the server owns: an update cannot change them.
_KEPT_ON_UPDATE = (
    "uid",
    "creationTimestamp",
    "namespace",
    "name",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


def new_object(rtype: ResourceType, namespace: str, body: Any) -> Obj:
    """The object a create stores (without resourceVersion): ``body`` completed and checked."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    obj = copy.deepcopy(body)
    obj.setdefault("apiVersion", rtype.api_version)
    obj.setdefault("kind", rtype.kind)
    if obj["kind"] != rtype.kind:
        raise bad_request(
            f"the kind of the provided object ({obj['kind']}) does not match the kind of the "
            f"request ({rtype.kind})"
        )
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    if rtype.namespaced:
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    if not meta.get("name") and meta.get("generateName"):
        suffix = "".join(random.choices(_GENERATE_ALPHABET, k=5))  # noqa: S311
        meta["name"] = f"{meta['generateName']}{suffix}"
    for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(field, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = rfc3339()
    meta["generation"] = 1
    if rtype.key == "secrets":
        normalize_secret(obj)
    defaults.apply(rtype, obj)
    validate(rtype, obj)
    return obj


def merged_update(rtype: ResourceType, old: Obj, new: Obj, subresource: str | None) -> Obj:
    """The stored object after an update: identity and system fields are kept from ``old``."""
    if subresource == "status":
        merged = copy.deepcopy(old)
        merged["status"] = new.get("status", {})
        return merged
    if subresource not in (None, "", "finalize"):
        raise ApiError(
            405, f"the server does not allow this method on {rtype.plural}/{subresource}"
        )
    new["apiVersion"] = old["apiVersion"]
    new["kind"] = old["kind"]
    meta = new.setdefault("metadata", {})
    old_meta = old["metadata"]
    for field in _KEPT_ON_UPDATE:
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    if rtype.has_status:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    if subresource == "finalize" and rtype.key == "namespaces":
        new["status"] = old.get("status", {})
    if rtype.key == "secrets":
        normalize_secret(new)
    if rtype.key == "pods":
        defaults.check_pod_update(old, new)
    validate(rtype, new)
    spec_old = {k: v for k, v in old.items() if k not in ("metadata", "status")}
    spec_new = {k: v for k, v in new.items() if k not in ("metadata", "status")}
    if spec_old != spec_new:
        meta["generation"] = int(old_meta.get("generation", 1)) + 1
    return new


def delete_answer(rtype: ResourceType, obj: Obj) -> Obj:
    """What DELETE returns: the object for some types, a Success Status for the others."""
    if rtype.key in _RETURNS_OBJECT or rtype.group not in (
        "",
        "batch",
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
    ):
        return obj
    meta = obj["metadata"]
    return success_status(name=meta["name"], group=rtype.group, kind=rtype.plural, uid=meta["uid"])


def namespace_terminating(rtype: ResourceType, namespace: str, name: str) -> ApiError:
    """The 403 for creating ``name`` in a namespace that is being deleted."""
    return ApiError(
        403,
        f'{rtype.plural} "{name}" is forbidden: unable to create new content in namespace '
        f"{namespace} because it is being terminated",
        details={
            "name": name,
            "kind": rtype.plural,
            "group": rtype.group,
            "causes": [
                {
                    "reason": "NamespaceTerminating",
                    "message": f"namespace {namespace} is being terminated",
                    "field": "metadata.namespace",
                }
            ],
        },
    )
