"""``python -m bridge``: the programs every lifecycle workflow runs (discover, run, sweep).

Connection for all: ``--kubeconfig``/``--context`` (env ``BRIDGE_KUBECONFIG``/``BRIDGE_CONTEXT``),
else ``$KUBECONFIG``/``~/.kube/config``, else the in-cluster service account. Every option can
be set from the environment as ``BRIDGE_<OPTION>`` (e.g. ``BRIDGE_STUCK_GRACE=30``).
User mistakes end with one line ``error: ...`` on stderr, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
import yaml

from bridge.contract import ContractSettings
from bridge.errors import (
    ContractError,
    LifecycleError,
    RefusedError,
    UnavailableError,
    UsageError,
)
from bridge.kube import SERVICE_ACCOUNT_DIR, Kube, KubeSettings
from bridge.result import RunResult
from bridge.runner import Runner, RunRequest, load_hooks
from bridge.settings import BridgeSettings

EXIT_USAGE = 2
EXIT_INFRASTRUCTURE = 75
# Negative seconds or counts are mistakes click reports in one line (a negative timeout would
# otherwise reach urllib3 and end as an internal error; a negative grace fails every pod).
_SECONDS = click.FloatRange(min=0)
_TIMEOUT = click.FloatRange(min=0, min_open=True)
_COUNT = click.IntRange(min=0)


def _fail(exc: LifecycleError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    if isinstance(exc, UsageError):
        sys.exit(EXIT_USAGE)
    if isinstance(exc, RefusedError):
        sys.exit(2)
    if isinstance(exc, UnavailableError):
        sys.exit(EXIT_INFRASTRUCTURE)
    sys.exit(1)


def connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--kubeconfig", envvar="BRIDGE_KUBECONFIG", help="kubeconfig file."),
        click.option("--context", envvar="BRIDGE_CONTEXT", help="kubeconfig context."),
        click.option(
            "--in-cluster",
            envvar="BRIDGE_IN_CLUSTER",
            is_flag=True,
            help="Use the pod's service account even if a kubeconfig exists (the default "
            "inside a pod without one).",
        ),
        click.option(
            "--service-account-dir",
            envvar="BRIDGE_SERVICE_ACCOUNT_DIR",
            default=SERVICE_ACCOUNT_DIR,
            show_default=True,
            help="Where the in-cluster service account's token, ca.crt and namespace are.",
        ),
        click.option(
            "--prefix",
            envvar="BRIDGE_PREFIX",
            default="tenant-lifecycle.dev",
            show_default=True,
            help="Prefix of the contract's labels and annotations.",
        ),
        click.option(
            "--legacy-key",
            envvar="BRIDGE_LEGACY_KEY",
            help="A single annotation listing operations, honoured too.",
        ),
        click.option(
            "--max-retries", envvar="BRIDGE_MAX_RETRIES", type=_COUNT, default=5, show_default=True
        ),
        click.option(
            "--backoff-base",
            envvar="BRIDGE_BACKOFF_BASE",
            type=_SECONDS,
            default=0.2,
            show_default=True,
            help="First retry waits up to this many seconds (full jitter, doubling).",
        ),
        click.option(
            "--backoff-max",
            envvar="BRIDGE_BACKOFF_MAX",
            type=_SECONDS,
            default=5.0,
            show_default=True,
        ),
        click.option(
            "--request-timeout",
            envvar="BRIDGE_REQUEST_TIMEOUT",
            type=_TIMEOUT,
            default=30.0,
            show_default=True,
        ),
        click.option("-v", "--verbose", is_flag=True, help="Log API retries and reconnects."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _configure_logging(params: Mapping[str, Any]) -> None:
    logging.basicConfig(
        level=logging.INFO if params.get("verbose") else logging.WARNING,
        format="bridge: %(message)s",
        stream=sys.stderr,
    )


def _settings(params: Mapping[str, Any], **bridge: Any) -> BridgeSettings:
    kube = KubeSettings(
        kubeconfig=params.get("kubeconfig"),
        context=params.get("context"),
        in_cluster=bool(params.get("in_cluster")),
        service_account_dir=params.get("service_account_dir") or SERVICE_ACCOUNT_DIR,
        request_timeout=params["request_timeout"],
        max_retries=params["max_retries"],
        backoff_base=params["backoff_base"],
        backoff_max=params["backoff_max"],
    )
    contract = ContractSettings(prefix=params["prefix"], legacy_key=params.get("legacy_key"))
    return BridgeSettings(contract=contract, kube=kube, **bridge)


INPUTS_BASE64_HELP = (
    "The --environment/--changeset files hold base64 of the document (the WorkflowTemplate "
    "encodes tenant data so Argo never parses it as its own template)."
)


def _read_document(value: str | None, what: str, *, encoded: bool = False) -> dict[str, Any]:
    """A YAML/JSON mapping from a file, ``-`` (stdin), or nothing (empty); ``encoded``: the
    file holds the document in base64 (how the WorkflowTemplate hands over tenant data)."""
    if value is None:
        return {}
    try:
        text = sys.stdin.read() if value == "-" else Path(value).read_text()
    except OSError as exc:
        raise UsageError(f"--{what}: cannot read {value}: {exc.strerror}") from exc
    if encoded:
        try:
            text = base64.b64decode(text.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise UsageError(
                f"--{what}: {value} is not base64 of UTF-8 text (--inputs-base64): {exc}",
                hint="drop --inputs-base64 for a plain YAML/JSON file",
            ) from exc
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise UsageError(f"--{what}: {value} is not valid YAML or JSON: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(
            f"--{what}: {value} must hold a mapping, not {type(data).__name__}",
            hint="e.g. {applications: [catalog]}",
        )
    return data


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The bridge programs of tenant-lifecycle: discover, run, sweep.

    \b
    Example:
      python -m bridge discover --operation lifecycle.upsert --output plan.json
    """


