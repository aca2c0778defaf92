"""The one Kubernetes adapter: plain-dict REST calls over the official client's transport.

Everything above this module sees Kubernetes objects as plain JSON dicts (camelCase keys, as in
YAML) and errors as :mod:`bridge.errors` classes; nothing else in the product imports
``kubernetes``. We use the official client only for what it is good at -- configuration
(kubeconfig, in-cluster, exec plugins, token refresh, TLS) and its HTTP transport -- and build
URLs from small :class:`Resource` descriptors, so one adapter covers core, batch and custom
resources (Argo Workflows) alike, and we parse JSON ourselves (no model objects, no
deserialization surprises on fields the client does not know).

Retry policy (why): a bridge runs thousands of times a day and the API server will sometimes
shed load (429), restart (5xx) or drop a connection. Idempotent calls are retried with
exponential backoff and *full jitter* (so a thousand bridges do not retry in lock-step), waiting
at least what ``Retry-After`` asks. A ``create`` is idempotent only when the name is fixed: a 409
after a retried create means our first attempt landed, and is resolved by a ``get``. 401/403 are
retried at most once (a projected service-account token may just have been rotated) and never in
a storm: a permission problem does not fix itself.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import random
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote, urlencode

import urllib3

from bridge.errors import (
    APIError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    UnavailableError,
    UsageError,
)

log = logging.getLogger(__name__)

JSON = dict[str, Any]

SERVICE_ACCOUNT_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
USER_AGENT: Final = "tenant-lifecycle"

# The packages of the official client whose ``__init__`` a bridge must not run (see below).
_OFFICIAL_PACKAGES: Final = (
    "kubernetes",
    "kubernetes.client",
    "kubernetes.config",
    "kubernetes.utils",
)
_OFFICIAL_IMPORT_LOCK = threading.Lock()


def _import_official(*names: str) -> list[types.ModuleType]:
    """Modules of the official ``kubernetes`` client, imported without its packages' ``__init__``.

    Why: ``import kubernetes.client.rest`` first runs ``kubernetes/__init__.py``, which imports
    every generated model and API class, the dynamic client, watch, stream, leader election and
    the kubeconfig loader (``google.auth``, ``cryptography``, ``requests_oauthlib``) -- ~0.3 s of
    CPU and most of a bridge's start-up, for the few modules a bridge in a pod uses: the
    ``Configuration``, the urllib3 REST transport (``rest.RESTClientObject``: TLS, client
    certificates, proxies, keep-alive) and the in-cluster loader. So while these load, the
    parent packages are stood in for by empty package modules on the same directories, and
    afterwards ``sys.modules`` is put back as it was: a later ``import kubernetes`` (the
    kubeconfig path, tests, tools) loads the whole official package as usual, unaffected; the
    modules loaded here are this adapter's own copies. When ``kubernetes`` is already loaded,
    its modules are used as they are. The stand-ins are visible only while this module is
    first imported, under the import lock of ``bridge.kube``: nothing else in the product
    imports ``kubernetes``, and the kubeconfig loader is imported only once this has run.

    ``tests/unit/bridge/test_bridge_imports.py`` fails when ``python -m bridge run`` in a pod
    imports the rest of the package again.
    """
    if "kubernetes" in sys.modules:
        return [importlib.import_module(name) for name in names]
    spec = importlib.util.find_spec("kubernetes")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the kubernetes package is not installed")
    root = next(iter(spec.submodule_search_locations))
    with _OFFICIAL_IMPORT_LOCK:
        before = set(sys.modules)
        loaded: list[types.ModuleType] = []
        try:
            for package in _OFFICIAL_PACKAGES:
                directory = os.path.join(root, *package.split(".")[1:])
                stand_in = types.ModuleType(package)
                stand_in.__path__ = [directory]
                stand_in.__package__ = package
                stand_in.__spec__ = importlib.machinery.ModuleSpec(package, None, is_package=True)
                stand_in.__spec__.submodule_search_locations = [directory]
                sys.modules[package] = stand_in
            for name in names:
                # __import__ rather than importlib.import_module: it is the import statement's
                # path, so `python -X importtime` lists these modules too.
                __import__(name)
                module = sys.modules[name]
                loaded.append(module)
                if name == "kubernetes.client.configuration":
                    # incluster_config does `from kubernetes.client import Configuration`.
                    setattr(  # noqa: B010 - a stand-in module's attribute
                        sys.modules["kubernetes.client"], "Configuration", module.Configuration
                    )
        finally:
            for name in set(sys.modules) - before:
                if name == "kubernetes" or name.startswith("kubernetes."):
                    del sys.modules[name]
    return loaded


# The official client is untyped: hold it as Any at the one place we touch it.
_configuration_module, _exceptions_module, _rest_module, _config_errors, _incluster_module = (
    _import_official(
        "kubernetes.client.configuration",
        "kubernetes.client.exceptions",
        "kubernetes.client.rest",
        "kubernetes.config.config_exception",
        "kubernetes.config.incluster_config",
    )
)
Configuration: Any = _configuration_module.Configuration
RESTClientObject: Any = _rest_module.RESTClientObject
ApiException: Any = _exceptions_module.ApiException
InClusterConfigLoader: Any = _incluster_module.InClusterConfigLoader
InClusterConfigException: Any = _config_errors.ConfigException


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API. ``group`` is "" for the core group."""

    group: str
    version: str
    plural: str
    namespaced: bool = True
    kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        return base


