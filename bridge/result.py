"""The bridge's result: the JSON written to ``--result`` (Argo's ``result`` output parameter,
read by ``tenantctl publish-result``) and the process exit code.

Exit codes (INTERFACES.md): 0 succeeded; 2 refused (nothing created); 75 infrastructure error
(the only code Argo's retryStrategy retries); 143 cancelled (SIGTERM/SIGINT); otherwise the
failing job's container exit code -- reported as 1 when it collides with 2, 75 or 143 (the true
code stays in the JSON), and 1 when the job failed without one (deadline, stuck pod, eviction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from bridge.timefmt import rfc3339

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_REFUSED: Final = 2
EXIT_INFRASTRUCTURE: Final = 75
EXIT_CANCELLED: Final = 143
_RESERVED: Final = frozenset({EXIT_REFUSED, EXIT_INFRASTRUCTURE, EXIT_CANCELLED})


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass
class AttemptRecord:
    """One pod: what it was, how it ended, and whether it counted against backoffLimit."""

    attempt: int
    pod: str
    exit_code: int | None = None
    reason: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    counted: bool = True
    container: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "attempt": self.attempt,
            "pod": self.pod,
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "counted": self.counted,
        }
        if self.container:
            data["container"] = self.container
        return data


@dataclass
class RunResult:
    namespace: str
    job: str
    operation: str
    tenant_env_id: str
    batch_operation_id: str
    status: Status = Status.ERROR
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    attempts: list[AttemptRecord] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    # Storage operations: the job's object-store location, object count, bytes and the
    # manifest's checksum (bridge.storage_hooks); None for every other operation.
    storage: dict[str, Any] | None = None

    def finish(
        self, status: Status, *, reason: str, message: str, exit_code: int | None = None
    ) -> RunResult:
        self.status = status
        self.reason = reason
        self.message = message
        self.exit_code = exit_code
        self.finished_at = datetime.now(UTC)
        return self

    @property
    def process_exit_code(self) -> int:
        if self.status is Status.SUCCEEDED:
            return EXIT_OK
        if self.status is Status.REFUSED:
            return EXIT_REFUSED
        if self.status is Status.CANCELLED:
            return EXIT_CANCELLED
        if self.status is Status.ERROR:
            return self.exit_code if self.exit_code is not None else EXIT_INFRASTRUCTURE
        code = self.exit_code
        if code is None or code in _RESERVED or not 1 <= code <= 255:
            return EXIT_FAILED
        return code

    def to_json(self) -> dict[str, Any]:
        finished = self.finished_at or datetime.now(UTC)
        data: dict[str, Any] = {
            "namespace": self.namespace,
            "job": self.job,
            "operation": self.operation,
            "tenantEnvId": self.tenant_env_id,
            "batchOperationId": self.batch_operation_id,
            "status": self.status.value,
            "exitCode": self.exit_code,
            "reason": self.reason,
            "message": self.message,
            "attempts": [a.to_json() for a in self.attempts],
            "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(finished),
            "durationSeconds": round((finished - self.started_at).total_seconds(), 3),
        }
        if self.storage is not None:
            data["storage"] = dict(self.storage)
        return data

    def write(self, path: str | Path) -> None:
        """Write the JSON atomically (Argo may read it the moment the container exits)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), separators=(",", ":")) + "\n")
        tmp.replace(target)
