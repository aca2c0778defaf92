"""Endpoints that are not resource CRUD: discovery, OpenAPI, health, access reviews, tokens,
evictions, and the sandbox's own admin API under ``/_sandbox/``.
"""

from __future__ import annotations

import time
from typing import Any

from . import discovery
from .clock import rfc3339
from .exchange import Exchange
from .faults import ADMIN_PREFIX
from .protocol import Route
from .rbac import Request
from .status import ApiError, bad_request, not_found


def serve_non_resource(router: Exchange) -> bool:
    path = router.path
    registry = router.sb.api.registry
    if path in ("/healthz", "/livez", "/readyz") or path.startswith(
        ("/healthz/", "/livez/", "/readyz/")
    ):
        router.h.send_bytes(200, b"ok", "text/plain; charset=utf-8")
        return True
    if path == "/openapi/v2":
        # An empty OpenAPI v2 document (zero bytes is a valid empty protobuf message): kubectl's
        # client-side validation then finds no schema for any kind and lets the server decide.
        router.authorize_path()
        if "protobuf" in router.accept:
            router.h.send_bytes(
                200, b"", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
            )
        else:
            router.h.send_json(
                200,
                {
                    "swagger": "2.0",
                    "info": {
                        "title": "Kubernetes (sandbox)",
                        "version": discovery.VERSION["gitVersion"],
                    },
                    "paths": {},
                    "definitions": {},
                },
            )
        return True
    if path.startswith("/openapi"):
        router.authorize_path()
        raise ApiError(404, "the server could not find the requested resource", reason="NotFound")
    doc: Any = None
    content_type = "application/json"
    if path == "/version":
        doc = discovery.VERSION
    elif path == "/api":
        agg = discovery.wants_aggregated(router.accept)
        if agg:
            doc, content_type = discovery.aggregated(registry, core=True, content_type=agg), agg
        else:
            doc = discovery.api_versions(f"127.0.0.1:{router.sb.port}")
    elif path == "/api/v1":
        doc = discovery.resource_list(registry, "", "v1")
    elif path == "/apis":
        agg = discovery.wants_aggregated(router.accept)
        if agg:
            doc, content_type = (
                discovery.aggregated(registry, core=False, content_type=agg),
                agg,
            )
        else:
            doc = discovery.api_group_list(registry)
    else:
        parts = path.strip("/").split("/")
        if parts[0] == "apis" and len(parts) == 2:
            doc = discovery.api_group(registry, parts[1])
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
        elif parts[0] == "apis" and len(parts) == 3:
            if parts[2] not in registry.groups().get(parts[1], []):
                raise ApiError(404, "the server could not find the requested resource")
            doc = discovery.resource_list(registry, parts[1], parts[2])
    if doc is None:
        return False
    router.authorize_path()
    router.h.send_json(200, doc, content_type=content_type)
    return True


def create_subresource(router: Exchange, route: Route) -> None:
    ns = route.namespace or ""
    body = router.body_json()
    if route.subresource == "token":
        sa = router.sb.api.get(route.rtype, ns, route.name)
        seconds = int(((body or {}).get("spec") or {}).get("expirationSeconds") or 3600)
        token = router.sb.tokens.issue(f"system:serviceaccount:{ns}:{sa['metadata']['name']}")
        router.h.send_json(
            201,
            {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": route.name, "namespace": ns, "creationTimestamp": None},
                "spec": {
                    "audiences": (body.get("spec") or {}).get("audiences")
                    or ["https://kubernetes.default.svc"],
                    "expirationSeconds": seconds,
                    "boundObjectRef": None,
                },
                "status": {
                    "token": token,
                    "expirationTimestamp": rfc3339(time.time() + seconds),
                },
            },
        )
        return
    options = (body or {}).get("deleteOptions") or {}
    router.sb.api.delete(
        route.rtype, ns, route.name, grace_seconds=options.get("gracePeriodSeconds")
    )
    router.h.send_json(
        201,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        },
    )


def self_rules_review(router: Exchange) -> None:
    body = router.body_json()
    namespace = str(((body or {}).get("spec") or {}).get("namespace") or "")
    resource_rules, non_resource_rules = router.sb.authorizer.rules_for(router.user, namespace)
    out = dict(body or {})
    out.update({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1"})
    out.setdefault("metadata", {})
    out["status"] = {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": False,
    }
    router.h.send_json(201, out)


def self_access_review(router: Exchange) -> None:
    body = router.body_json()
    attrs = ((body or {}).get("spec") or {}).get("resourceAttributes") or {}
    non = ((body or {}).get("spec") or {}).get("nonResourceAttributes") or {}
    if non:
        req = Request(verb=non.get("verb", ""), path=non.get("path", ""))
    else:
        req = Request(
            verb=attrs.get("verb", ""),
            group=attrs.get("group", ""),
            resource=attrs.get("resource", ""),
            subresource=attrs.get("subresource", ""),
            namespace=attrs.get("namespace", ""),
            name=attrs.get("name", ""),
        )
    allowed = router.sb.authorizer.allowed(router.user, req)
    out = dict(body or {})
    out.update({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1"})
    out.setdefault("metadata", {})
    out["status"] = {"allowed": allowed}
    router.h.send_json(201, out)


# admin -----------------------------------------------------------------------------------


def serve_admin(router: Exchange) -> None:
    if router.sb.rbac and not router.user.is_admin:
        raise ApiError(403, "the sandbox admin endpoint needs the admin token")
    path = router.path[len(ADMIN_PREFIX) :]
    if path == "healthz":
        router.h.send_bytes(200, b"ok", "text/plain")
    elif path == "faults" and router.method == "POST":
        body = router.body_json()
        if not isinstance(body, dict):
            raise bad_request('the fault body must be an object such as {"action": "clear"}')
        router.sb.faults.apply_json(body)
        router.h.send_json(200, {"ok": True})
    elif path == "faults" and router.method == "DELETE":
        router.sb.faults.clear()
        router.h.send_json(200, {"ok": True})
    elif path == "tokens" and router.method == "POST":
        body = router.body_json()
        user = str((body or {}).get("user", ""))
        if not user:
            raise bad_request('a token needs a user: {"user": "system:serviceaccount:ns:name"}')
        token = router.sb.tokens.issue(user, tuple((body or {}).get("groups") or ()))
        router.h.send_json(201, {"token": token, "user": user})
    else:
        raise not_found("sandbox-admin", "", path)