NAMESPACES: Final = Resource("", "v1", "namespaces", namespaced=False, kind="Namespace")
JOBS: Final = Resource("batch", "v1", "jobs", kind="Job")
PODS: Final = Resource("", "v1", "pods", kind="Pod")
SECRETS: Final = Resource("", "v1", "secrets", kind="Secret")
CONFIGMAPS: Final = Resource("", "v1", "configmaps", kind="ConfigMap")
SERVICEACCOUNTS: Final = Resource("", "v1", "serviceaccounts", kind="ServiceAccount")
EVENTS: Final = Resource("", "v1", "events", kind="Event")
WORKFLOWS: Final = Resource("argoproj.io", "v1alpha1", "workflows", kind="Workflow")
WORKFLOWTEMPLATES: Final = Resource(
    "argoproj.io", "v1alpha1", "workflowtemplates", kind="WorkflowTemplate"
)


@dataclass(frozen=True)
class KubeSettings:
    """How to reach the API server and how hard to try.

    ``max_retries`` counts retries after the first try; backoff is full jitter between 0 and
    ``min(backoff_max, backoff_base * 2**retry)`` seconds, never less than ``Retry-After``.
    """

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    request_timeout: float = 30.0
    max_retries: int = 5
    backoff_base: float = 0.2
    backoff_max: float = 5.0
    # Longest Retry-After we honour as asked; beyond it we wait this long and try again.
    retry_after_max: float = 60.0
    # Where the in-cluster service account's ``token`` and ``ca.crt`` are (another directory
    # only for tests and benchmarks that play a pod).
    service_account_dir: str = SERVICE_ACCOUNT_DIR
    # Connections kept open for reuse (the official client's default: cpu_count * 5); a client
    # shared by many bridges in one process (the local engine's threads) keeps more.
    connection_pool_size: int | None = None


