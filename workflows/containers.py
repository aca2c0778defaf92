"""The WorkflowTemplate's three container templates: ``discover``, ``bridge`` and the exit
handler ``publish-result``, and what they share (image, resources, security context, settings).

Each builder creates its hera ``Container`` inside the caller's ``WorkflowTemplate`` context
(hera adds a template to the workflow being defined when it is created), and returns it so that
steps can reference it. :mod:`workflows.template` composes them.
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
)
from hera.workflows import models as m

from bridge.invocation import DiscoverInvocation, RunInvocation
from bridge.result import Status

from .expressions import JOB_NAME, JOB_NAMESPACE, RETRY_EXPRESSION, workflow_parameter
from .settings import WorkflowSettings

# Paths inside the platform containers. Raw input artifacts put the tenant environment and the
# changeset there (no shell, no quoting of tenant data on a command line), base64-encoded: Argo
# substitutes a template's text more than once, so tenant text holding "{{...}}" would be read
# as Argo's own template ("{{=...}}" evaluated, an unclosed "{{" failing the Workflow). Encoded
# by an expression over the parameter, the data never appears in text Argo parses again.
ENVIRONMENT_PATH = "/tmp/environment.b64"  # noqa: S108 - a path inside the container
CHANGESET_PATH = "/tmp/changeset.b64"  # noqa: S108
# The product's containers run as the product image's USER (the Dockerfile's 10001).
PRODUCT_USER = 10001
PLAN_PATH = "/tmp/plan.json"  # noqa: S108
RESULT_PATH = "/tmp/result.json"  # noqa: S108

# The bridge's two command lines, in Argo expressions (bridge/invocation.py spells them for the
# local engine too).
DISCOVER = DiscoverInvocation(
    operation=workflow_parameter("operation"),
    tenant_env_id=workflow_parameter("tenant-env-id"),
    environment=ENVIRONMENT_PATH,
    inputs_base64=True,
    output=PLAN_PATH,
)
RUN = RunInvocation(
    namespace=JOB_NAMESPACE,
    job=JOB_NAME,
    operation=workflow_parameter("operation"),
    tenant_env_id=workflow_parameter("tenant-env-id"),
    batch_operation_id=workflow_parameter("batch-operation-id"),
    environment=ENVIRONMENT_PATH,
    changeset=CHANGESET_PATH,
    inputs_base64=True,
    workflow_name="{{workflow.name}}",
    workflow_uid="{{workflow.uid}}",
    source_batch_operation_id=workflow_parameter("source-batch-operation-id"),
    result=RESULT_PATH,
)


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


def _platform_container(
    settings: WorkflowSettings, *, name: str, service_account: str, **fields: Any
) -> Container:
    """A container of the product's own image, as every platform step runs it: the image and
    pull policy, its account, the resources and the restricted security context."""
    return Container(
        name=name,
        image=settings.image,
        image_pull_policy=settings.image_pull_policy,
        service_account_name=service_account,
        resources=_resources(settings),
        security_context=_security_context(),
        **fields,
    )


def discover_container(settings: WorkflowSettings) -> Container:
    """``python -m bridge discover``: the plan, as an output parameter and the global ``plan``."""
    return _platform_container(
        settings,
        name="discover",
        service_account=settings.discovery_service_account,
        command=DISCOVER.command(),
        args=DISCOVER.args(),
        inputs=[_raw("environment", ENVIRONMENT_PATH, "environment")],
        outputs=[
            Parameter(name="plan", value_from=m.ValueFrom(path=PLAN_PATH), global_name="plan")
        ],
        env_from=_env_from(settings),
    )


def bridge_container(settings: WorkflowSettings) -> Container:
    """``python -m bridge run`` for one ``namespace/job``, retried on infrastructure errors."""
    return _platform_container(
        settings,
        name="bridge",
        service_account=settings.bridge_service_account,
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
    )


def publish_result_container(settings: WorkflowSettings) -> Container:
    """The exit handler (referenced by name from ``onExit``): ``tenantctl publish-result``."""
    return _platform_container(
        settings,
        name="publish-result",
        service_account=settings.orchestrator_service_account,
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
    )
