"""The project's own error hierarchy.

Every adapter (Kubernetes, Pub/Sub, S3) translates third-party exceptions into these, with the
original chained as ``__cause__``; everything above the adapters only ever sees these. The CLI
maps them to one line on stderr and an exit code, never a traceback.
"""

from __future__ import annotations


class LifecycleError(Exception):
    """Base of every error this project raises on purpose.

    ``hint`` says how to fix it, for the human reading the one-line message.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(LifecycleError):
    """The user asked for something malformed: a flag, a file, an argument."""


class ContractError(LifecycleError):
    """A Job (or a set of them) does not satisfy the lifecycle contract."""


class RefusedError(LifecycleError):
    """The bridge or discovery refused to act on what it was told (bridge exit code 2)."""


class APIError(LifecycleError):
    """A Kubernetes API call failed. ``status`` is the HTTP status (0 when no response)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str = "",
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class NotFoundError(APIError):
    """404: the object does not exist."""


class ConflictError(APIError):
    """409: the object already exists, or changed under us."""


class ForbiddenError(APIError):
    """401/403: the credentials in use may not do this. Never retried in a storm."""


class GoneError(APIError):
    """410: a watch or list continuation is too old; start again from a fresh list."""


class InvalidError(APIError):
    """422: the server rejected the object as invalid."""


class UnavailableError(APIError):
    """429, 5xx, a connection failure or a lost quota race: transient, worth retrying.

    ``rejected``: the server certainly did not act on the request -- a 429 from its flow
    control, or a 409 because a ResourceQuota changed while admission was charging it
    (kubernetes/kubernetes#67761). A retry is then safe even for a call that is not
    idempotent, and a later 409 on a create is somebody else's object, not our own echo.
    Set by :func:`bridge.kube_errors.error_for_status`, which alone reads the server's answer.
    """

    rejected: bool = False


class StorageError(LifecycleError):
    """An object-storage call or verification failed."""