def backoff_delay(
    retry: int,
    *,
    base: float,
    maximum: float,
    retry_after: float | None = None,
    retry_after_max: float = 60.0,
    rng: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds before retry number ``retry`` (0-based): full jitter, at least Retry-After."""
    ceiling = min(maximum, base * (2**retry))
    delay = rng(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_max))
    return delay


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; HTTP dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


_STATUS_ERRORS: Final[dict[int, type[APIError]]] = {
    401: ForbiddenError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: InvalidError,
    429: UnavailableError,
}


def error_for_status(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    *,
    what: str,
    retry_after: float | None = None,
) -> APIError:
    """The project's error for an HTTP error status and a (Kubernetes ``Status``) body.

    ``what`` names the call ("get jobs team-a/schema") so the one-line message says what failed.
    """
    status_obj: Mapping[str, Any] = {}
    if isinstance(body, Mapping):
        status_obj = body
    elif body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, Mapping):
            status_obj = parsed
        else:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            status_obj = {"message": text.strip()[:300]}
    reason = str(status_obj.get("reason") or "")
    message = str(status_obj.get("message") or "").strip()
    details = status_obj.get("details")
    if retry_after is None and isinstance(details, Mapping):
        seconds = details.get("retryAfterSeconds")
        if isinstance(seconds, int | float):
            retry_after = float(seconds)
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = UnavailableError if status >= 500 else APIError
    hint: str | None = None
    if cls is ForbiddenError:
        hint = (
            "check the service account's RBAC (docs/rbac.md) and that the token is valid"
            if status == 403
            else "the credentials were rejected: check the token or kubeconfig"
        )
    elif cls is UnavailableError:
        hint = "the API server is overloaded or unavailable; try again later"
    text = f"{what}: {status} {reason or 'Error'}"
    if message:
        text += f": {message}"
    return cls(text, status=status, reason=reason, retry_after=retry_after, hint=hint)


def _describe(resource: Resource, verb: str, namespace: str | None, name: str | None) -> str:
    where = f"{namespace}/{name}" if namespace and name else (name or namespace or "")
    return f"{verb} {resource.plural}{' ' + where if where else ''}"


class _Stream:
    """An open streaming response that another thread may close to interrupt a blocked read."""

    def __init__(self, response: urllib3.BaseHTTPResponse, *, what: str) -> None:
        self._response = response
        self._what = what
        self._closed = False
        self._interrupted = False

    def interrupt(self) -> None:
        """Make a blocked read return (the stream then ends quietly). Takes no lock and does
        no I/O but a socket shutdown: safe from another thread and from a signal handler."""
        self._interrupted = True
        try:
            self._response.shutdown()
        except Exception:  # best effort: the socket may already be gone
            log.debug("shutdown of %s failed", self._what, exc_info=True)

    def close(self) -> None:
        """Stop the stream and give the connection back; call it from the reading thread."""
        if self._closed:
            return
        self._closed = True
        self.interrupt()
        self._response.release_conn()

    @property
    def closed(self) -> bool:
        return self._closed

    def _lines(self) -> Iterator[tuple[bytes, bool]]:
        """(line without newline, whether it ended in a newline); a partial tail comes last."""
        buffer = b""
        try:
            while True:
                chunk = self._response.read1(65536)
                if not chunk:
                    break
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    yield line, True
        except (urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError) as exc:
            # ValueError/AttributeError: the response was shut down under us by close().
            if self._closed or self._interrupted:
                return
            raise UnavailableError(
                f"{self._what}: stream broke: {exc}", status=0, reason="StreamBroken"
            ) from exc
        finally:
            self.close()
        if buffer:
            yield buffer, False

    def __enter__(self) -> _Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LogStream(_Stream):
    """Lines of a container log. With ``keep_ends`` a complete line keeps its trailing "\\n",
    so a caller can tell a line cut by a dropped stream from a complete one."""

    def __init__(
        self, response: urllib3.BaseHTTPResponse, *, what: str, keep_ends: bool = False
    ) -> None:
        super().__init__(response, what=what)
        self._iter = (
            (line + b"\n" if ended and keep_ends else line).decode("utf-8", "replace")
            for line, ended in self._lines()
        )

    def __iter__(self) -> LogStream:
        return self

    def __next__(self) -> str:
        return next(self._iter)


class WatchStream(_Stream):
    """Watch events as (type, object). ERROR events raise (410 -> GoneError); BOOKMARKs only
    advance :attr:`resource_version`, which is where a caller resumes after the stream ends."""

    def __init__(
        self, response: urllib3.BaseHTTPResponse, *, what: str, resource_version: str | None
    ) -> None:
        super().__init__(response, what=what)
        self.resource_version = resource_version
        self._iter = self._events()

    def _events(self) -> Iterator[tuple[str, JSON]]:
        for raw, ended in self._lines():
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                if not ended:  # a cut stream's partial last line: the caller re-watches
                    return
                raise UnavailableError(
                    f"{self._what}: malformed watch event", status=0, reason="BadWatchEvent"
                ) from None
            kind = str(event.get("type", ""))
            obj = event.get("object") or {}
            if kind == "ERROR":
                raise error_for_status(int(obj.get("code") or 500), obj, what=self._what)
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if version:
                self.resource_version = str(version)
            if kind == "BOOKMARK":
                continue
            yield kind, obj

    def __iter__(self) -> WatchStream:
        return self

    def __next__(self) -> tuple[str, JSON]:
        return next(self._iter)


@dataclass
class _Retry:
    """Per-call retry state."""

    idempotent: bool
    retries: int = 0
    auth_retried: bool = False
    transient_seen: bool = field(default=False)


class Kube:
    """A generic, retrying Kubernetes REST client returning plain dicts.

    ``host`` + ``token`` connect directly (tests, the sandbox); otherwise the kubeconfig
    (``settings.kubeconfig``/``context``, else ``$KUBECONFIG``/``~/.kube/config``) or the
    in-cluster service account (``settings.in_cluster``, or automatically inside a pod when no
    kubeconfig is given).

    Requests go through the official client's ``Configuration`` (TLS, client certificates,
    tokens refreshed by its ``refresh_api_key_hook``: exec plugins, OIDC, rotated projected
    tokens) and its urllib3 transport ``rest.RESTClientObject`` -- not through ``ApiClient``,
    whose module imports every generated model. A kubeconfig is loaded by the official loader
    (``kubernetes.config``, imported only then); the in-cluster path, what every bridge pod
    uses, imports neither.
    """

    def __init__(
        self,
        *,
        settings: KubeSettings | None = None,
        host: str | None = None,
        token: str | None = None,
        ca_file: str | None = None,
        verify_ssl: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or KubeSettings()
        self._sleep = sleep
        configuration = Configuration()
        if host:
            configuration.host = host.rstrip("/")
            if token:
                configuration.api_key = {"BearerToken": token}
                configuration.api_key_prefix = {"BearerToken": "Bearer"}
            # https with a private CA (ca_file), or -- for throwaway test servers only -- none.
            configuration.ssl_ca_cert = ca_file
            configuration.verify_ssl = verify_ssl
        else:
            _load_configuration(configuration, self.settings)
        # Our retry loop is the only one: no hidden urllib3 retries under it.
        configuration.retries = urllib3.Retry(total=0, redirect=0, raise_on_status=False)
        if self.settings.connection_pool_size is not None:
            configuration.connection_pool_maxsize = self.settings.connection_pool_size
        self._configuration = configuration
        self._rest = RESTClientObject(configuration)
        self.host = str(configuration.host).rstrip("/")

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._rest.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the verbs ---------------------------------------------------------------------------

    def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> JSON:
        self._need_namespace(resource, namespace, "get")
        return self._json(
            "GET",
            resource.path(namespace=namespace, name=name),
            what=_describe(resource, "get", namespace, name),
            idempotent=True,
            resource=resource,
        )

    def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> Iterator[JSON]:
        """Every matching object, following ``continue`` tokens page by page."""
        items, _ = self._list_pages(
            resource,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            page_size=page_size,
        )
        return items

    def list_with_version(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[builtins.list[JSON], str]:
        """All matching objects and the list's resourceVersion (where a watch should start)."""
        items, version_of = self._list_pages(
            resource,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            page_size=page_size,
        )
        result = builtins.list(items)
        return result, version_of()

    def _list_pages(
        self,
        resource: Resource,
        *,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        page_size: int,
    ) -> tuple[Iterator[JSON], Callable[[], str]]:
        path = resource.path(namespace=namespace)
        what = _describe(resource, "list", namespace, None)
        state = {"version": ""}

        def pages() -> Iterator[JSON]:
            token: str | None = None
            while True:
                query: dict[str, Any] = {"limit": page_size}
                if label_selector:
                    query["labelSelector"] = label_selector
                if field_selector:
                    query["fieldSelector"] = field_selector
                if token:
                    query["continue"] = token
                page = self._json("GET", path, query=query, what=what, idempotent=True)
                metadata = page.get("metadata") or {}
                if not state["version"]:
                    state["version"] = str(metadata.get("resourceVersion") or "")
                for item in page.get("items") or []:
                    _fill_type(item, resource)
                    yield item
                token = metadata.get("continue") or None
                if not token:
                    return

        return pages(), lambda: state["version"]

    def create(
        self, resource: Resource, body: Mapping[str, Any], *, namespace: str | None = None
    ) -> JSON:
        self._need_namespace(resource, namespace, "create")
        metadata = body.get("metadata") or {}
        name = metadata.get("name")
        what = _describe(resource, "create", namespace, name or metadata.get("generateName"))
        payload = dict(body)
        payload.setdefault("apiVersion", resource.api_version)
        if resource.kind:
            payload.setdefault("kind", resource.kind)
        retry = _Retry(idempotent=bool(name))
        try:
            return self._json(
                "POST",
                resource.path(namespace=namespace),
                body=payload,
                what=what,
                retry=retry,
                resource=resource,
            )
        except ConflictError as conflict:
            if not (name and retry.transient_seen):
                raise
            # Our earlier, retried attempt landed before the connection broke: that object is ours.
            try:
                return self.get(resource, str(name), namespace=namespace)
            except ForbiddenError:
                # Allowed to create but not to read it (the bridge and Secrets, docs/rbac.md):
                # the caller resolves the conflict as it would on a first try.
                raise conflict from None

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any],
        *,
        namespace: str | None = None,
    ) -> JSON:
        """JSON merge patch (idempotent: applying the same patch twice yields the same object)."""
        return self._patch(resource, name, patch, namespace=namespace, subresource=None)

    def patch_status(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any],
        *,
        namespace: str | None = None,
    ) -> JSON:
        return self._patch(resource, name, patch, namespace=namespace, subresource="status")

    def _patch(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any],
        *,
        namespace: str | None,
        subresource: str | None,
    ) -> JSON:
        self._need_namespace(resource, namespace, "patch")
        path = resource.path(namespace=namespace, name=name)
        if subresource:
            path += f"/{subresource}"
        return self._json(
            "PATCH",
            path,
            body=dict(patch),
            content_type="application/merge-patch+json",
            what=_describe(resource, "patch", namespace, name),
            idempotent=True,
            resource=resource,
        )

    def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        missing_ok: bool = False,
        propagation_policy: str | None = None,
    ) -> None:
        """Delete; a 404 after a retried delete counts as done (our first try landed)."""
        self._need_namespace(resource, namespace, "delete")
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        retry = _Retry(idempotent=True)
        try:
            self._json(
                "DELETE",
                resource.path(namespace=namespace, name=name),
                body=body,
                what=_describe(resource, "delete", namespace, name),
                retry=retry,
            )
        except NotFoundError:
            if missing_ok or retry.transient_seen:
                return
            raise

    def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int | None = None,
    ) -> WatchStream:
        """A streaming watch: iterate for ("ADDED"|"MODIFIED"|"DELETED", obj).

        Opening the stream is retried; a stream that breaks later raises UnavailableError and a
        stream the server ends simply stops -- resume from ``stream.resource_version`` (a 410
        GoneError means that version is too old: list again).
        """
        query: dict[str, Any] = {"watch": "true", "allowWatchBookmarks": "true"}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        if resource_version:
            query["resourceVersion"] = resource_version
        if timeout_seconds is not None:
            query["timeoutSeconds"] = int(timeout_seconds)
        what = _describe(resource, "watch", namespace, None)
        read_timeout = None if timeout_seconds is None else timeout_seconds + 30.0
        response = self._request(
            "GET",
            resource.path(namespace=namespace),
            query=query,
            what=what,
            retry=_Retry(idempotent=True),
            timeout=(self.settings.request_timeout, read_timeout),
        )
        return WatchStream(response, what=what, resource_version=resource_version)

    def stream_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str,
        since_time: str | None = None,
        timestamps: bool = True,
        follow: bool = True,
        keep_ends: bool = False,
    ) -> LogStream:
        """A container's log lines (``timestamps`` prefixes each with its RFC3339Nano time).

        Close the returned stream from another thread to stop a blocked follow.
        """
        query: dict[str, Any] = {"container": container}
        if follow:
            query["follow"] = "true"
        if timestamps:
            query["timestamps"] = "true"
        if since_time:
            query["sinceTime"] = since_time
        what = f"log of pod {namespace}/{pod} container {container}"
        # A quiet container is not a broken connection: no read timeout on a follow.
        read_timeout = None if follow else self.settings.request_timeout
        response = self._request(
            "GET",
            PODS.path(namespace=namespace, name=pod) + "/log",
            query=query,
            what=what,
            retry=_Retry(idempotent=True),
            timeout=(self.settings.request_timeout, read_timeout),
        )
        return LogStream(response, what=what, keep_ends=keep_ends)

    # -- transport ---------------------------------------------------------------------------

    @staticmethod
    def _need_namespace(resource: Resource, namespace: str | None, verb: str) -> None:
        if resource.namespaced and not namespace:
            raise UsageError(f"{verb} {resource.plural}: a namespace is required")

    def _json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        idempotent: bool = True,
        retry: _Retry | None = None,
        resource: Resource | None = None,
    ) -> JSON:
        response = self._request(
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            what=what,
            retry=retry or _Retry(idempotent=idempotent),
            timeout=self.settings.request_timeout,
        )
        try:
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise UnavailableError(f"{what}: response broke: {exc}", status=0) from exc
        finally:
            response.release_conn()
        if not data:
            return {}
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            raise APIError(f"{what}: the API server sent invalid JSON", status=0) from exc
        if not isinstance(parsed, dict):
            raise APIError(f"{what}: the API server sent a non-object JSON body", status=0)
        if resource is not None:
            _fill_type(parsed, resource)
        return parsed

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        retry: _Retry,
        timeout: float | tuple[float, float | None],
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """Send with the retry policy; returns an open 2xx response or raises an APIError."""
        settings = self.settings
        while True:
            headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
            if body is not None:
                headers["Content-Type"] = content_type or "application/json"
            headers.update(self._auth_headers())
            url = self.host + path
            if query:
                url += "?" + urlencode(query)
            error: APIError
            try:
                response: urllib3.BaseHTTPResponse = self._rest.request(
                    method, url, headers=headers, body=body, _request_timeout=timeout
                ).response
            except (urllib3.exceptions.HTTPError, ApiException, OSError) as exc:
                error = UnavailableError(
                    f"{what}: cannot reach the Kubernetes API at {self.host}: {_short(exc)}",
                    status=0,
                    reason="ConnectionError",
                    hint="check the API server address and that it is running",
                )
                cause: BaseException = exc
            else:
                if response.status < 400:
                    return response
                data = response.read()
                response.release_conn()
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                error = error_for_status(response.status, data, what=what, retry_after=retry_after)
                cause = ApiException(
                    status=response.status,
                    reason=response.reason,
                    body=data.decode("utf-8", "replace"),
                )
            if isinstance(error, ForbiddenError):
                if retry.auth_retried:
                    raise error from cause
                retry.auth_retried = True
                self._refresh_token()
                log.warning("%s; retrying once", error)
                continue
            if not isinstance(error, UnavailableError):
                raise error from cause
            retry.transient_seen = True
            if not retry.idempotent or retry.retries >= settings.max_retries:
                raise error from cause
            delay = backoff_delay(
                retry.retries,
                base=settings.backoff_base,
                maximum=settings.backoff_max,
                retry_after=error.retry_after,
                retry_after_max=settings.retry_after_max,
            )
            retry.retries += 1
            log.info("%s; retry %d in %.2fs", error, retry.retries, delay)
            self._sleep(delay)

    def _auth_headers(self) -> dict[str, str]:
        """The credentials' headers, as the official ``ApiClient`` sets them: asking the
        configuration each time runs its refresh hook (expired exec/OIDC tokens, a rotated
        service-account token)."""
        headers: dict[str, str] = {}
        for auth in self._configuration.auth_settings().values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[str(auth["key"])] = str(auth["value"])
        return headers

    def _refresh_token(self) -> None:
        """Re-read a rotated token (in-cluster projected tokens, exec plugins) before the retry."""
        hook = getattr(self._configuration, "refresh_api_key_hook", None)
        if hook is not None:
            try:
                hook(self._configuration)
            except Exception:  # a failing refresh just means the retry fails too
                log.debug("token refresh failed", exc_info=True)


