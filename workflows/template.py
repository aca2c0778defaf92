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
Every expression used here is a module constant (or, for the levels, built by
:func:`level_condition`); what they do is proven on the real Argo controller
(``tests/e2e/argo``), their text by the unit tests.
"""

from __future__ import annotations

import json
from typing import Any

from hera.workflows import (
    ConfigMapEnvFrom,
    Container,
    Parameter,
    RawArtifact,
    RetryStrategy,
    SecretEnvFrom,
    Step,
    Steps,
    WorkflowTemplate,
)
from hera.workflows import models as m

from bridge.invocation import DiscoverInvocation, RunInvocation
from bridge.result import Status

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

# Paths inside the platform containers. Raw input artifacts put the tenant environment and the
# changeset there (no shell, no quoting of tenant data on a command line), base64-encoded: Argo
# substitutes a template's text more than once, so tenant text holding "{{...}}" would be read
# as Argo's own template ("{{=...}}" evaluated, an unclosed "{{" failing the Workflow). Encoded
# by an expression over the parameter, the data never appears in text Argo parses again.
ENVIRONMENT_PATH = "/tmp/environment.b64"  # noqa: S108 - a path inside the container
CHANGESET_PATH = "/tmp/changeset.b64"  # noqa: S108
# Argo's executor image (quay.io/argoproj/argoexec) has no USER: it runs as root, and a kubelet
# refuses its init and wait containers under runAsNonRoot unless the pod names a user. 8737 is
# the uid Argo's own non-root images use; the product's containers run as the product image's
# USER (the Dockerfile's 10001).
EXECUTOR_USER = 8737
PRODUCT_USER = 10001
PLAN_PATH = "/tmp/plan.json"  # noqa: S108
RESULT_PATH = "/tmp/result.json"  # noqa: S108

# The plan is published as a global output so that the recursive ``waves`` template reads it
# from the workflow scope instead of copying 100+ kB into every recursion level's inputs.
PLAN = "workflow.outputs.parameters.plan"
_WAVE = f"jsonpath({PLAN}, '$.waves[' + inputs.parameters.index + ']"
_HAS_WAVES = f"len(jsonpath({PLAN}, '$.waves')) > 0"
_PARALLELISM = "asInt(workflow.parameters.parallelism)"
WAVE_NUMBER = f"{{{{={_WAVE}.wave')}}}}"
# The planner keeps per-job JSON minimal (no "display" key: 2,000 jobs must fit 256 kB), so the
# "namespace/job" label is built here.
_DISPLAY = "{#.namespace + '/' + #.name}"
ABORT_JOBS = (
    f"{{{{=toJson(map(filter({_WAVE}.jobs'), {{#.onFailure != 'continue'}}), {_DISPLAY}))}}}}"
)
CONTINUE_JOBS = (
    f"{{{{=toJson(map(filter({_WAVE}.jobs'), {{#.onFailure == 'continue'}}), {_DISPLAY}))}}}}"
)
NEXT_INDEX = "{{=asInt(inputs.parameters.index) + 1}}"
HAS_NEXT_WAVE = f"{{{{=asInt(inputs.parameters.index) + 1 < len(jsonpath({PLAN}, '$.waves'))}}}}"
# One bridge node per job: the fan-out items are "namespace/job" strings, so Argo names each
# node ``abort-on-failure(0:team-a/schema)``; the bridge template splits the string back into
# namespace and job name.
JOB_NAMESPACE = "{{=split(inputs.parameters.job, '/')[0]}}"
JOB_NAME = "{{=split(inputs.parameters.job, '/')[1]}}"
# Only the bridge's "infrastructure" exit code is retried: the job's own failures (any other
# code), refusals (2) and terminations (143) are final.
INFRA_EXIT_CODE = 75
RETRY_EXPRESSION = f"asInt(lastRetry.exitCode) == {INFRA_EXIT_CODE}"


def _wp(name: str) -> str:
    return f"{{{{workflow.parameters.{name}}}}}"


# The bridge's two command lines, in Argo expressions (bridge/invocation.py spells them for the
# local engine too).
DISCOVER = DiscoverInvocation(
    operation=_wp("operation"),
    tenant_env_id=_wp("tenant-env-id"),
    environment=ENVIRONMENT_PATH,
    inputs_base64=True,
    output=PLAN_PATH,
)
RUN = RunInvocation(
    namespace=JOB_NAMESPACE,
    job=JOB_NAME,
    operation=_wp("operation"),
    tenant_env_id=_wp("tenant-env-id"),
    batch_operation_id=_wp("batch-operation-id"),
    environment=ENVIRONMENT_PATH,
    changeset=CHANGESET_PATH,
    inputs_base64=True,
    workflow_name="{{workflow.name}}",
    workflow_uid="{{workflow.uid}}",
    source_batch_operation_id=_wp("source-batch-operation-id"),
    result=RESULT_PATH,
)


def level_condition(levels: tuple[int, ...], index: int) -> str:
    """When the wave templates of ``levels[index]`` run: the plan has waves and the
    ``parallelism`` parameter is at least this level and below the next one."""
    conditions = [_HAS_WAVES]
    if index > 0:
        conditions.append(f"{_PARALLELISM} >= {levels[index]}")
    if index + 1 < len(levels):
        conditions.append(f"{_PARALLELISM} < {levels[index + 1]}")
    return "{{=" + " && ".join(conditions) + "}}"


def _raw(name: str, path: str, parameter: str) -> RawArtifact:
    # `workflow.parameters['x']`: the expression form that also accepts names with dashes.
    return RawArtifact(
        name=name, path=path, data=f"{{{{=sprig.b64enc(workflow.parameters['{parameter}'])}}}}"
    )


def _resources(settings: WorkflowSettings) -> m.ResourceRequirements:
    return m.ResourceRequirements(
        requests={k: m.Quantity(v) for k, v in settings.container_requests.items()},
        limits={k: m.Quantity(v) for k, v in settings.container_limits.items()},
    )


def _security_context() -> m.SecurityContext:
    return m.SecurityContext(
        run_as_user=PRODUCT_USER,
        run_as_group=PRODUCT_USER,
        allow_privilege_escalation=False,
        capabilities=m.Capabilities(drop=["ALL"]),
    )


def _env_from(settings: WorkflowSettings) -> list[ConfigMapEnvFrom]:
    # Optional: a cluster without the settings ConfigMap still runs with the defaults.
    return [ConfigMapEnvFrom(name=settings.settings_config_map, optional=True)]


def _bridge_env_from(settings: WorkflowSettings) -> list[ConfigMapEnvFrom | SecretEnvFrom]:
    # The bridge also reads its object-storage settings (BRIDGE_STORAGE_*). Static keys, for a
    # backend without STS, live in a Secret rather than the settings ConfigMap; optional, so a
    # cluster without storage operations needs neither (storage operations are then refused).
    return [
        *_env_from(settings),
        SecretEnvFrom(name=settings.storage_secret, optional=True),
    ]


def bridge_result_default() -> str:
    """The ``result`` output when the bridge died before writing one (JSON, Argo-substituted).

    The keys and values of the bridge's own record (:class:`bridge.result.RunResult`) that a
    template can know without the bridge: which job, and that it ended in an error."""
    return json.dumps(
        {
            "namespace": JOB_NAMESPACE,
            "job": JOB_NAME,
            "status": Status.ERROR.value,
            "exitCode": -1,
            "reason": "NoResult",
            "message": "the bridge exited without writing a result; see the node logs",
        },
        separators=(",", ":"),
    )


def build_workflow_template(settings: WorkflowSettings) -> WorkflowTemplate:
    """The hera object; :func:`workflow_template_manifest` gives its dict."""
    label = settings.label
    with WorkflowTemplate(
        name=settings.template_name,
        namespace=settings.workflow_namespace,
        labels={
            "app.kubernetes.io/name": "tenant-lifecycle",
            "app.kubernetes.io/component": "workflow-template",
        },
        annotations={
            "workflows.argoproj.io/description": (
                "Runs one lifecycle operation for one tenant: discovery, then the teams' "
                "bridged Jobs wave by wave, then publishes the result event."
            ),
        },
        entrypoint="lifecycle",
        on_exit="publish-result",
        service_account_name=settings.bridge_service_account,
        active_deadline_seconds=settings.active_deadline_seconds,
        arguments=[
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
        ],
        # One lifecycle operation per tenant at a time, across all workflows in the namespace.
        synchronization=m.Synchronization(mutexes=[m.Mutex(name=f"tenant-{_wp('tenant-env-id')}")]),
        workflow_metadata=m.WorkflowMetadata(
            labels_from={
                label("tenant"): m.LabelValueFrom(
                    expression="workflow.parameters['tenant-env-id']"
                ),
                label("operation"): m.LabelValueFrom(expression="workflow.parameters['operation']"),
                label("batch"): m.LabelValueFrom(
                    expression="workflow.parameters['batch-operation-id']"
                ),
            }
        ),
        pod_metadata=m.Metadata(
            labels={"app.kubernetes.io/part-of": "tenant-lifecycle"},
            # A discovery or bridge pod moved mid-operation fails its job (the bridge's pod in
            # the team namespace is not restarted by Argo): tell the cluster autoscaler not to
            # scale its node away while it runs.
            annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        ),
        # Failed pods stay for a while so their logs are in the UI; succeeded ones go.
        pod_gc=m.PodGC(strategy="OnPodSuccess", delete_delay_duration=settings.pod_gc_delete_delay),
        ttl_strategy=m.TTLStrategy(
            seconds_after_success=settings.ttl_seconds_after_success,
            seconds_after_failure=settings.ttl_seconds_after_failure,
        ),
        security_context=m.PodSecurityContext(
            run_as_non_root=True,
            run_as_user=EXECUTOR_USER,
            run_as_group=EXECUTOR_USER,
            seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
        ),
    ) as template:
        discover = Container(
            name="discover",
            image=settings.image,
            image_pull_policy=settings.image_pull_policy,
            service_account_name=settings.discovery_service_account,
            command=DISCOVER.command(),
            args=DISCOVER.args(),
            inputs=[_raw("environment", ENVIRONMENT_PATH, "environment")],
            outputs=[
                Parameter(name="plan", value_from=m.ValueFrom(path=PLAN_PATH), global_name="plan")
            ],
            env_from=_env_from(settings),
            resources=_resources(settings),
            security_context=_security_context(),
        )
        bridge = Container(
            name="bridge",
            image=settings.image,
            image_pull_policy=settings.image_pull_policy,
            service_account_name=settings.bridge_service_account,
            command=RUN.command(),
            args=RUN.args(),
            inputs=[
                Parameter(name="job", description="namespace/job, as the plan displays it"),
                Parameter(name="wave", default="0"),
                _raw("environment", ENVIRONMENT_PATH, "environment"),
                _raw("changeset", CHANGESET_PATH, "changeset"),
            ],
            outputs=[
                Parameter(
                    name="result",
                    value_from=m.ValueFrom(path=RESULT_PATH, default=bridge_result_default()),
                )
            ],
            retry_strategy=RetryStrategy(
                limit=settings.bridge_retry_limit,
                retry_policy="Always",
                expression=RETRY_EXPRESSION,
                backoff=m.Backoff(
                    duration=settings.bridge_retry_backoff,
                    factor=m.IntOrString(2),
                    cap=settings.bridge_retry_backoff_cap,
                ),
            ),
            env_from=_bridge_env_from(settings),
            resources=_resources(settings),
            security_context=_security_context(),
        )
        Container(  # the exit handler, referenced by name from on_exit
            name="publish-result",
            image=settings.image,
            image_pull_policy=settings.image_pull_policy,
            service_account_name=settings.orchestrator_service_account,
            command=["tenantctl", "publish-result"],
            # In the exit handler the Workflow's phase is not final yet: pass Argo's verdict.
            args=[
                "--workflow",
                "{{workflow.name}}",
                "--namespace",
                "{{workflow.namespace}}",
                "--workflow-status",
                "{{workflow.status}}",
            ],
            # Publishing is idempotent (the result-published annotation), so any failure of
            # the exit handler may be retried.
            retry_strategy=RetryStrategy(
                limit=5,
                retry_policy="Always",
                backoff=m.Backoff(duration="10s", factor=m.IntOrString(2), cap="2m"),
            ),
            env_from=_env_from(settings),
            resources=_resources(settings),
            security_context=_security_context(),
        )
        # One wave template (and its recursion) per parallelism level: Argo's template
        # parallelism is a number fixed in the template, so the parameter chooses among them.
        levels = settings.parallelism_levels
        for level in levels:
            with (
                Steps(
                    name=f"wave-p{level}",
                    inputs=[
                        Parameter(name="wave"),
                        Parameter(name="abort-jobs"),
                        Parameter(name="continue-jobs"),
                    ],
                    parallelism=level,
                    # Every job of a started wave runs even when one of them failed: a half-run
                    # wave is harder to reason about than a whole one. Later waves are what
                    # abort stops.
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
            with Steps(name=f"waves-p{level}", inputs=[Parameter(name="index")]):
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
    return template


def workflow_template_manifest(settings: WorkflowSettings) -> dict[str, Any]:
    """The WorkflowTemplate as a plain dict (camelCase, no ``None`` values)."""
    manifest: dict[str, Any] = build_workflow_template(settings).to_dict()
    return manifest
