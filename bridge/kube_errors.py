"""The Kubernetes API's error statuses translated into :mod:`bridge.errors`.

One table decides what each HTTP status means to the product (and so whether the transport
retries it: only :class:`~bridge.errors.UnavailableError` is retried); the message names the
call that failed and a hint says what to check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from bridge.errors import (
    APIError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    UnavailableError,
)

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
    quota_race = status == 409 and _lost_quota_race(reason, details)
    cls = UnavailableError if quota_race else _STATUS_ERRORS.get(status)
    if cls is None:
        cls = UnavailableError if status >= 500 else APIError
    hint: str | None = None
    if cls is ForbiddenError:
        hint = (
            "check the service account's RBAC (docs/rbac.md) and that the token is valid"
            if status == 403
            else "the credentials were rejected: check the token or kubeconfig"
        )
    elif quota_race:
        hint = (
            "a ResourceQuota in the namespace changed while the API server admitted this "
            "request (kubernetes/kubernetes#67761); nothing was written, so it is retried"
        )
    elif cls is UnavailableError:
        hint = "the API server is overloaded or unavailable; try again later"
    text = f"{what}: {status} {reason or 'Error'}"
    if message:
        text += f": {message}"
    error = cls(text, status=status, reason=reason, retry_after=retry_after, hint=hint)
    if isinstance(error, UnavailableError):
        # Turned away before it was handled: the server's flow control (429), or quota
        # admission, which refuses the whole request when it loses its race.
        error.rejected = quota_race or status == 429
    return error


def _lost_quota_race(reason: str, details: object) -> bool:
    """A 409 that is not about the object sent: quota admission lost an optimistic-concurrency
    race on the namespace's quota (``details.kind`` names the quota, ``reason`` is Conflict,
    where a name already taken says AlreadyExists). Concurrent creates in a namespace with a
    ResourceQuota -- our team.yaml ships one -- meet it; OpenShift's cluster quotas too."""
    return (
        reason == "Conflict"
        and isinstance(details, Mapping)
        and details.get("kind") in ("resourcequotas", "clusterresourcequotas")
    )
