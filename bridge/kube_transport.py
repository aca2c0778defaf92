"""The retry policy and the HTTP transport under :class:`bridge.kube.Kube`'s verbs.

Retry policy (why): a bridge runs thousands of times a day and the API server will sometimes
shed load (429), restart (5xx) or drop a connection. Idempotent calls are retried with
exponential backoff and *full jitter* (so a thousand bridges do not retry in lock-step), waiting
at least what ``Retry-After`` asks. A request the server certainly turned away unprocessed (a
429, a 409 from a quota race: see :class:`~bridge.errors.UnavailableError`) is retried whatever
its verb. 401/403 are retried at most once (a projected service-account token may just have
been rotated) and never in a storm: a permission problem does not fix itself.

The official client's pieces (its ``Configuration``, its urllib3 ``RESTClientObject`` and its
``ApiException``) are handed in by :mod:`bridge.kube`, the one module that imports
``kubernetes``.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import urllib3

from bridge.errors import APIError, ForbiddenError, UnavailableError
from bridge.kube_errors import error_for_status
from bridge.kube_resources import JSON, Resource, fill_type

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
USER_AGENT: Final = "tenant-lifecycle"


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


@dataclass
class Retry:
    """Per-call retry state."""

    idempotent: bool
    retries: int = 0
    auth_retried: bool = False
    # True once a try failed in a way the server may still have acted on (a broken
    # connection, a 5xx): a 409 on a later create may be that try's own object.
    transient_seen: bool = field(default=False)


class Transport:
    """Sends one call with the retry policy over the official client's urllib3 transport."""

    def __init__(
        self,
        *,
        configuration: Any,
        rest: Any,
        api_exception: Any,
        settings: KubeSettings,
        sleep: Callable[[float], None],
    ) -> None:
        # The official client is untyped: its objects are held as Any here.
        self._configuration = configuration
        self._rest = rest
        self._api_exception = api_exception
        self.settings = settings
        self._sleep = sleep
        self.host = str(configuration.host).rstrip("/")

    def close(self) -> None:
        self._rest.close()

    def json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        idempotent: bool = True,
        retry: Retry | None = None,
        resource: Resource | None = None,
    ) -> JSON:
        response = self.request(
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            what=what,
            retry=retry or Retry(idempotent=idempotent),
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
            fill_type(parsed, resource)
        return parsed

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        retry: Retry,
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
            except (urllib3.exceptions.HTTPError, self._api_exception, OSError) as exc:
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
                cause = self._api_exception(
                    status=response.status,
                    reason=response.reason,
                    body=data.decode("utf-8", "replace"),
                )
            if isinstance(error, ForbiddenError):
                if retry.auth_retried:
                    raise error from cause
                retry.auth_retried = True
                self.refresh_token()
                log.warning("%s; retrying once", error)
                continue
            if not isinstance(error, UnavailableError):
                raise error from cause
            if not error.rejected:
                retry.transient_seen = True  # the server may have acted on this try
            if not (retry.idempotent or error.rejected) or retry.retries >= settings.max_retries:
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

    def refresh_token(self) -> None:
        """Re-read a rotated token (in-cluster projected tokens, exec plugins) before the retry."""
        hook = getattr(self._configuration, "refresh_api_key_hook", None)
        if hook is not None:
            try:
                hook(self._configuration)
            except Exception:  # a failing refresh just means the retry fails too
                log.debug("token refresh failed", exc_info=True)


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc).splitlines()[0][:200] if str(reason or exc) else type(exc).__name__
