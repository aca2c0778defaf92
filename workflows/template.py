"""The ``tenant-lifecycle`` WorkflowTemplate, defined with hera.

Shape (``docs/workflows.md`` tells the story)::

    lifecycle (steps)
    ├── discover                 python -m bridge discover ... --output /tmp/plan.json
    │                            (plan -> output parameter, also the global ``plan``)
    └── waves-p<N>(index=0)      N: the parallelism level the parameter selects (the other
        │                        levels' steps are skipped); none when the plan is empty
        ├── wave                 wave-p<N>: two withParam fan-outs in one parallel group
        │   ├── abort-on-failure(i:namespace/job)      bridge, a failure fails the wave
        │   └── continue-on-failure(i:namespace/job)   bridge, continueOn failed/error
        └── next = waves-p<N>(index+1)  when there is a next wave (never after a failed one)

Waves run one after another because ``waves-p<N>`` recurses on the wave index: Argo only starts
the second step group once the first succeeded, so a failed ``abort`` job stops the later waves
while a failed ``continue`` job (its step has ``continueOn``) does not. Each recursion is one
level of Argo's template nesting, which stops at 100: hence ``bridge.planner.MAX_WAVES``.
This module composes the template from small pieces: the workflow's parameters and metadata
here, the three container templates (``discover``, ``bridge``, the exit handler
``publish-result``) from :mod:`workflows.containers`, the wave templates and the ``lifecycle``
entry point below; every Argo expression they use is in :mod:`workflows.expressions`.
"""

from __future__ import annotations

from typing import Any

from hera.workflows import Container, Parameter, Step, Steps, WorkflowTemplate
from hera.workflows import models as m

from .containers import bridge_container, discover_container, publish_result_container
from .expressions import (
    ABORT_JOBS,
    CONTINUE_JOBS,
    HAS_NEXT_WAVE,
    NEXT_INDEX,
    WAVE_NUMBER,
    level_condition,
    workflow_parameter,
)
from .settings import WorkflowSettings

# Workflow parameters (INTERFACES.md): names are part of the contract with the orchestrator
# and the Argo Events Sensor.
PARAMETERS: tuple[str, ...] = (
    "operation",
    "tenant-env-id",
    "batch-operation-id",
    "environment",
    "changeset",
    "parallelism",
    "source-batch-operation-id",
)
REQUIRED_PARAMETERS: tuple[str, ...] = ("operation", "tenant-env-id", "batch-operation-id")

# Argo's executor image (quay.io/argoproj/argoexec) has no USER: it runs as root, and a kubelet
# refuses its init and wait containers under runAsNonRoot unless the pod names a user. 8737 is
# the uid Argo's own non-root images use (the product's containers name their own user:
# workflows.containers.PRODUCT_USER).
EXECUTOR_USER = 8737


def _arguments(settings: WorkflowSettings) -> list[Parameter]:
    """The workflow's parameters (:data:`PARAMETERS`), with their defaults and help."""
    return [
        Parameter(name="operation", description="lifecycle operation, e.g. lifecycle.upsert"),
        Parameter(name="tenant-env-id", description="tenant environment id"),
        Parameter(name="batch-operation-id", description="id of the whole operation"),
        Parameter(name="environment", value="{}", description="tenant environment (YAML)"),
        Parameter(name="changeset", value="{}", description="changeset (YAML)"),
        Parameter(
            name="parallelism",
            value=str(settings.default_parallelism),
            description=(
                "most bridges of one wave at once; rounded down to one of "
                + ", ".join(map(str, settings.parallelism_levels))
                + " (docs/workflows.md)"
            ),
        ),
        Parameter(
            name="source-batch-operation-id",
            value="",
            description="restore/migrate-in: the batch whose data to read (may be empty)",
        ),
    ]


def _workflow_metadata(settings: WorkflowSettings) -> m.WorkflowMetadata:
    """Each Workflow's tenant, operation and batch labels, from its parameters."""
    label = settings.label
    return m.WorkflowMetadata(
        labels_from={
            label("tenant"): m.LabelValueFrom(expression="workflow.parameters['tenant-env-id']"),
            label("operation"): m.LabelValueFrom(expression="workflow.parameters['operation']"),
            label("batch"): m.LabelValueFrom(
                expression="workflow.parameters['batch-operation-id']"
            ),
        }
    )


def _pod_metadata() -> m.Metadata:
    return m.Metadata(
        labels={"app.kubernetes.io/part-of": "tenant-lifecycle"},
        # A discovery or bridge pod moved mid-operation fails its job (the bridge's pod in
        # the team namespace is not restarted by Argo): tell the cluster autoscaler not to
        # scale its node away while it runs.
        annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    )


