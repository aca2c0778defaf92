"""What the engine is asked to run: one operation for one tenant, in one batch.

:class:`RequestLike` is what the engine reads; :class:`RunRequest` is the request made locally
(``tenantctl run``, the demo, tests); the orchestrator's ``LifecycleRequest`` fits it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.batch_ids import new_run_id


class RequestLike(Protocol):
    """What the engine reads from a request: :class:`RunRequest` or the orchestrator's
    ``LifecycleRequest`` (``orchestrator.events``) both fit."""

    @property
    def batch_operation_id(self) -> str: ...
    @property
    def tenant_env_id(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def region(self) -> str | None: ...
    @property
    def environment(self) -> Mapping[str, Any]: ...
    @property
    def changeset(self) -> Mapping[str, Any]: ...
    @property
    def source_batch_operation_id(self) -> str | None: ...


@dataclass(frozen=True)
class RunRequest:
    """A lifecycle request made locally (``tenantctl run``, the demo, tests)."""

    operation: str
    tenant_env_id: str
    batch_operation_id: str = field(default_factory=new_run_id)  # by hand; the bus gives its own
    environment: Mapping[str, Any] = field(default_factory=dict)
    changeset: Mapping[str, Any] = field(default_factory=dict)
    region: str | None = None
    source_batch_operation_id: str | None = None
