"""``python -m bridge run``: run one Job's pod for one batch operation, and how its
parameters become a :class:`~bridge.runner.RunRequest` (shared with the local engine's thread
launcher, so a bridge in a thread runs exactly as a ``python -m bridge run`` subprocess)."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click

from bridge.cli.options import (
    COUNT,
    INPUTS_BASE64_HELP,
    SECONDS,
    bridge_settings,
    configure_logging,
    connection_options,
    fail,
    read_document,
)
from bridge.errors import LifecycleError, UsageError
from bridge.kube import SERVICE_ACCOUNT_DIR, Kube
from bridge.result import RunResult
from bridge.runner import Runner, RunRequest, load_hooks
from bridge.settings import BridgeSettings


@click.command()
@click.option("--namespace", required=True, help="The Job's namespace.")
@click.option("--job", required=True, help="The Job's name.")
@click.option("--operation", required=True)
@click.option("--tenant-env-id", required=True)
@click.option("--batch-operation-id", required=True)
@click.option("--environment", help="Tenant environment YAML/JSON file, or - for stdin.")
@click.option("--changeset", help="Changeset YAML/JSON file, or - for stdin.")
@click.option("--inputs-base64", is_flag=True, help=INPUTS_BASE64_HELP)
@click.option("--workflow-name", help="The Argo Workflow running this bridge (for sweep).")
@click.option("--workflow-uid")
@click.option(
    "--workflow-namespace",
    envvar="BRIDGE_WORKFLOW_NAMESPACE",
    help="The Workflow's namespace (default: this pod's namespace).",
)
@click.option("--source-batch-operation-id", help="For migrate-in/restore: where data comes from.")
@click.option("--result", "result_path", type=click.Path(dir_okay=False), help="Result JSON.")
@click.option(
    "--storage-config",
    envvar="BRIDGE_STORAGE_CONFIG",
    type=click.Path(dir_okay=False),
    help="Object-storage settings YAML for storage operations (docs/storage.md).",
)
@click.option(
    "--stuck-grace",
    envvar="BRIDGE_STUCK_GRACE",
    type=SECONDS,
    default=120.0,
    show_default=True,
    help="Seconds a pod may be stuck (image pull, config error, unschedulable).",
)
@click.option(
    "--unschedulable-grace",
    envvar="BRIDGE_UNSCHEDULABLE_GRACE",
    type=SECONDS,
    default=600.0,
    show_default=True,
    help="Seconds a pod may stay unschedulable (an autoscaler may be adding a node).",
)
@click.option(
    "--delete-grace",
    envvar="BRIDGE_DELETE_GRACE",
    type=COUNT,
    help="Grace seconds for pods the bridge deletes (default: the pod's own).",
)
@click.option(
    "--log-reconnect-delay",
    envvar="BRIDGE_LOG_RECONNECT_DELAY",
    type=SECONDS,
    default=0.5,
    show_default=True,
)
@connection_options
def run(**params: Any) -> None:
    """Run a suspended Job's pod, stream its logs, exit with its exit code.

    \b
    Exit codes: 0 succeeded; 2 refused (nothing created); 75 infrastructure
    error (API unreachable); 143 SIGTERM/SIGINT; else the job's exit code
    (1 when it collides with 2, 75 or 143; the true code is in --result).

    \b
    Example:
      python -m bridge run --namespace team-a --job schema \\
          --operation lifecycle.upsert --tenant-env-id t-799a \\
          --batch-operation-id b-123 --environment env.yaml --result /tmp/result.json
    """
    try:
        configure_logging(params)
        setup = prepare_run(params)
        settings, request = setup.settings, setup.request
        hooks = load_hooks(request.operation, storage_config=setup.storage_config)
        with Kube(settings=settings.kube) as kube:
            runner = Runner(kube, request, settings=settings, hooks=hooks)

            def on_signal(signum: int, frame: FrameType | None) -> None:
                runner.cancel()  # no output here: the main thread may be mid-write

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            # `kill -USR1 <pid>` dumps every thread's stack to stderr: for a bridge that hangs.
            faulthandler.register(signal.SIGUSR1, all_threads=True)
            result = run_interruptibly(runner)
    except LifecycleError as exc:
        fail(exc)
    if params.get("result_path"):
        try:
            result.write(params["result_path"])
        except OSError as exc:  # the job's outcome stands; Argo reports the missing output
            click.echo(f"error: cannot write --result {params['result_path']}: {exc}", err=True)
    summary = f"bridge: {result.status.value}: {result.reason}"
    if result.message:
        summary += f": {result.message}"
    click.echo(summary, err=True)
    sys.exit(result.process_exit_code)


@dataclass(frozen=True)
class RunSetup:
    """What ``python -m bridge run`` runs with, from its parameters."""

    settings: BridgeSettings
    request: RunRequest
    storage_config: str | None


def prepare_run(
    params: Mapping[str, Any],
    *,
    environment: Mapping[str, Any] | None = None,
    changeset: Mapping[str, Any] | None = None,
) -> RunSetup:
    """Settings and request from ``run``'s parameters (:func:`run_params`); ``environment`` and
    ``changeset`` given as data replace ``--environment``/``--changeset`` files."""
    if params.get("environment") == "-" and params.get("changeset") == "-":
        # stdin can be read once: the second document would silently be empty.
        raise UsageError(
            "--environment - and --changeset - cannot both read stdin",
            hint="pass one of them as a file",
        )
    settings = bridge_settings(
        params,
        stuck_grace_seconds=params["stuck_grace"],
        unschedulable_grace_seconds=params["unschedulable_grace"],
        delete_grace_seconds=params.get("delete_grace"),
        log_reconnect_delay=params["log_reconnect_delay"],
    )
    if environment is None:
        environment = read_document(
            params.get("environment"), "environment", encoded=bool(params.get("inputs_base64"))
        )
    if changeset is None:
        changeset = read_document(
            params.get("changeset"), "changeset", encoded=bool(params.get("inputs_base64"))
        )
    request = RunRequest(
        namespace=params["namespace"],
        job=params["job"],
        operation=params["operation"],
        tenant_env_id=params["tenant_env_id"],
        batch_operation_id=params["batch_operation_id"],
        environment=dict(environment),
        changeset=dict(changeset),
        # Argo passes unset parameters as "": treat them as not given.
        workflow_name=params.get("workflow_name") or None,
        workflow_uid=params.get("workflow_uid") or None,
        workflow_namespace=params.get("workflow_namespace")
        or own_namespace(settings.kube.service_account_dir),
        source_batch_operation_id=params.get("source_batch_operation_id") or None,
    )
    return RunSetup(settings, request, params.get("storage_config") or None)


def run_params(args: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    """The parameters ``python -m bridge run ARGS`` gets in a process whose environment is
    ``env``: ``run``'s own options -- types, ranges, defaults -- with each option not in
    ``args`` taken from its ``BRIDGE_*`` variable in ``env`` when set, as click would.

    For the local engine's thread launcher, so a bridge in a thread runs with exactly the
    settings of a ``python -m bridge run`` subprocess. A mistake raises :class:`UsageError`.
    """
    given = {arg.split("=", 1)[0] for arg in args if arg.startswith("-")}
    from_env: list[str] = []
    for param in run.params:
        if not isinstance(param, click.Option) or not isinstance(param.envvar, str):
            continue
        value = env.get(param.envvar)
        if not value or given.intersection(param.opts):
            continue
        option = max(param.opts, key=len)
        if not param.is_flag:
            from_env.append(f"{option}={value}")
            continue
        try:
            enabled = click.BOOL.convert(value, param, None)
        except click.BadParameter as exc:
            raise UsageError(f"{param.envvar}: {exc.format_message()}") from exc
        if enabled:
            from_env.append(option)
    try:
        context = run.make_context("python -m bridge run", [*from_env, *args])
    except click.ClickException as exc:
        raise UsageError(exc.format_message()) from exc
    return dict(context.params)


def run_interruptibly(runner: Runner) -> RunResult:
    """Run in a worker thread while the main thread waits in ``join``.

    Why: Python runs signal handlers in the main thread only, and only once the main thread is
    back in the interpreter -- but a read on a TLS socket with a timeout waits in ``poll()``
    without running them, so a bridge blocked reading a watch would notice SIGTERM only when
    that read ends (up to a whole watch window). ``join`` with a timeout is interrupted by
    signals at once; the handler then interrupts the worker's streams from this thread.
    """
    box: list[RunResult] = []
    worker = threading.Thread(target=lambda: box.append(runner.run()), name="bridge-run")
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
    return box[0]


def own_namespace(service_account_dir: str = SERVICE_ACCOUNT_DIR) -> str | None:
    """The namespace this bridge runs in (where its Workflow lives), when inside a pod."""
    try:
        return (Path(service_account_dir) / "namespace").read_text().strip() or None
    except OSError:
        return os.environ.get("POD_NAMESPACE") or None