def _workflow_fields(settings: WorkflowSettings) -> dict[str, Any]:
    """The WorkflowTemplate's own fields: names, entry points, lifetimes, pod defaults."""
    tenant = workflow_parameter("tenant-env-id")
    return {
        "name": settings.template_name,
        "namespace": settings.workflow_namespace,
        "labels": {
            "app.kubernetes.io/name": "tenant-lifecycle",
            "app.kubernetes.io/component": "workflow-template",
        },
        "annotations": {
            "workflows.argoproj.io/description": (
                "Runs one lifecycle operation for one tenant: discovery, then the teams' "
                "bridged Jobs wave by wave, then publishes the result event."
            ),
        },
        "entrypoint": "lifecycle",
        "on_exit": "publish-result",
        "service_account_name": settings.bridge_service_account,
        "active_deadline_seconds": settings.active_deadline_seconds,
        "arguments": _arguments(settings),
        # One lifecycle operation per tenant at a time, across all workflows in the namespace.
        "synchronization": m.Synchronization(mutexes=[m.Mutex(name=f"tenant-{tenant}")]),
        "workflow_metadata": _workflow_metadata(settings),
        "pod_metadata": _pod_metadata(),
        # Failed pods stay for a while so their logs are in the UI; succeeded ones go.
        "pod_gc": m.PodGC(
            strategy="OnPodSuccess", delete_delay_duration=settings.pod_gc_delete_delay
        ),
        "ttl_strategy": m.TTLStrategy(
            seconds_after_success=settings.ttl_seconds_after_success,
            seconds_after_failure=settings.ttl_seconds_after_failure,
        ),
        "security_context": m.PodSecurityContext(
            run_as_non_root=True,
            run_as_user=EXECUTOR_USER,
            run_as_group=EXECUTOR_USER,
            seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
        ),
    }


def wave_steps(level: int, *, bridge: Container) -> Steps:
    """``wave-p<level>``: one wave's two fan-outs of the bridge, at most ``level`` at once."""
    with (
        Steps(
            name=f"wave-p{level}",
            inputs=[
                Parameter(name="wave"),
                Parameter(name="abort-jobs"),
                Parameter(name="continue-jobs"),
            ],
            parallelism=level,
            # Every job of a started wave runs even when one of them failed: a half-run wave is
            # harder to reason about than a whole one. Later waves are what abort stops.
            fail_fast=False,
        ) as wave,
        wave.parallel(),
    ):
        Step(
            name="abort-on-failure",
            template=bridge,
            arguments={"job": "{{item}}", "wave": "{{inputs.parameters.wave}}"},
            with_param="{{inputs.parameters.abort-jobs}}",
        )
        Step(
            name="continue-on-failure",
            template=bridge,
            arguments={"job": "{{item}}", "wave": "{{inputs.parameters.wave}}"},
            with_param="{{inputs.parameters.continue-jobs}}",
            continue_on=m.ContinueOn(failed=True, error=True),
        )
    return wave


def waves_steps(level: int, *, wave: Steps) -> Steps:
    """``waves-p<level>(index)``: wave ``index``, then itself for the next wave if any."""
    with Steps(name=f"waves-p{level}", inputs=[Parameter(name="index")]) as waves:
        Step(
            name="wave",
            template=wave,
            arguments={
                "wave": WAVE_NUMBER,
                "abort-jobs": ABORT_JOBS,
                "continue-jobs": CONTINUE_JOBS,
            },
        )
        Step(
            name="next",
            template=f"waves-p{level}",
            arguments={"index": NEXT_INDEX},
            when=HAS_NEXT_WAVE,
        )
    return waves


def lifecycle_steps(levels: tuple[int, ...], *, discover: Container) -> Steps:
    """The entry point: discovery, then the waves at the level the parameter selects."""
    with Steps(name="lifecycle") as lifecycle:
        Step(name="discover", template=discover)
        # Exactly one of these runs (the others show as skipped): the waves at the level
        # the parallelism parameter selects; none when the plan is empty.
        with lifecycle.parallel():
            for index, level in enumerate(levels):
                Step(
                    name=f"waves-p{level}",
                    template=f"waves-p{level}",
                    arguments={"index": "0"},
                    when=level_condition(levels, index),
                )
    return lifecycle


def build_workflow_template(settings: WorkflowSettings) -> WorkflowTemplate:
    """The hera object; :func:`workflow_template_manifest` gives its dict.

    The templates are listed in the order they are created here (the rendered YAML's order).
    """
    with WorkflowTemplate(**_workflow_fields(settings)) as template:
        discover = discover_container(settings)
        bridge = bridge_container(settings)
        publish_result_container(settings)  # referenced by name from on_exit
        # One wave template (and its recursion) per parallelism level: Argo's template
        # parallelism is a number fixed in the template, so the parameter chooses among them.
        levels = settings.parallelism_levels
        for level in levels:
            waves_steps(level, wave=wave_steps(level, bridge=bridge))
        lifecycle_steps(levels, discover=discover)
    return template


def workflow_template_manifest(settings: WorkflowSettings) -> dict[str, Any]:
    """The WorkflowTemplate as a plain dict (camelCase, no ``None`` values)."""
    manifest: dict[str, Any] = build_workflow_template(settings).to_dict()
    return manifest
