"""``tenantctl publish``: send a lifecycle request event to the request topic."""

from __future__ import annotations

import click

from bridge.errors import UsageError
from orchestrator.cli.commands.listen import pubsub_project_option
from orchestrator.cli.inputs import load_changeset, load_environment
from orchestrator.naming import DEFAULT_REQUEST_TOPIC

_FLAGS = {
    "id": "--batch-operation-id",
    "subject": "--tenant-env-id",
    "source": "--source",
    "data.operation": "OPERATION",
    "data.region": "--region",
    "data.tenantEnvironment": "--environment",
    "data.changeset": "--changeset",
    "data.sourceBatchOperationId": "--source-batch-operation-id",
    "data.parentBatchOperationId": "--parent-batch-operation-id",
}


@click.command("publish")
@click.argument("operation")
@click.option("--tenant-env-id", required=True, metavar="ID", help="tenant environment id")
@click.option("--environment", metavar="FILE", help="tenant environment (YAML/JSON mapping)")
@click.option("--changeset", metavar="FILE", help="changeset (YAML/JSON mapping)")
@click.option("--region", metavar="REGION", help="region of the tenant, e.g. eu-west-1")
@click.option("--batch-operation-id", metavar="ID", help="idempotency key (default: a new UUID)")
@click.option("--source-batch-operation-id", metavar="ID", help="restore/migrate-in: the export")
@click.option("--parent-batch-operation-id", metavar="ID", help="the operation this is part of")
@click.option("--source", default="tenantctl", show_default=True, help="CloudEvents source")
@click.option(
    "--mode",
    type=click.Choice(["structured", "binary"]),
    default="structured",
    show_default=True,
    help="CloudEvents content mode: the whole event as the JSON body (structured), or only "
    "data in the body with ce-* message attributes (binary)",
)
@pubsub_project_option
@click.option(
    "--topic",
    envvar="TENANTCTL_REQUEST_TOPIC",
    show_envvar=True,
    default=DEFAULT_REQUEST_TOPIC,
    show_default=True,
    help="request topic",
)
def publish(
    *,
    operation: str,
    tenant_env_id: str,
    environment: str | None,
    changeset: str | None,
    region: str | None,
    batch_operation_id: str | None,
    source_batch_operation_id: str | None,
    parent_batch_operation_id: str | None,
    source: str,
    mode: str,
    project: str,
    topic: str,
) -> None:
    """Request a lifecycle operation: publish the request event; print its batch id.

    The event is validated exactly as `tenantctl listen` validates it before it is sent.

    \b
    Examples:
      tenantctl publish lifecycle.upsert --tenant-env-id t-42 --environment env.yaml
      tenantctl publish lifecycle.backup --tenant-env-id t-42 --region eu-west-1 \\
          --batch-operation-id nightly-2026-11-22-t-42
      tenantctl publish lifecycle.suspend --tenant-env-id t-42 --mode binary
    """
    from orchestrator.events import (  # noqa: PLC0415 - keep --help fast
        InvalidEvent,
        encode_event,
        event_message,
        parse_request,
        request_event,
    )
    from orchestrator.pubsub import PubSubBus, PubSubSettings  # noqa: PLC0415

    event = request_event(
        operation,
        tenant_env_id=tenant_env_id,
        batch_operation_id=batch_operation_id,
        source=source,
        region=region,
        environment=load_environment(environment) if environment else {},
        changeset=load_changeset(changeset) if changeset else {},
        source_batch_operation_id=source_batch_operation_id,
        parent_batch_operation_id=parent_batch_operation_id,
    )
    data, attributes = event_message(event, mode)
    try:
        # The event itself first (its reasons name the event's fields, which map to flags),
        # then the message as it will go out, in its mode.
        parse_request(encode_event(event))
        parse_request(data, attributes)
    except InvalidEvent as exc:
        flag = next(
            (f for field, f in _FLAGS.items() if exc.field == field or exc.field.startswith(field)),
            exc.field or "the request",
        )
        raise UsageError(f"{flag}: {exc.message}", hint=exc.hint) from exc
    bus = PubSubBus(PubSubSettings(project=project))
    try:
        bus.publish(topic, data, attributes)
    finally:
        bus.close()
    click.echo(event["id"])


commands = [publish]
