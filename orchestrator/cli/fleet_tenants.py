"""What ``tenantctl fleet`` runs on: the tenants it selects (exactly one of ``--all``,
``--tenants``, ``--selector``), the run's parent id, and every tenant's request checked before
anything starts."""

from __future__ import annotations

from typing import Any

from bridge.errors import UsageError
from orchestrator import batch_ids
from orchestrator.cli.commands.run import build_request
from orchestrator.fleet import child_batch_id
from orchestrator.fleet.inventory import (
    Inventory,
    Tenant,
    parse_selector,
    read_tenant_ids,
    resolve_ids,
)


def select_tenants(
    *,
    all_tenants: bool,
    tenants_file: str | None,
    selector: str | None,
    inventory: Inventory | None,
) -> list[Tenant]:
    """Exactly one of ``--all``, ``--tenants``, ``--selector``; clear errors otherwise."""
    chosen = [
        flag
        for flag, given in (
            ("--all", all_tenants),
            ("--tenants", tenants_file),
            ("--selector", selector),
        )
        if given
    ]
    if len(chosen) != 1:
        raise UsageError(
            "choose the tenants with exactly one of --all, --tenants FILE, --selector EXPR"
            + (f" (got {' and '.join(chosen)})" if chosen else ""),
            hint="e.g. --selector 'region=eu-west-1' --inventory tenants.yaml",
        )
    if tenants_file:
        return resolve_ids(read_tenant_ids(tenants_file), inventory)
    if inventory is None:
        raise UsageError(
            f"{chosen[0]} needs a tenant inventory",
            hint="pass --inventory FILE|URL (or set TENANTCTL_INVENTORY)",
        )
    everyone = inventory.tenants()
    if all_tenants:
        return everyone
    assert selector is not None
    return parse_selector(selector).select(everyone)


def check_requests(
    operation: str, tenants: list[Tenant], *, changeset: dict[str, Any], parent: str
) -> None:
    """Validate every tenant's request exactly as the orchestrator validates a bus event,
    before anything starts: a bad tenant id in the inventory is a usage error, not a failure
    halfway through the fleet."""
    problems = []
    for tenant in tenants:
        try:
            build_request(
                operation,
                tenant_env_id=tenant.id,
                batch_operation_id=child_batch_id(parent, tenant.id),
                environment=tenant.environment(),
                changeset=changeset,
                region=tenant.region,
                source_batch_operation_id=None,
            )
        except UsageError as exc:
            if exc.message.startswith(("OP:", "--changeset")):
                raise  # the same for every tenant: say it once
            problems.append(f"tenant {tenant.id!r}: {exc.message.split(': ', 1)[-1]}")
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; … {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise UsageError(
            f"{len(problems)} tenant(s) cannot be requested: {shown}",
            hint="fix them in the inventory or leave them out of the selection",
        )


def parent_id(*, resume: str | None, parent_batch_id: str | None) -> str:
    """The fleet run's parent batch id: the one resumed, the one given, or a new one."""
    if resume and parent_batch_id and resume != parent_batch_id:
        raise UsageError(
            "--resume and --parent-batch-id name different runs",
            hint="pass only --resume PARENT_BATCH",
        )
    return resume or parent_batch_id or batch_ids.new_parent_batch_id("fleet")
