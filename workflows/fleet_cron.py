"""Scheduled fleet operations: a reviewed WorkflowTemplate that runs ``tenantctl fleet``, and an
Argo CronWorkflow that only references it.

The nightly backup of every tenant is the canonical schedule. The dispatcher pod is thin:
``tenantctl fleet --engine argo`` submits one Workflow per tenant from the reviewed
``tenant-lifecycle`` WorkflowTemplate (so each tenant's run is in the Argo UI, with its logs and
its result event), with a canary, bounded concurrency and a failure budget, and records every
request in the shared (PostgreSQL) history.

Why two objects: the install turns on ``templateReferencing: Strict`` (``deploy/argo/``), under
which the workflow controller runs only Workflows that reference a WorkflowTemplate, and (Argo
v3.7.14 / v4.0.5 and later, ``workflow/util/merge.go``) refuses every field of the submitted
Workflow's spec beyond a short allow-list: ``arguments``, ``entrypoint``, ``shutdown``,
``suspend``, ``activeDeadlineSeconds``, ``priority``, ``ttlStrategy``, ``podGC``,
``volumeClaimGC``, ``archiveLogs``, ``workflowMetadata``, ``metrics``, ``artifactGC`` (without
its service account, pod spec patch or pod metadata) and ``workflowTemplateRef``. Service
account, security context, pod metadata and templates are not on it. A CronWorkflow's
``workflowSpec`` becomes the spec of the Workflows it creates, so it holds
``workflowTemplateRef`` and ``arguments`` only; everything that decides what runs, as whom and
how, lives in the template.

Safety, and where each property lives:

* ``concurrencyPolicy: Forbid`` (CronWorkflow) — a nightly run still going at the next schedule
  is not doubled; the next one is skipped.
* ``startingDeadlineSeconds`` (CronWorkflow) — a schedule missed by more than an hour
  (controller down) is skipped rather than run at a surprising time.
* ``--resume {{workflow.name}}`` (template) — the run's id is the Workflow's name, which the
  CronWorkflow derives from the scheduled time. If the dispatcher pod dies (node drain) the
  template's ``retryStrategy`` (limit 2, ``Always``) starts it again in the same Workflow, and
  it resumes: tenants that already succeeded are not run again. A fresh schedule is a fresh
  name, a fresh run.
* ``activeDeadlineSeconds`` (template) — a stuck dispatcher does not block the next night.
* the history Secret (template) — ``TENANTCTL_STORE`` comes from the Secret's ``url`` key, so
  the database password never sits in a spec; service account, pod and container security
  context, resources (template) — none of them can be changed by whoever submits.
* the selection (``--all`` or ``--selector=EXPR``) is one argument computed by an Argo
  expression from the ``selector`` parameter, and the operation comes after ``--``: no
  parameter value can become another ``tenantctl fleet`` flag.

``tenantctl render`` writes both to ``workflows/rendered/fleet/`` through
:func:`fleet_workflow_template_manifest` and :func:`fleet_cron_manifest`. They are not part of
the base install: a nightly run over every tenant is a decision the operator makes by applying
that directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hera.workflows import Container, CronWorkflow, Parameter, RetryStrategy, WorkflowTemplate
from hera.workflows import models as m

from .install import HISTORY_SECRET, HISTORY_SECRET_KEY, PRODUCT_UID
from .settings import WorkflowSettings

FLEET_CRON_LABEL = "app.kubernetes.io/component"
FLEET_TEMPLATE_NAME = "tenant-lifecycle-fleet"
# Argo's executor image (quay.io/argoproj/argoexec) has no USER: it would run as root, which a
# pod with runAsNonRoot refuses. 8737 is the non-root uid Argo's own Dockerfile gives it
# (the argoexec-nonroot target); the dispatcher container runs as the product image's user.
ARGOEXEC_UID = 8737
# The one argument that selects the tenants, computed by Argo (expression template) so that a
# parameter value cannot become a flag of its own: `--all` when the selector is empty.
SELECTION_ARG = (
    "{{=workflow.parameters.selector == '' ? '--all' : "
    "'--selector=' + workflow.parameters.selector}}"
)


def _wp(name: str) -> str:
    return f"{{{{workflow.parameters.{name}}}}}"


def dispatcher_args(
    settings: WorkflowSettings,
    *,
    operation: str,
    selection: str,
    inventory: str,
    concurrency: str,
    canary: str,
    max_failures: str,
) -> list[str]:
    """``tenantctl`` arguments of the dispatcher: the template's (with parameter placeholders)
    and, with values, what a schedule runs (:meth:`FleetSchedule.fleet_args`)."""
    return [
        "fleet",
        selection,
        "--inventory",
        inventory,
        "--engine",
        "argo",
        "--argo-namespace",
        settings.workflow_namespace,
        "--concurrency",
        concurrency,
        "--canary",
        canary,
        "--max-failures",
        max_failures,
        "--resume",
        "{{workflow.name}}",
        # Options end here: the operation is always read as the operation.
        "--",
        operation,
    ]


@dataclass(frozen=True)
class FleetSchedule:
    """One scheduled fleet operation. Defaults: the nightly backup of every tenant."""

    name: str = "fleet-nightly-backup"
    operation: str = "lifecycle.backup"
    schedule: str = "0 2 * * *"
    timezone: str = "UTC"
    # Tenant selection: --selector EXPR when set, else --all.
    selector: str | None = None
    concurrency: int = 20
    canary: int = 5
    max_failures: str = "2%"
    # Where the tenant list comes from: a URL, or a file path inside the image.
    inventory: str = "http://tenant-manager.tenant-manager.svc/api/v1/tenants"
    # The WorkflowTemplate the CronWorkflow references.
    template: str = FLEET_TEMPLATE_NAME
    starting_deadline_seconds: int = 3600
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 7

    @property
    def selection_arg(self) -> str:
        """What :data:`SELECTION_ARG` evaluates to for this schedule's selector."""
        return f"--selector={self.selector}" if self.selector else "--all"

    def arguments(self) -> dict[str, str]:
        """The template's parameters, as the CronWorkflow passes them."""
        return {
            "operation": self.operation,
            "selector": self.selector or "",
            "inventory": self.inventory,
            "concurrency": str(self.concurrency),
            "canary": str(self.canary),
            "max-failures": self.max_failures,
        }

    def fleet_args(self, settings: WorkflowSettings) -> list[str]:
        """The ``tenantctl`` command line the dispatcher runs for this schedule."""
        return dispatcher_args(
            settings,
            operation=self.operation,
            selection=self.selection_arg,
            inventory=self.inventory,
            concurrency=str(self.concurrency),
            canary=str(self.canary),
            max_failures=self.max_failures,
        )


