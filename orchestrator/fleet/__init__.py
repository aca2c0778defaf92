"""Fleet operations: one lifecycle operation across many tenants, progressively and on record.

A fleet run has one *parent* batch id; each tenant gets one request (a child batch id derived
from the parent, the tenant and the attempt number, so a resumed run finds them again). The
run goes:

1. **Canary**: the first ``canary`` tenants of the list run first (at the concurrency bound) and
   the run waits for all their results. Any canary that does not succeed stops the run: no
   other tenant starts. That is the point of a canary.
2. **The rest**, never more than ``concurrency`` in flight. Each failure (``failed`` or
   ``error``) counts against the failure budget (``--max-failures 5`` or ``2%`` of the tenants
   selected); once the failures *exceed* the budget no new tenant starts. Tenants already in
   flight run to their end: stopping a half-done migration is worse than letting it finish.
3. **Interruption** (SIGINT / the ``cancel`` event): no new tenant starts and the tenants in
   flight are cancelled through the runner (the local engine terminates its bridges, which
   delete their pods); they are recorded ``cancelled``.

Every start and outcome is recorded in the history store (the fleet is the one recording it,
whatever the runner), which is what ``--resume PARENT`` reads: a tenant whose latest request
under that parent succeeded is skipped; one that failed or was cancelled runs again under a new
child id (attempt + 1); one whose request never finished (the process died) reuses the same
child id, so an engine that deduplicates by batch id (Argo's Workflow name) picks it up.

The per-tenant runner is a seam (:class:`TenantRunner`); the implementations live in
:mod:`orchestrator.fleet.runners`: the local engine and Argo (one Workflow per tenant).
"""

from orchestrator.batch_ids import MAX_BATCH_ID, child_batch_id
from orchestrator.fleet.progress import (
    Counts,
    FleetProgress,
    FleetSummary,
    LineProgress,
    NoProgress,
    TenantResult,
)
from orchestrator.fleet.request import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    FLEET_SOURCE,
    FailureBudget,
    FleetSettings,
    TenantOutcome,
    TenantRequest,
    TenantRunner,
)
from orchestrator.fleet.run import FleetRun
from orchestrator.outcome import CANCELLED, ERROR, FAILED, SUCCEEDED

__all__ = [
    "CANCELLED",
    "ERROR",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "FAILED",
    "FLEET_SOURCE",
    "MAX_BATCH_ID",
    "SUCCEEDED",
    "Counts",
    "FailureBudget",
    "FleetProgress",
    "FleetRun",
    "FleetSettings",
    "FleetSummary",
    "LineProgress",
    "NoProgress",
    "TenantOutcome",
    "TenantRequest",
    "TenantResult",
    "TenantRunner",
    "child_batch_id",
]
