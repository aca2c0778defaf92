"""Scheduled fleet operations: an Argo CronWorkflow that runs ``tenantctl fleet``.

The nightly backup of every tenant is the canonical one. The CronWorkflow's pod is a thin
dispatcher: ``tenantctl fleet --engine argo`` submits one Workflow per tenant from the reviewed
``tenant-lifecycle`` WorkflowTemplate (so each tenant's run is in the Argo UI, with its logs and
its result event), with a canary, bounded concurrency and a failure budget, and records every
request in the shared (PostgreSQL) history.

Safety, as the CronWorkflow expresses it:

* ``concurrencyPolicy: Forbid`` — a nightly run still going at the next schedule is not
  doubled; the next one is skipped.
* ``--resume {{workflow.name}}`` — the run's id is the Workflow's name. If the dispatcher pod
  dies (node drain) Argo's retry starts it again under the same name, and it resumes: tenants
  that already succeeded are not run again. A fresh schedule is a fresh name, a fresh run.
* ``startingDeadlineSeconds`` — a schedule missed by more than an hour (controller down) is
  skipped rather than run at a surprising time.

``tenantctl render`` writes it to ``workflows/rendered/fleet/`` through
:func:`fleet_cron_manifest`. It is not part of the base install: a nightly run over every tenant
is a decision the operator makes by applying that directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hera.workflows import Container, CronWorkflow, RetryStrategy
from hera.workflows import models as m

from .settings import WorkflowSettings

FLEET_CRON_LABEL = "app.kubernetes.io/component"


@dataclass(frozen=True)
class FleetSchedule:
    """One scheduled fleet operation. Defaults: the nightly backup of every tenant."""

    name: str = "fleet-nightly-backup"
    operation: str = "lifecycle.backup"
    schedule: str = "0 2 * * *"
    timezone: str = "UTC"
    # Tenant selection: exactly one of these is used, --selector when set, else --all.
    selector: str | None = None
    concurrency: int = 20
    canary: int = 5
    max_failures: str = "2%"
    # Where the tenant list comes from (a URL or a file path inside the image / a mounted
    # ConfigMap) and where history goes: the Secret holds the PostgreSQL URL (with password).
    inventory: str = "http://tenant-manager.tenant-manager.svc/api/v1/tenants"
    history_secret: str = "tenant-lifecycle-history"  # noqa: S105 - a Secret's name
    history_secret_key: str = "url"  # noqa: S105 - a key name
    starting_deadline_seconds: int = 3600
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 7
    # Longer than any fleet should take; a stuck dispatcher does not block the next night.
    active_deadline_seconds: int = 20 * 3600
    extra_args: Sequence[str] = field(default=())

    def fleet_args(self, settings: WorkflowSettings) -> list[str]:
        selection = ["--selector", self.selector] if self.selector else ["--all"]
        return [
            "fleet",
            self.operation,
            *selection,
            "--inventory",
            self.inventory,
            "--engine",
            "argo",
            "--argo-namespace",
            settings.workflow_namespace,
            "--concurrency",
            str(self.concurrency),
            "--canary",
            str(self.canary),
            "--max-failures",
            self.max_failures,
            "--resume",
            "{{workflow.name}}",
            *self.extra_args,
        ]


def build_fleet_cron_workflow(
    settings: WorkflowSettings, schedule: FleetSchedule | None = None
) -> CronWorkflow:
    """The hera object; :func:`fleet_cron_manifest` gives its dict."""
    schedule = schedule or FleetSchedule()
    with CronWorkflow(
        name=schedule.name,
        namespace=settings.workflow_namespace,
        labels={
            "app.kubernetes.io/name": "tenant-lifecycle",
            FLEET_CRON_LABEL: "fleet-schedule",
            settings.label("operation"): schedule.operation,
        },
        annotations={
            "workflows.argoproj.io/description": (
                f"Runs {schedule.operation} across the tenant fleet on schedule "
                f"'{schedule.schedule}' ({schedule.timezone}): canary {schedule.canary}, "
                f"concurrency {schedule.concurrency}, max failures {schedule.max_failures}."
            ),
        },
        schedules=[schedule.schedule],
        timezone=schedule.timezone,
        concurrency_policy="Forbid",
        starting_deadline_seconds=schedule.starting_deadline_seconds,
        successful_jobs_history_limit=schedule.successful_jobs_history_limit,
        failed_jobs_history_limit=schedule.failed_jobs_history_limit,
        entrypoint="fleet",
        # The orchestrator's account: it may create Workflows from the template and read them.
        service_account_name=settings.orchestrator_service_account,
        active_deadline_seconds=schedule.active_deadline_seconds,
        pod_metadata=m.Metadata(labels={"app.kubernetes.io/part-of": "tenant-lifecycle"}),
        security_context=m.PodSecurityContext(
            run_as_non_root=True, seccomp_profile=m.SeccompProfile(type="RuntimeDefault")
        ),
    ) as cron:
        Container(
            name="fleet",
            image=settings.image,
            image_pull_policy=settings.image_pull_policy,
            command=["tenantctl"],
            args=schedule.fleet_args(settings),
            env=[
                m.EnvVar(
                    name="TENANTCTL_STORE",
                    value_from=m.EnvVarSource(
                        secret_key_ref=m.SecretKeySelector(
                            name=schedule.history_secret, key=schedule.history_secret_key
                        )
                    ),
                ),
            ],
            # The dispatcher pod may die (node drain): a retry resumes the same run.
            retry_strategy=RetryStrategy(limit=2, retry_policy="Always"),
            resources=m.ResourceRequirements(
                requests={k: m.Quantity(v) for k, v in settings.container_requests.items()},
                limits={k: m.Quantity(v) for k, v in settings.container_limits.items()},
            ),
            security_context=m.SecurityContext(
                allow_privilege_escalation=False,
                read_only_root_filesystem=True,
                capabilities=m.Capabilities(drop=["ALL"]),
            ),
        )
    return cron


def fleet_cron_manifest(
    settings: WorkflowSettings | None = None, schedule: FleetSchedule | None = None
) -> dict[str, Any]:
    """The CronWorkflow as a plain dict (what ``tenantctl render`` writes as YAML)."""
    manifest: dict[str, Any] = build_fleet_cron_workflow(
        settings or WorkflowSettings(), schedule
    ).to_dict()
    return manifest