@dataclass(frozen=True)
class FleetTemplate:
    """The reviewed dispatcher WorkflowTemplate; its parameters default to ``defaults``."""

    name: str = FLEET_TEMPLATE_NAME
    defaults: FleetSchedule = FleetSchedule()
    # The Secret with the PostgreSQL URL (with password) of the shared history.
    history_secret: str = HISTORY_SECRET
    history_secret_key: str = HISTORY_SECRET_KEY
    # Longer than any fleet should take; a stuck dispatcher does not block the next night.
    active_deadline_seconds: int = 20 * 3600
    retry_limit: int = 2


_PARAMETER_HELP = {
    "operation": "lifecycle operation run for every selected tenant, e.g. lifecycle.backup",
    "selector": "inventory selector, e.g. 'region=eu-west-1,tier in (gold,silver)'; empty: all",
    "inventory": "tenant inventory: an http(s) URL or a file path in the image",
    "concurrency": "tenants in flight at most",
    "canary": "tenants run first; nothing else starts unless all of them succeed",
    "max-failures": "failed tenants tolerated (count, or % of the selection)",
}


def build_fleet_workflow_template(
    settings: WorkflowSettings, template: FleetTemplate | None = None
) -> WorkflowTemplate:
    """The hera object; :func:`fleet_workflow_template_manifest` gives its dict."""
    template = template or FleetTemplate()
    defaults = template.defaults.arguments()
    with WorkflowTemplate(
        name=template.name,
        namespace=settings.workflow_namespace,
        labels={
            "app.kubernetes.io/name": "tenant-lifecycle",
            FLEET_CRON_LABEL: "fleet-template",
        },
        annotations={
            "workflows.argoproj.io/description": (
                "Runs one lifecycle operation across the tenant fleet with tenantctl fleet: "
                "canary, bounded concurrency, failure budget, resumable under the Workflow's "
                "name. Referenced by the fleet CronWorkflows."
            ),
        },
        entrypoint="fleet",
        arguments=[
            Parameter(name=name, value=value, description=_PARAMETER_HELP[name])
            for name, value in defaults.items()
        ],
        # The orchestrator's account: it may create Workflows from the template and read them.
        service_account_name=settings.orchestrator_service_account,
        active_deadline_seconds=template.active_deadline_seconds,
        pod_metadata=m.Metadata(labels={"app.kubernetes.io/part-of": "tenant-lifecycle"}),
        # Pod level: Argo's init and wait containers (argoexec) run as its non-root uid.
        security_context=m.PodSecurityContext(
            run_as_non_root=True,
            run_as_user=ARGOEXEC_UID,
            run_as_group=ARGOEXEC_UID,
            seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
        ),
    ) as workflow_template:
        Container(
            name="fleet",
            image=settings.image,
            image_pull_policy=settings.image_pull_policy,
            command=["tenantctl"],
            args=dispatcher_args(
                settings,
                operation=_wp("operation"),
                selection=SELECTION_ARG,
                inventory=_wp("inventory"),
                concurrency=_wp("concurrency"),
                canary=_wp("canary"),
                max_failures=_wp("max-failures"),
            ),
            env=[
                m.EnvVar(
                    name="TENANTCTL_STORE",
                    value_from=m.EnvVarSource(
                        secret_key_ref=m.SecretKeySelector(
                            name=template.history_secret, key=template.history_secret_key
                        )
                    ),
                ),
            ],
            # The dispatcher pod may die (node drain): a retry resumes the same run.
            retry_strategy=RetryStrategy(limit=template.retry_limit, retry_policy="Always"),
            resources=m.ResourceRequirements(
                requests={k: m.Quantity(v) for k, v in settings.container_requests.items()},
                limits={k: m.Quantity(v) for k, v in settings.container_limits.items()},
            ),
            security_context=m.SecurityContext(
                run_as_non_root=True,
                run_as_user=PRODUCT_UID,
                run_as_group=PRODUCT_UID,
                allow_privilege_escalation=False,
                read_only_root_filesystem=True,
                capabilities=m.Capabilities(drop=["ALL"]),
            ),
        )
    return workflow_template