@main.command()
@click.option("--operation", required=True, help="Operation name, e.g. lifecycle.upsert.")
@click.option("--tenant-env-id", help="Tenant environment id (recorded in the plan).")
@click.option("--environment", help="Tenant environment YAML/JSON file (applications filter).")
@click.option("--inputs-base64", is_flag=True, help=INPUTS_BASE64_HELP)
@click.option("--output", type=click.Path(dir_okay=False), help="Write the plan JSON here.")
@click.option("--skip-invalid", is_flag=True, help="Proceed without invalid participants (listed).")
@connection_options
def discover(**params: Any) -> None:
    """List the Jobs taking part in an operation and plan them in waves.

    Opted-in namespaces and lifecycle Jobs are found by server-side label selectors. The plan
    JSON goes to --output (or stdout), a summary to stderr. A Job annotated for the operation
    but invalid or not suspended fails discovery (exit 1) unless --skip-invalid.

    \b
    Example:
      python -m bridge discover --operation lifecycle.upsert \\
          --tenant-env-id t-799a --environment env.yaml --output /tmp/plan.json
    """
    from bridge.discovery import discover as run_discovery  # noqa: PLC0415 - not on run's path
    from bridge.planner import summarize  # noqa: PLC0415

    try:
        _configure_logging(params)
        settings = _settings(params)
        environment = (
            _read_document(params["environment"], "environment", encoded=params["inputs_base64"])
            if params.get("environment")
            else None
        )
        with Kube(settings=settings.kube) as kube:
            found = run_discovery(
                kube,
                operation=params["operation"],
                settings=settings.contract,
                environment=environment,
                tenant_env_id=params.get("tenant_env_id"),
                skip_invalid=params["skip_invalid"],
            )
        text = found.plan.to_compact_json()
        if params.get("output"):
            try:
                Path(params["output"]).write_text(text)
            except OSError as exc:
                raise UsageError(f"cannot write --output {params['output']}: {exc}") from exc
        else:
            click.echo(text)
        click.echo(
            f"discovery: {len(found.namespaces)} opted-in namespace(s), {found.jobs_seen} "
            f"labelled Job(s); {summarize(found.plan)}",
            err=True,
        )
        for wave in found.plan.waves:
            jobs = ", ".join(f"{j.namespace}/{j.name}" for j in wave.jobs)
            click.echo(f"  wave {wave.wave}: {jobs}", err=True)
        for rejected in found.plan.rejected:
            click.echo(f"  rejected {rejected.namespace}/{rejected.name}:", err=True)
            for error in rejected.errors:
                click.echo(f"    - {error}", err=True)
        for skipped in found.plan.skipped:
            click.echo(f"  skipped {skipped.namespace}/{skipped.name}: {skipped.reason}", err=True)
    except ContractError as exc:
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(1)
    except LifecycleError as exc:
        _fail(exc)


