"""The bridge runner's hook seam (INTERFACES.md): what a run tells a hook and what a hook adds.

Why its own module: the runner calls hooks and the storage hooks implement them; both import
this seam, neither imports the other (``bridge.runner.load_hooks`` picks the storage hooks for a
storage operation, importing them only then: boto3 stays out of every other bridge).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class RunContext:
    namespace: str
    job: str
    operation: str
    tenant_env_id: str
    batch_operation_id: str
    source_batch_operation_id: str | None
    workflow_name: str | None


@dataclass(frozen=True)
class Injection:
    """What a hook adds to the pod: plain env, and secret env that travels in the per-run Secret
    and reaches the containers via ``secretKeyRef`` (never as plain values in the pod spec)."""

    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    # What the hook learned before the pod that belongs on the job's result (an import's
    # verified source: ``storage`` in the result JSON). Never credentials.
    report: Mapping[str, Any] = field(default_factory=dict)


class RunHooks(Protocol):
    def before_pod(self, ctx: RunContext) -> Injection:
        """Before any pod: may raise RefusedError (exit 2) or StorageError (exit 75)."""
        ...

    def after_success(self, ctx: RunContext) -> Mapping[str, Any] | None:
        """After the job succeeded: a StorageError fails the job with that reason. What it
        returns (an export's sealed location) is the result's ``storage``. Never credentials."""
        ...


class NoHooks:
    """The default: no injection, nothing to verify."""

    def before_pod(self, ctx: RunContext) -> Injection:
        return Injection()

    def after_success(self, ctx: RunContext) -> None:
        return None
