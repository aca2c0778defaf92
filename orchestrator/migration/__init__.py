"""Cross-region migration: migrate-out in region A, then migrate-in in region B, as one operation.

One module per part: :mod:`.saga` (the two steps, resumable from the history, and their
results), :mod:`.steps` (running a step in a region) and :mod:`.handler` (migrations from the bus).
The request event is :mod:`orchestrator.events.migration`.
"""

from orchestrator.events.migration import (
    EXPORT,
    IMPORT,
    MIGRATION_FAILED_TYPE,
    MIGRATION_OPERATION,
    MIGRATION_SOURCE,
    MIGRATION_SUCCEEDED_TYPE,
    MIGRATION_TYPE,
    MigrationRequest,
    is_migration,
    migration_event,
    parse_migration,
)
from orchestrator.migration.handler import MigrationHandler, bus_publisher
from orchestrator.migration.report import MigrationResult, StepReport, resumed
from orchestrator.migration.saga import Migration, StepOutcome, StepRunner
from orchestrator.migration.steps import ArgoStepRunner, LocalStepRunner, region_runners

__all__ = [
    "EXPORT",
    "IMPORT",
    "MIGRATION_FAILED_TYPE",
    "MIGRATION_OPERATION",
    "MIGRATION_SOURCE",
    "MIGRATION_SUCCEEDED_TYPE",
    "MIGRATION_TYPE",
    "ArgoStepRunner",
    "LocalStepRunner",
    "Migration",
    "MigrationHandler",
    "MigrationRequest",
    "MigrationResult",
    "StepOutcome",
    "StepReport",
    "StepRunner",
    "bus_publisher",
    "is_migration",
    "migration_event",
    "parse_migration",
    "region_runners",
    "resumed",
]