def fleet_workflow_template_manifest(
    settings: WorkflowSettings | None = None, template: FleetTemplate | None = None
) -> dict[str, Any]:
    """The dispatcher WorkflowTemplate as a plain dict (what ``tenantctl render`` writes)."""
    manifest: dict[str, Any] = build_fleet_workflow_template(
        settings or WorkflowSettings(), template
    ).to_dict()
    return manifest


def build_fleet_cron_workflow(
    settings: WorkflowSettings, schedule: FleetSchedule | None = None
) -> CronWorkflow:
    """The hera object; :func:`fleet_cron_manifest` gives its dict."""
    schedule = schedule or FleetSchedule()
    return CronWorkflow(
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
        # The Workflows' spec: a reference and its arguments, nothing Strict refuses.
        workflow_template_ref=m.WorkflowTemplateRef(name=schedule.template),
        arguments=[
            Parameter(name=name, value=value) for name, value in schedule.arguments().items()
        ],
    )


def fleet_cron_manifest(
    settings: WorkflowSettings | None = None, schedule: FleetSchedule | None = None
) -> dict[str, Any]:
    """The CronWorkflow as a plain dict (what ``tenantctl render`` writes as YAML)."""
    manifest: dict[str, Any] = build_fleet_cron_workflow(
        settings or WorkflowSettings(), schedule
    ).to_dict()
    return manifest
