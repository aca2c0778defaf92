"""One lifecycle operation per tenant at a time, within one process.

The Argo path gets this from Argo's ``synchronization.mutex`` keyed by tenant; the local engine
uses this in-process lock table. Choice (documented in docs/operator-guide.md): a second
request for a busy tenant *waits* up to ``wait_seconds`` (default 0: refuse at once) and is then
refused with :class:`TenantBusyError`, naming the operation and batch that hold the tenant.
Refusing by default suits the CLI (a person sees at once why nothing happens) and the
orchestrator (the message is redelivered by the bus later, instead of a thread blocking on it);
callers that prefer to queue pass a longer wait.

The lock is only as wide as the process: two ``tenantctl run`` processes do not see each other.
That is what the Argo engine's mutex is for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bridge.errors import RefusedError


class TenantBusyError(RefusedError):
    """Another operation holds the tenant's lock."""


class EngineBusyError(RefusedError):
    """The local engine runs as many operations as it may (``--max-concurrent``)."""


@dataclass(frozen=True)
class Holder:
    operation: str
    batch_operation_id: str
    since: float


class TenantLocks:
    """A table of per-tenant locks; share one instance between all runs of a process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: dict[str, Holder] = {}

    def holder(self, tenant_env_id: str) -> Holder | None:
        with self._cond:
            return self._held.get(tenant_env_id)

    @contextmanager
    def hold(
        self,
        tenant_env_id: str,
        *,
        operation: str,
        batch_operation_id: str,
        wait_seconds: float = 0.0,
    ) -> Iterator[Holder]:
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        with self._cond:
            while tenant_env_id in self._held:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    busy = self._held[tenant_env_id]
                    raise TenantBusyError(
                        f"tenant {tenant_env_id} is busy: {busy.operation} "
                        f"(batch {busy.batch_operation_id}) is running",
                        hint="one operation per tenant at a time; retry when it has finished",
                    )
                self._cond.wait(remaining)
            mine = Holder(operation, batch_operation_id, time.monotonic())
            self._held[tenant_env_id] = mine
        try:
            yield mine
        finally:
            with self._cond:
                del self._held[tenant_env_id]
                self._cond.notify_all()
