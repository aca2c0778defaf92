"""``tenantctl publish-result``: the Argo exit handler's command (one result per Workflow)."""

from __future__ import annotations

import click

from bridge.errors import LifecycleError
from orchestrator.cli.commands.listen import (
    configure_logging,
    kube_options,
    pubsub_project_option,
    workflow_namespace_option,
)
from orchestrator.naming import DEFAULT_RESULTS_TOPIC


@click.command("publish-result")
@click.option("--workflow", required=True, metavar="NAME", help="the Workflow's name")
@workflow_namespace_option
@click.option(
    "--workflow-status",
    metavar="PHASE",
    help="the Workflow's outcome when it is not set yet ({{workflow.status}} in Argo)",
)
@pubsub_project_option
@click.option(
    "--results-topic",
    envvar="TENANTCTL_RESULTS_TOPIC",
    show_envvar=True,
    default=DEFAULT_RESULTS_TOPIC,
    show_default=True,
    help="where results go",
)
@click.option(
    "--claim-ttl",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="seconds before another publisher's unfinished claim is taken over",
)
@kube_options
def publish_result(
    *,
    workflow: str,
    workflow_namespace: str,
    workflow_status: str | None,
    project: str,
    results_topic: str,
    claim_ttl: float,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Publish the result event of a Workflow, once.

    Reads every bridge node's `result` output and publishes
    dev.tenant-lifecycle.operation.succeeded or .failed with the batch id as the event id.
    The `tenant-lifecycle.dev/result-published` annotation makes it idempotent and shared with
    the tracker of `tenantctl listen`: whichever comes first publishes, the other does nothing.

    \b
    Examples:
      tenantctl publish-result --workflow lc-7f3a --namespace argo --project prod
      # in the WorkflowTemplate's exit handler:
      tenantctl publish-result --workflow {{workflow.name}} --namespace {{workflow.namespace}}
    """
    import socket  # noqa: PLC0415

    from bridge.kube import Kube, KubeSettings  # noqa: PLC0415 - keep --help fast
    from orchestrator.argo.tracker import ResultPublisher  # noqa: PLC0415
    from orchestrator.pubsub import PubSubBus, PubSubSettings  # noqa: PLC0415

    configure_logging("warning")
    bus = PubSubBus(PubSubSettings(project=project))
    try:
        with Kube(settings=KubeSettings(kubeconfig=kubeconfig, context=context)) as kube:
            publisher = ResultPublisher(
                kube,
                bus,
                namespace=workflow_namespace,
                topic=results_topic,
                owner=f"exit-handler/{socket.gethostname()}",
                claim_ttl=claim_ttl,
            )
            outcome = publisher.publish(
                workflow, allow_unfinished=True, workflow_status=workflow_status or None
            )
    finally:
        bus.close()
    if outcome.status == "gone":
        raise LifecycleError(
            f"workflow {workflow_namespace}/{workflow} does not exist",
            hint="check --workflow and --namespace",
        )
    if outcome.status == "published" and outcome.event is not None:
        click.echo(f"published {outcome.event['type']} for {workflow} (id {outcome.event['id']})")
    elif outcome.status == "claimed":
        click.echo(f"{workflow}: another publisher is publishing the result right now")
    else:
        click.echo(f"{workflow}: result already published")


commands = [publish_result]
