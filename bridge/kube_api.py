"""The verbs of the Kubernetes adapter: plain dicts in, plain dicts out.

get, list (page by page), create, patch (JSON merge patch), delete, watch and a container's
log, on any :class:`~bridge.kube_resources.Resource`. Idempotence is decided here, per verb: a
``create`` is idempotent only when the name is fixed -- a 409 after a retried create means our
first attempt landed, and is resolved by a ``get``; a 404 after a retried delete means done.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from bridge.errors import ConflictError, ForbiddenError, NotFoundError, UsageError
from bridge.kube_resources import JSON, PODS, Resource, describe, fill_type
from bridge.kube_streams import LogStream, WatchStream
from bridge.kube_transport import Retry, Transport


class KubeApi:
    """A generic, retrying Kubernetes REST client over a :class:`Transport`."""

    def __init__(self, *, transport: Transport) -> None:
        self._transport = transport
        self.settings = transport.settings
        self.host = transport.host

    # -- the verbs ---------------------------------------------------------------------------

    def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> JSON:
        self._need_namespace(resource, namespace, "get")
        return self._transport.json(
            "GET",
            resource.path(namespace=namespace, name=name),
            what=describe(resource, "get", namespace, name),
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
        what = describe(resource, "list", namespace, None)
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
                page = self._transport.json("GET", path, query=query, what=what, idempotent=True)
                metadata = page.get("metadata") or {}
                if not state["version"]:
                    state["version"] = str(metadata.get("resourceVersion") or "")
                for item in page.get("items") or []:
                    fill_type(item, resource)
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
        what = describe(resource, "create", namespace, name or metadata.get("generateName"))
        payload = dict(body)
        payload.setdefault("apiVersion", resource.api_version)
        if resource.kind:
            payload.setdefault("kind", resource.kind)
        retry = Retry(idempotent=bool(name))
        try:
            return self._transport.json(
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
        return self._transport.json(
            "PATCH",
            path,
            body=dict(patch),
            content_type="application/merge-patch+json",
            what=describe(resource, "patch", namespace, name),
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
        retry = Retry(idempotent=True)
        try:
            self._transport.json(
                "DELETE",
                resource.path(namespace=namespace, name=name),
                body=body,
                what=describe(resource, "delete", namespace, name),
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
        what = describe(resource, "watch", namespace, None)
        read_timeout = None if timeout_seconds is None else timeout_seconds + 30.0
        response = self._transport.request(
            "GET",
            resource.path(namespace=namespace),
            query=query,
            what=what,
            retry=Retry(idempotent=True),
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
        response = self._transport.request(
            "GET",
            PODS.path(namespace=namespace, name=pod) + "/log",
            query=query,
            what=what,
            retry=Retry(idempotent=True),
            timeout=(self.settings.request_timeout, read_timeout),
        )
        return LogStream(response, what=what, keep_ends=keep_ends)

    @staticmethod
    def _need_namespace(resource: Resource, namespace: str | None, verb: str) -> None:
        if resource.namespaced and not namespace:
            raise UsageError(f"{verb} {resource.plural}: a namespace is required")
