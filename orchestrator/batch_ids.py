"""Batch operation ids: the one module that makes them.

The batch operation id is the idempotency key of one operation on one tenant: a Workflow's name,
a bridge's pod name and the result event's ``id`` all derive from it, so a second delivery of
the same request finds the first run instead of starting another. It travels as a label value:
at most 63 characters, lower-case letters, digits and ``-``.

* :func:`new_batch_operation_id`: a request published without an id (a UUID);
* :func:`new_run_id`: ``tenantctl run``'s default, ``run-<12 hex>`` (short enough to read);
* :func:`new_parent_batch_id`: a fleet run's or a migration's id, ``<kind>-<UTC time>-<hex>``,
  sortable so ``tenantctl history`` lists them in order;
* :func:`child_batch_id`: one tenant's request in a fleet run, derived from the parent;
* :func:`step_batch_id`: one step of a migration, ``<parent>-out`` / ``<parent>-in``.

A child id is a pure function of its parent and attempt, so a resumed fleet or migration finds
its earlier requests again; a new attempt gives a new id (a re-run is a new operation, not a
duplicate the engine would deduplicate away).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime
from typing import Final

MAX_BATCH_ID: Final = 63


def new_batch_operation_id() -> str:
    return str(uuid.uuid4())


def new_run_id() -> str:
    return f"run-{uuid.uuid4().hex[:12]}"


def new_parent_batch_id(kind: str, now: datetime | None = None) -> str:
    """``fleet-20261126t020000-3fa9c1``: sortable, lowercase, safe in labels and names."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{kind}-{moment:%Y%m%dt%H%M%S}-{secrets.token_hex(3)}"


def child_batch_id(parent: str, tenant: str, attempt: int = 1) -> str:
    """The child batch id of ``tenant`` in fleet ``parent``: the same inputs give the same id
    (a resumed run finds it), a new attempt gives a new one."""
    digest = hashlib.sha256(f"{parent}\n{tenant}\n{attempt}".encode()).hexdigest()[:10]
    # Batch ids travel as label values (<= 63 characters): a long parent id is shortened;
    # the digest covers the whole of it, so the child stays unique.
    return f"{parent[: MAX_BATCH_ID - 11].rstrip('-_.')}-{digest}"


def step_batch_id(parent: str, step: str, attempt: int = 1) -> str:
    """``<parent>-<step>``; attempt 2 and later add ``-<attempt>``."""
    base = f"{parent}-{step}"
    return base if attempt == 1 else f"{base}-{attempt}"
