"""The HTTP side: routing Kubernetes REST paths to the API, streams, discovery and admin.

A ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive; each connection gets a daemon
thread. Watches and followed logs are chunked streams that check, on every event and every idle
tick, for shutdown and injected stream cuts. A cut (or shutdown) closes the socket without the
terminating chunk, which is what a dropped connection looks like to a client.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import yaml

from . import discovery, protobuf, tables
from .clock import parse_rfc3339_ns, rfc3339
from .faults import ADMIN_PREFIX, StreamState
from .logs import LogOptions
from .rbac import ANONYMOUS, Request, User, forbidden, unauthorized
from .resources import ResourceType
from .selectors import parse_field_selector, parse_label_selector
from .status import ApiError, bad_request, not_found, status_body
from .watch import watch_events

if TYPE_CHECKING:
    from .sandbox import Sandbox

log = logging.getLogger(__name__)
Obj = dict[str, Any]

_VERB_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch"}
_SUBRESOURCE_VERBS = {
    "status": ("get", "update", "patch"),
    "log": ("get",),
    "token": ("create",),
    "eviction": ("create",),
    "finalize": ("update",),
}


# What a client that went away looks like from the server side (TLS adds its own EOF errors).
_DROPPED = (BrokenPipeError, ConnectionResetError, ssl.SSLError)


class _AbortStreamError(Exception):
    """The stream was cut: close the connection without a terminating chunk."""


class Route:
    """A parsed resource path."""

    def __init__(
        self, rtype: ResourceType, namespace: str | None, name: str, subresource: str, watch: bool
    ) -> None:
        self.rtype = rtype
        self.namespace = namespace
        self.name = name
        self.subresource = subresource
        self.watch_path = watch


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], sandbox: Sandbox, *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.sandbox = sandbox
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, Handler)
        if tls is not None:
            # The handshake happens in the connection's own thread, on its first read, so a slow
            # client never holds up accept().
            self.socket = tls.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
    # delayed ACKs add ~40 ms to every response.
    disable_nagle_algorithm = True
    server: SandboxHTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # plumbing --------------------------------------------------------------------------------

    def handle(self) -> None:
        try:
            super().handle()
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError, TimeoutError):
            self.close_connection = True  # a client that dropped or failed the TLS handshake

    def _dispatch(self) -> None:
        try:
            self._body = self._read_body()
            Router(self).handle()
        except _AbortStreamError:
            self.close_connection = True
        except ApiError as exc:
            self.send_json(exc.code, exc.body(), headers=exc.headers)
        except _DROPPED:
            self.close_connection = True
        except Exception as exc:  # a bug in the sandbox: answer 500, keep serving
            log.exception("sandbox: internal error on %s %s", self.command, self.path)
            try:
                self.send_json(
                    500, status_body(500, f"sandbox internal error: {exc}", reason="InternalError")
                )
            except OSError:
                self.close_connection = True

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def send_json(
        self,
        code: int,
        obj: Any,
        *,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        data = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_bytes(self, code: int, data: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _flag(query: dict[str, list[str]], name: str) -> bool:
    value = query.get(name, [""])[-1].lower()
    return value in ("true", "1", "yes")


def _int(query: dict[str, list[str]], name: str) -> int | None:
    raw = query.get(name, [""])[-1]
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f"invalid value for {name}: {raw!r}") from exc


class Router:
    def __init__(self, handler: Handler) -> None:
        self.h = handler
        self.sb = handler.server.sandbox
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
            self._admin()
            return
        if self._non_resource():
            return
        route = self._route()
        self._serve(route)

    # non-resource paths ----------------------------------------------------------------------

    def _non_resource(self) -> bool:
        path = self.path
        registry = self.sb.api.registry
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(
            ("/healthz/", "/livez/", "/readyz/")
        ):
            self.h.send_bytes(200, b"ok", "text/plain; charset=utf-8")
            return True
        if path == "/openapi/v2":
            # An empty OpenAPI v2 document (zero bytes is a valid empty protobuf message): kubectl's
            # client-side validation then finds no schema for any kind and lets the server decide.
            self._authorize_path()
            if "protobuf" in self.accept:
                self.h.send_bytes(
                    200, b"", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
                )
            else:
                self.h.send_json(
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
            self._authorize_path()
            raise ApiError(
                404, "the server could not find the requested resource", reason="NotFound"
            )
        doc: Any = None
        content_type = "application/json"
        if path == "/version":
            doc = discovery.VERSION
        elif path == "/api":
            agg = discovery.wants_aggregated(self.accept)
            if agg:
                doc, content_type = discovery.aggregated(registry, core=True, content_type=agg), agg
            else:
                doc = discovery.api_versions(f"127.0.0.1:{self.sb.port}")
        elif path == "/api/v1":
            doc = discovery.resource_list(registry, "", "v1")
        elif path == "/apis":
            agg = discovery.wants_aggregated(self.accept)
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
        self._authorize_path()
        self.h.send_json(200, doc, content_type=content_type)
        return True

    def _authorize_path(self) -> None:
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
            if route.watch_path or _flag(self.query, "watch"):
                return "watch"
            return "get" if route.name else "list"
        if self.method == "DELETE":
            return "delete" if route.name else "deletecollection"
        verb = _VERB_BY_METHOD.get(self.method)
        if verb is None:
            raise ApiError(405, f"method {self.method} is not allowed")
        return verb

    def _body_json(self) -> Any:
        raw = self.h._body
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
        rtype = route.rtype
        ns = route.namespace or ""
        req = Request(
            verb=verb,
            group=rtype.group,
            resource=rtype.plural,
            subresource=route.subresource,
            namespace=ns,
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
        api = self.sb.api
        dry_run = "All" in self.query.get("dryRun", [])
        if route.subresource == "log":
            self._logs(route)
            return
        if route.subresource in ("token", "eviction") and verb == "create":
            self._create_subresource(route)
            return
        if rtype.kind == "SelfSubjectRulesReview" and verb == "create":
            self._self_rules_review()
            return
        if rtype.kind == "SelfSubjectAccessReview" and verb == "create":
            self._self_access_review()
            return
        if verb in ("list", "watch"):
            labels = parse_label_selector(self.query.get("labelSelector", [""])[-1])
            fields = parse_field_selector(
                self.query.get("fieldSelector", [""])[-1], kind=rtype.kind
            )
            if route.name:  # GET /watch/.../name
                fields = parse_field_selector(f"metadata.name={route.name}")
            if verb == "watch":
                self._watch(route, labels, fields)
                return
            listing = api.list(
                rtype,
                route.namespace,
                labels=labels,
                fields=fields,
                limit=_int(self.query, "limit") or 0,
                continue_token=self.query.get("continue", [""])[-1] or None,
            )
            self._send_objects(rtype, listing, is_list=True)
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
            obj = api.create(rtype, ns, self._body_json(), dry_run=dry_run)
            self.h.send_json(201, obj)
        elif verb == "update":
            obj = api.replace(
                rtype,
                ns,
                route.name,
                self._body_json(),
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
                self._body_json(),
                subresource=route.subresource or None,
                dry_run=dry_run,
            )
            self.h.send_json(200, obj)
        elif verb in ("delete", "deletecollection"):
            body = self._body_json() if self.h._body else {}
            if not isinstance(body, dict):
                body = {}
            grace = body.get("gracePeriodSeconds", _int(self.query, "gracePeriodSeconds"))
            propagation = body.get("propagationPolicy") or (
                self.query.get("propagationPolicy", [""])[-1] or None
            )
            if body.get("orphanDependents") is True or _flag(self.query, "orphanDependents"):
                propagation = "Orphan"
            if verb == "delete":
                obj = api.delete(
                    rtype,
                    ns,
                    route.name,
                    grace_seconds=grace,
                    propagation=propagation,
                    preconditions=body.get("preconditions"),
                    dry_run=dry_run,
                )
            else:
                obj = api.delete_collection(
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

    # streams ---------------------------------------------------------------------------------

    def _watch(self, route: Route, labels: Any, fields: Any) -> None:
        timeout = _int(self.query, "timeoutSeconds")
        events = watch_events(
            self.sb.api,
            route.rtype,
            route.namespace,
            labels=labels,
            fields=fields,
            resource_version=self.query.get("resourceVersion", [""])[-1] or None,
            timeout=float(timeout) if timeout is not None else None,
            stop=self.sb.stopping,
            bookmarks=_flag(self.query, "allowWatchBookmarks"),
            send_initial_events=_flag(self.query, "sendInitialEvents"),
        )
        as_table = tables.wants_table(self.accept)
        include = self.query.get("includeObject", ["Metadata"])[-1]
        state = StreamState("watch")
        first = next(events, None)  # errors such as a bad resourceVersion still answer plainly
        self.h.start_stream("application/json")
        try:
            for event in itertools.chain([first], events):
                if self.sb.stopping.is_set():
                    raise _AbortStreamError
                if event is None:
                    if self.sb.faults.should_cut(state):
                        raise _AbortStreamError
                    continue
                if as_table and event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    obj = event["object"]
                    event = {  # noqa: PLW2901
                        "type": event["type"],
                        "object": tables.table(
                            route.rtype.kind,
                            [obj],
                            list_meta={
                                "resourceVersion": obj["metadata"].get("resourceVersion", "")
                            },
                            include=include,
                        ),
                    }
                data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
                self._write_or_cut(state, data)
            self.h.end_stream()
        except _DROPPED as exc:
            raise _AbortStreamError from exc
        finally:
            events.close()

    def _write_or_cut(self, state: StreamState, data: bytes) -> None:
        point = self.sb.faults.cut_point(state, len(data))
        if point is not None:
            if point:
                self.h.write_chunk(data[:point])
            raise _AbortStreamError
        self.h.write_chunk(data)
        state.sent += len(data)

    def _logs(self, route: Route) -> None:
        api = self.sb.api
        pod = api.get(route.rtype, route.namespace or "", route.name)
        spec = pod.get("spec") or {}
        names = [c["name"] for c in spec.get("containers") or []]
        init_names = [c["name"] for c in spec.get("initContainers") or []]
        container = self.query.get("container", [""])[-1]
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
        worker = self.sb.runtime.worker(pod["metadata"]["uid"])
        runs = worker.log_runs(container) if worker is not None else []
        previous = _flag(self.query, "previous")
        if previous:
            if len(runs) < 2:
                raise bad_request(
                    f'previous terminated container "{container}" in pod "{route.name}" not found'
                )
            run = runs[-2]
        else:
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
            run = runs[-1]
        since_ns = None
        since_time = self.query.get("sinceTime", [""])[-1]
        if since_time:
            try:
                since_ns = parse_rfc3339_ns(since_time)
            except ValueError as exc:
                raise bad_request(f"invalid sinceTime {since_time!r}: {exc}") from exc
        since_seconds = _int(self.query, "sinceSeconds")
        if since_seconds is not None:
            since_ns = time.time_ns() - since_seconds * 1_000_000_000
        options = LogOptions(
            follow=_flag(self.query, "follow") and not previous,
            timestamps=_flag(self.query, "timestamps"),
            since_ns=since_ns,
            tail_lines=_int(self.query, "tailLines"),
            limit_bytes=_int(self.query, "limitBytes"),
        )
        chunks = run.log.read(options, self.sb.stopping)
        if not options.follow:
            self.h.send_bytes(200, b"".join(chunks), "text/plain")
            return
        state = StreamState("log")
        self.h.start_stream("text/plain")
        try:
            for chunk in chunks:
                if self.sb.stopping.is_set():
                    raise _AbortStreamError
                if not chunk:
                    if self.sb.faults.should_cut(state):
                        raise _AbortStreamError
                    continue
                self._write_or_cut(state, chunk)
            self.h.end_stream()
        except _DROPPED as exc:
            raise _AbortStreamError from exc
        finally:
            chunks.close()

    # subresources that create ----------------------------------------------------------------

    def _create_subresource(self, route: Route) -> None:
        ns = route.namespace or ""
        body = self._body_json()
        if route.subresource == "token":
            sa = self.sb.api.get(route.rtype, ns, route.name)
            seconds = int(((body or {}).get("spec") or {}).get("expirationSeconds") or 3600)
            token = self.sb.tokens.issue(f"system:serviceaccount:{ns}:{sa['metadata']['name']}")
            self.h.send_json(
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
        self.sb.api.delete(
            route.rtype, ns, route.name, grace_seconds=options.get("gracePeriodSeconds")
        )
        self.h.send_json(
            201,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "code": 201,
            },
        )

    def _self_rules_review(self) -> None:
        body = self._body_json()
        namespace = str(((body or {}).get("spec") or {}).get("namespace") or "")
        resource_rules, non_resource_rules = self.sb.authorizer.rules_for(self.user, namespace)
        out = dict(body or {})
        out.update({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1"})
        out.setdefault("metadata", {})
        out["status"] = {
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": False,
        }
        self.h.send_json(201, out)

    def _self_access_review(self) -> None:
        body = self._body_json()
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
        allowed = self.sb.authorizer.allowed(self.user, req)
        out = dict(body or {})
        out.update({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1"})
        out.setdefault("metadata", {})
        out["status"] = {"allowed": allowed}
        self.h.send_json(201, out)

    # admin -----------------------------------------------------------------------------------

    def _admin(self) -> None:
        if self.sb.rbac and not self.user.is_admin:
            raise ApiError(403, "the sandbox admin endpoint needs the admin token")
        path = self.path[len(ADMIN_PREFIX) :]
        if path == "healthz":
            self.h.send_bytes(200, b"ok", "text/plain")
        elif path == "faults" and self.method == "POST":
            body = self._body_json()
            if not isinstance(body, dict):
                raise bad_request('the fault body must be an object such as {"action": "clear"}')
            self.sb.faults.apply_json(body)
            self.h.send_json(200, {"ok": True})
        elif path == "faults" and self.method == "DELETE":
            self.sb.faults.clear()
            self.h.send_json(200, {"ok": True})
        elif path == "tokens" and self.method == "POST":
            body = self._body_json()
            user = str((body or {}).get("user", ""))
            if not user:
                raise bad_request('a token needs a user: {"user": "system:serviceaccount:ns:name"}')
            token = self.sb.tokens.issue(user, tuple((body or {}).get("groups") or ()))
            self.h.send_json(201, {"token": token, "user": user})
        else:
            raise not_found("sandbox-admin", "", path)
