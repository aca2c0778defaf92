"""Routing Kubernetes REST paths to the API: resource CRUD, lists, patches, deletes.

A :class:`Router` is made per request. It authenticates the bearer token, applies injected
faults, answers non-resource paths (see :mod:`sandbox.endpoints`), parses the resource path,
authorizes the verb with RBAC and calls :class:`sandbox.api.Api`. Watches and logs are streamed
by :mod:`sandbox.streams`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from . import endpoints, protobuf, streams, tables
from .exchange import Responder, Served
from .faults import ADMIN_PREFIX
from .protocol import Route, flag, integer
from .rbac import ANONYMOUS, Request, User, forbidden, unauthorized
from .resources import ResourceType
from .selectors import parse_field_selector, parse_label_selector
from .status import ApiError, bad_request

Obj = dict[str, Any]

_VERB_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch"}
_SUBRESOURCE_VERBS = {
    "status": ("get", "update", "patch"),
    "log": ("get",),
    "token": ("create",),
    "eviction": ("create",),
    "finalize": ("update",),
}


class Router:
    def __init__(self, handler: Responder, sandbox: Served) -> None:
        self.h = handler
        self.sb = sandbox
        self.method = handler.command
        parts = urlsplit(handler.path)
        self.path = parts.path.rstrip("/") or "/"
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.accept = handler.headers.get("Accept", "")
        self.user: User = ANONYMOUS

    # entry -----------------------------------------------------------------------------------

    def handle(self) -> None:
        if not self.path.startswith(ADMIN_PREFIX):
            self.sb.faults.before_request(self.method, self.path)
        user = self.sb.tokens.authenticate(self.h.headers.get("Authorization"))
        if user is None:
            if self.sb.rbac:
                raise unauthorized()
            user = ANONYMOUS
        if (
            self.sb.rbac
            and user is ANONYMOUS
            and self.path not in ("/healthz", "/livez", "/readyz", "/version")
        ):
            raise unauthorized()
        self.user = user
        if self.path.startswith(ADMIN_PREFIX):
            endpoints.serve_admin(self)
            return
        if endpoints.serve_non_resource(self):
            return
        route = self._route()
        self._serve(route)

    # authorization ---------------------------------------------------------------------------

    def authorize_path(self) -> None:
        req = Request(verb=self.method.lower(), path=self.path)
        if not self.sb.authorizer.allowed(self.user, req):
            raise forbidden(self.user, req)

    # routing ---------------------------------------------------------------------------------

    def _route(self) -> Route:
        parts = self.path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource")
        watch_path = False
        if rest and rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        registry = self.sb.api.registry
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = registry.lookup(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        if not rest:
            raise ApiError(404, "the server could not find the requested resource")
        rtype = registry.lookup(group, version, rest[0])
        if rtype is None:
            raise ApiError(404, "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = "/".join(rest[2:]) if len(rest) > 2 else ""
        if sub and sub not in rtype.subresources:
            raise ApiError(404, "the server could not find the requested resource")
        if rtype.namespaced and namespace is None and name:
            raise ApiError(404, "the server could not find the requested resource")
        return Route(rtype, namespace, name, sub, watch_path)

    def _verb(self, route: Route) -> str:
        if self.method == "GET":
            if route.watch_path or flag(self.query, "watch"):
                return "watch"
            return "get" if route.name else "list"
        if self.method == "DELETE":
            return "delete" if route.name else "deletecollection"
        verb = _VERB_BY_METHOD.get(self.method)
        if verb is None:
            raise ApiError(405, f"method {self.method} is not allowed")
        return verb

    def body_json(self) -> Any:
        raw = self.h.body
        if not raw:
            return {}
        ctype = self.h.headers.get("Content-Type", "")
        if "protobuf" in ctype:
            try:
                return protobuf.decode(raw)
            except protobuf.ProtobufError as exc:
                raise ApiError(415, str(exc), reason="UnsupportedMediaType") from exc
        if "cbor" in ctype:
            raise ApiError(
                415,
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json, application/yaml "
                f"(the sandbox does not decode {ctype})",
                reason="UnsupportedMediaType",
            )
        try:
            if "yaml" in ctype:
                return yaml.safe_load(raw.decode())
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc

    def _serve(self, route: Route) -> None:
        verb = self._verb(route)
        self._authorize(route, verb)
        if not self._serve_special(route, verb):
            self._serve_crud(route, verb)

    def _authorize(self, route: Route, verb: str) -> None:
        """RBAC on the verb, then the verbs the subresource supports."""
        rtype = route.rtype
        ns = route.namespace or ""
        # As the real apiserver's RequestInfo: a request on one Namespace object is made *in*
        # that namespace, so a RoleBinding there can grant it and a denial names it.
        authz_ns = ns
        if not ns and rtype.group == "" and rtype.plural == "namespaces" and route.name:
            authz_ns = route.name
        req = Request(
            verb=verb,
            group=rtype.group,
            resource=rtype.plural,
            subresource=route.subresource,
            namespace=authz_ns,
            name=route.name,
        )
        self.sb.authorizer.check(self.user, req)
        allowed = _SUBRESOURCE_VERBS.get(route.subresource)
        if route.subresource and allowed is not None and verb not in allowed:
            raise ApiError(
                405,
                f"the server does not allow this method on the requested resource "
                f"({rtype.plural}/{route.subresource} supports {', '.join(allowed)})",
                reason="MethodNotAllowed",
            )

    def _serve_special(self, route: Route, verb: str) -> bool:
        """Logs, tokens, evictions and access reviews; False for plain CRUD."""
        rtype = route.rtype
        if route.subresource == "log":
            streams.serve_logs(self, route)
        elif route.subresource in ("token", "eviction") and verb == "create":
            endpoints.create_subresource(self, route)
        elif rtype.kind == "SelfSubjectRulesReview" and verb == "create":
            endpoints.self_rules_review(self)
        elif rtype.kind == "SelfSubjectAccessReview" and verb == "create":
            endpoints.self_access_review(self)
        else:
            return False
        return True

    def _serve_crud(self, route: Route, verb: str) -> None:
        rtype = route.rtype
        ns = route.namespace or ""
        api = self.sb.api
        dry_run = "All" in self.query.get("dryRun", [])
        if verb in ("list", "watch"):
            self._serve_collection(route, verb)
        elif verb == "get":
            obj = api.get(rtype, ns, route.name)
            if route.subresource and route.subresource != "status":
                raise ApiError(405, f"{rtype.plural}/{route.subresource} does not support get")
            self._send_objects(rtype, obj, is_list=False)
        elif verb == "create":
            if route.name:
                raise ApiError(
                    405, "the server does not allow this method on the requested resource"
                )
            obj = api.create(rtype, ns, self.body_json(), dry_run=dry_run)
            self.h.send_json(201, obj)
        elif verb == "update":
            obj = api.replace(
                rtype,
                ns,
                route.name,
                self.body_json(),
                subresource=route.subresource or None,
                dry_run=dry_run,
            )
            self.h.send_json(200, obj)
        elif verb == "patch":
            ctype = self.h.headers.get("Content-Type", "application/merge-patch+json")
            obj = api.patch(
                rtype,
                ns,
                route.name,
                ctype,
                self.body_json(),
                subresource=route.subresource or None,
                dry_run=dry_run,
            )
            self.h.send_json(200, obj)
        elif verb in ("delete", "deletecollection"):
            self._serve_delete(route, verb, dry_run=dry_run)

    def _serve_collection(self, route: Route, verb: str) -> None:
        """A list, or a watch (streamed until the client or the sandbox stops it)."""
        rtype = route.rtype
        labels = parse_label_selector(self.query.get("labelSelector", [""])[-1])
        fields = parse_field_selector(self.query.get("fieldSelector", [""])[-1], kind=rtype.kind)
        if route.name:  # GET /watch/.../name
            fields = parse_field_selector(f"metadata.name={route.name}")
        if verb == "watch":
            streams.serve_watch(self, route, labels, fields)
            return
        listing = self.sb.api.list(
            rtype,
            route.namespace,
            labels=labels,
            fields=fields,
            limit=integer(self.query, "limit") or 0,
            continue_token=self.query.get("continue", [""])[-1] or None,
        )
        self._send_objects(rtype, listing, is_list=True)

    def _serve_delete(self, route: Route, verb: str, *, dry_run: bool) -> None:
        """DELETE of one object or a collection; options from the body or the query."""
        rtype = route.rtype
        body = self.body_json() if self.h.body else {}
        if not isinstance(body, dict):
            body = {}
        grace = body.get("gracePeriodSeconds", integer(self.query, "gracePeriodSeconds"))
        propagation = body.get("propagationPolicy") or (
            self.query.get("propagationPolicy", [""])[-1] or None
        )
        if body.get("orphanDependents") is True or flag(self.query, "orphanDependents"):
            propagation = "Orphan"
        if verb == "delete":
            obj = self.sb.api.delete(
                rtype,
                route.namespace or "",
                route.name,
                grace_seconds=grace,
                propagation=propagation,
                preconditions=body.get("preconditions"),
                dry_run=dry_run,
            )
        else:
            obj = self.sb.api.delete_collection(
                rtype,
                route.namespace,
                labels=parse_label_selector(self.query.get("labelSelector", [""])[-1]),
                fields=parse_field_selector(self.query.get("fieldSelector", [""])[-1]),
                grace_seconds=grace,
                propagation=propagation,
            )
        self.h.send_json(200, obj)

    def _send_objects(self, rtype: ResourceType, data: Obj, *, is_list: bool) -> None:
        if tables.wants_table(self.accept):
            include = self.query.get("includeObject", ["Metadata"])[-1]
            if is_list:
                meta = dict(data["metadata"])
                doc = tables.table(rtype.kind, data["items"], list_meta=meta, include=include)
            else:
                doc = tables.table(
                    rtype.kind,
                    [data],
                    list_meta={"resourceVersion": data["metadata"].get("resourceVersion", "")},
                    include=include,
                )
            self.h.send_json(200, doc)
            return
        self.h.send_json(200, data)