@main.command()
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
    type=_SECONDS,
    default=120.0,
    show_default=True,
    help="Seconds a pod may be stuck (image pull, config error, unschedulable).",
)
@click.option(
    "--unschedulable-grace",
    envvar="BRIDGE_UNSCHEDULABLE_GRACE",
    type=_SECONDS,
    default=600.0,
    show_default=True,
    help="Seconds a pod may stay unschedulable (an autoscaler may be adding a node).",
)
@click.option(
    "--delete-grace",
    envvar="BRIDGE_DELETE_GRACE",
    type=_COUNT,
    help="Grace seconds for pods the bridge deletes (default: the pod's own).",
)
@click.option(
    "--log-reconnect-delay",
    envvar="BRIDGE_LOG_RECONNECT_DELAY",
    type=_SECONDS,
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
        _configure_logging(params)
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
        _fail(exc)
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


@main.command()
@click.option(
    "--older-than",
    default="1h",
    show_default=True,
    help="Age after which finished bridge pods without a workflow go (e.g. 30m, 2h, 1d).",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@connection_options
def sweep(**params: Any) -> None:
    """Delete bridge pods and per-run Secrets whose workflow is finished or gone.

    \b
    Example:
      python -m bridge sweep --older-than 2h --dry-run
    """
    from bridge.sweep import Sweeper, parse_duration  # noqa: PLC0415 - not on run's path

    try:
        _configure_logging(params)
        settings = _settings(params)
        older_than = parse_duration(params["older_than"])
        with Kube(settings=settings.kube) as kube:
            report = Sweeper(
                kube,
                contract=settings.contract,
                older_than=older_than,
                dry_run=params["dry_run"],
            ).run()
    except LifecycleError as exc:
        _fail(exc)
    verb = "would delete" if params["dry_run"] else "deleted"
    if params["as_json"]:
        click.echo(
            json.dumps(
                {
                    "dryRun": params["dry_run"],
                    "deleted": [vars(a) for a in report.deleted],
                    "kept": report.kept,
                    "errors": report.errors,
                }
            )
        )
    else:
        for action in report.deleted:
            click.echo(f"{verb} {action}")
    click.echo(
        f"sweep: {verb} {len(report.deleted)}, kept {report.kept}, errors {len(report.errors)}",
        err=True,
    )
    for error in report.errors:
        click.echo(f"  error: {error}", err=True)
    sys.exit(1 if report.errors else 0)


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
    settings = _settings(
        params,
        stuck_grace_seconds=params["stuck_grace"],
        unschedulable_grace_seconds=params["unschedulable_grace"],
        delete_grace_seconds=params.get("delete_grace"),
        log_reconnect_delay=params["log_reconnect_delay"],
    )
    if environment is None:
        environment = _read_document(
            params.get("environment"), "environment", encoded=bool(params.get("inputs_base64"))
        )
    if changeset is None:
        changeset = _read_document(
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
        or _own_namespace(settings.kube.service_account_dir),
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


def _own_namespace(service_account_dir: str = SERVICE_ACCOUNT_DIR) -> str | None:
    """The namespace this bridge runs in (where its Workflow lives), when inside a pod."""
    try:
        return (Path(service_account_dir) / "namespace").read_text().strip() or None
    except OSError:
        return os.environ.get("POD_NAMESPACE") or None


if __name__ == "__main__":
    main(prog_name="python -m bridge")