def _fill_type(obj: JSON, resource: Resource) -> None:
    # List items come without kind/apiVersion; fill them so messages can say "Job team/name".
    if resource.kind:
        obj.setdefault("kind", resource.kind)
        obj.setdefault("apiVersion", resource.api_version)


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc).splitlines()[0][:200] if str(reason or exc) else type(exc).__name__


def _load_configuration(configuration: Any, settings: KubeSettings) -> None:
    in_cluster = settings.in_cluster or (
        not settings.kubeconfig
        and not os.environ.get("KUBECONFIG")
        and not os.path.exists(os.path.expanduser("~/.kube/config"))
        and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    )
    if in_cluster:
        account = settings.service_account_dir
        try:
            InClusterConfigLoader(
                token_filename=os.path.join(account, "token"),
                cert_filename=os.path.join(account, "ca.crt"),
            ).load_and_set(configuration)
        except (InClusterConfigException, OSError, ValueError) as exc:
            raise UsageError(
                f"cannot load Kubernetes configuration from the in-cluster service account "
                f"({account}, $KUBERNETES_SERVICE_HOST/PORT): {exc}",
                hint="pass --kubeconfig/--context, or run inside a pod with a service account",
            ) from exc
        return
    # The official kubeconfig loader (contexts, exec plugins, OIDC, auth providers): it
    # imports the whole official package, so only here.
    from kubernetes import config as official_config  # noqa: PLC0415

    loader: Any = official_config
    try:
        loader.load_kube_config(
            config_file=settings.kubeconfig,
            context=settings.context,
            client_configuration=configuration,
        )
    except (loader.ConfigException, OSError, ValueError) as exc:
        raise UsageError(
            f"cannot load Kubernetes configuration from {settings.kubeconfig or 'kubeconfig'}: "
            f"{exc}",
            hint="pass --kubeconfig/--context, or run inside a pod with a service account",
        ) from exc
