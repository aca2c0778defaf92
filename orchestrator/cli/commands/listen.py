"""``tenantctl listen``: consume lifecycle requests from Pub/Sub, submit them, publish results."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import click

from orchestrator.naming import (
    DEFAULT_DEAD_LETTER_TOPIC,
    DEFAULT_REQUEST_TOPIC,
    DEFAULT_RESULTS_TOPIC,
    DEFAULT_SUBSCRIPTION,
    DEFAULT_WORKFLOW_NAMESPACE,
    ENGINES,
)

F = TypeVar("F", bound=Callable[..., Any])


def _env(name: str) -> str:
    return f"TENANTCTL_{name}"


def pubsub_project_option(function: F) -> F:
    return click.option(
        "--project",
        envvar=_env("PROJECT"),
        show_envvar=True,
        metavar="PROJECT",
        required=True,
        help="Google Cloud project of the topics (the emulator accepts any name)",
    )(function)


def kube_options(function: F) -> F:
    function = click.option(
        "--context",
        envvar=_env("CONTEXT"),
        show_envvar=True,
        metavar="NAME",
        help="kubeconfig context",
    )(function)
    return click.option(
        "--kubeconfig",
        envvar=_env("KUBECONFIG"),
        show_envvar=True,
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)",
    )(function)


def workflow_namespace_option(function: F) -> F:
    return click.option(
        "--workflow-namespace",
        "--namespace",
        "workflow_namespace",
        envvar=_env("WORKFLOW_NAMESPACE"),
        show_envvar=True,
        default=DEFAULT_WORKFLOW_NAMESPACE,
        show_default=True,
        metavar="NS",
        help="namespace of the Workflows",
    )(function)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.command("listen")
@pubsub_project_option
@click.option(
    "--subscription",
    envvar=_env("SUBSCRIPTION"),
    show_envvar=True,
    default=DEFAULT_SUBSCRIPTION,
    show_default=True,
    help="request subscription",
)
@click.option(
    "--request-topic",
    envvar=_env("REQUEST_TOPIC"),
    show_envvar=True,
    default=DEFAULT_REQUEST_TOPIC,
    show_default=True,
    help="request topic (only used by --create-topology)",
)
@click.option(
    "--results-topic",
    envvar=_env("RESULTS_TOPIC"),
    show_envvar=True,
    default=DEFAULT_RESULTS_TOPIC,
    show_default=True,
    help="where results go",
)
@click.option(
    "--dead-letter-topic",
    envvar=_env("DEAD_LETTER_TOPIC"),
    show_envvar=True,
    default=DEFAULT_DEAD_LETTER_TOPIC,
    show_default=True,
    help="where invalid requests go, with reason and reasonCode attributes",
)
@workflow_namespace_option
@click.option(
    "--template",
    envvar=_env("TEMPLATE"),
    show_envvar=True,
    default="tenant-lifecycle",
    show_default=True,
    help="WorkflowTemplate name",
)
@click.option(
    "--engine",
    envvar=_env("ENGINE"),
    show_envvar=True,
    type=click.Choice(ENGINES),
    default="argo",
    show_default=True,
    help="argo: submit Workflows; local: run the lifecycle in this process",
)
@click.option(
    "--parallelism",
    envvar=_env("PARALLELISM"),
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="bridges at once within a wave",
)
@click.option(
    "--max-messages",
    envvar=_env("MAX_MESSAGES"),
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="flow control: requests held at once",
)
@click.option(
    "--max-bytes",
    envvar=_env("MAX_BYTES"),
    type=click.IntRange(min=1),
    default=10 * 1024 * 1024,
    show_default=True,
    help="flow control: bytes of requests held at once",
)
@click.option(
    "--max-event-bytes",
    envvar=_env("MAX_EVENT_BYTES"),
    type=click.IntRange(min=1),
    default=256 * 1024,
    show_default=True,
    help="larger requests are dead-lettered (TooLarge)",
)
@click.option(
    "--handler-threads",
    envvar=_env("HANDLER_THREADS"),
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="requests handled concurrently",
)
@click.option(
    "--lease-seconds",
    envvar=_env("LEASE_SECONDS"),
    type=click.IntRange(min=10, max=600),
    default=10,
    show_default=True,
    help="Pub/Sub lease per extension; also how soon a crashed consumer's messages come back",
)
@click.option(
    "--pull",
    envvar=_env("PULL"),
    type=click.Choice(["auto", "streaming", "unary"]),
    default="auto",
    show_default=True,
    help="how to pull: StreamingPull, or unary Pull calls; auto: unary on the emulator",
)
@click.option(
    "--max-concurrent",
    envvar=_env("MAX_CONCURRENT"),
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="local engine: operations at once",
)
@click.option(
    "--drain-seconds",
    envvar=_env("DRAIN_SECONDS"),
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="local engine, on SIGTERM: let running operations finish this long, then cancel",
)
@click.option(
    "--metrics-host",
    envvar=_env("METRICS_HOST"),
    default="127.0.0.1",
    show_default=True,
    help="address of /metrics and /healthz (0.0.0.0 in a pod)",
)
@click.option(
    "--metrics-port",
    envvar=_env("METRICS_PORT"),
    type=click.IntRange(min=-1),
    default=9464,
    show_default=True,
    help="0: any free port; -1: no HTTP server",
)
@click.option(
    "--track/--no-track",
    envvar=_env("TRACK"),
    default=True,
    show_default=True,
    help="watch the Workflows and publish their results",
)
@click.option(
    "--create-topology",
    envvar=_env("CREATE_TOPOLOGY"),
    is_flag=True,
    help="create missing topics and the subscription (emulator, development)",
)
@click.option(
    "--claim-ttl",
    envvar=_env("CLAIM_TTL"),
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="seconds before another publisher's unfinished result claim is taken over",
)
@click.option(
    "--watch-timeout",
    envvar=_env("WATCH_TIMEOUT"),
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="seconds per Workflow watch request",
)
@click.option(
    "--retry-delay",
    envvar=_env("RETRY_DELAY"),
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="pause before a transiently failed request is returned to the bus",
)
@click.option(
    "--kube-retries",
    envvar=_env("KUBE_RETRIES"),
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="retries of a failing Kubernetes call",
)
@kube_options
@click.option(
    "--regions",
    envvar=_env("REGIONS"),
    show_envvar=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, exists=True),
    help="region map: route each request to its region's cluster (docs/regions.md)",
)
@click.option(
    "--max-migrations",
    envvar=_env("MAX_MIGRATIONS"),
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="with --regions: migrations running at once (each holds a handler thread)",
)
@click.option(
    "--store",
    "history_store",
    envvar=_env("STORE"),
    show_envvar=True,
    metavar="URL",
    help="operation history: sqlite:///path.db or postgresql://user@host/db (default: none)",
)
@click.option(
    "--log-level",
    envvar=_env("LOG_LEVEL"),
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def listen(**options: Any) -> None:
    """Consume lifecycle requests and run each exactly once; publish each result.

    Every request on the subscription is validated; a valid one becomes a Workflow named after
    its batch operation id (a redelivery is a counted duplicate), an invalid one goes to the
    dead-letter topic with its reason. Messages are acked only after that. The tracker watches
    the Workflows and publishes one result event per finished Workflow. SIGTERM: stop pulling,
    finish the requests in flight, flush results, exit 0 (--engine local: running operations
    get --drain-seconds to finish, then are cancelled with a result).

    \b
    Examples:
      export PUBSUB_EMULATOR_HOST=127.0.0.1:8085   # for the emulator
      tenantctl listen --project dev --create-topology --kubeconfig sandbox.kubeconfig
      TENANTCTL_PROJECT=prod tenantctl listen --workflow-namespace argo --metrics-port 9464
      tenantctl listen --project prod --regions regions.yaml --store sqlite:///history.db
    """
    from bridge.kube import KubeSettings  # noqa: PLC0415 - keep --help fast
    from orchestrator.listen import Service  # noqa: PLC0415 - keep --help fast
    from orchestrator.settings import ListenSettings  # noqa: PLC0415 - keep --help fast

    configure_logging(options.pop("log_level"))
    retry_delay = options.pop("retry_delay")
    kube = KubeSettings(
        kubeconfig=options.pop("kubeconfig"),
        context=options.pop("context"),
        max_retries=options.pop("kube_retries"),
    )
    settings = ListenSettings(kube=kube, **options)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        logging.getLogger("tenantctl").info("signal %d: shutting down", signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    service = Service(settings, retry_delay=retry_delay)
    try:
        service.start()
        if service.server is not None:
            click.echo(f"metrics: {service.server.url}/metrics", err=True)
        click.echo(f"listening on {settings.subscription}", err=True)
        service.wait(stop)
    finally:
        service.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # One machine-readable line: what this process did (tests and operators read it).
        click.echo(f"stopped: {json.dumps(service.metrics.summary(), sort_keys=True)}", err=True)


commands = [listen]
