"""What the bridge's commands share: connection options, settings, exit codes, input files.

Every option can be set from the environment as ``BRIDGE_<OPTION>``; user mistakes end with one
line ``error: ...`` on stderr and an exit code that tells Argo whether to retry (75) or not.
"""

from __future__ import annotations

import base64
import binascii
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from bridge.contract import ContractSettings
from bridge.errors import LifecycleError, RefusedError, UnavailableError, UsageError
from bridge.kube import SERVICE_ACCOUNT_DIR, KubeSettings
from bridge.settings import BridgeSettings

EXIT_USAGE = 2
EXIT_INFRASTRUCTURE = 75
# Negative seconds or counts are mistakes click reports in one line (a negative timeout would
# otherwise reach urllib3 and end as an internal error; a negative grace fails every pod).
SECONDS = click.FloatRange(min=0)
TIMEOUT = click.FloatRange(min=0, min_open=True)
COUNT = click.IntRange(min=0)


def fail(exc: LifecycleError) -> NoReturn:
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
            "--max-retries", envvar="BRIDGE_MAX_RETRIES", type=COUNT, default=5, show_default=True
        ),
        click.option(
            "--backoff-base",
            envvar="BRIDGE_BACKOFF_BASE",
            type=SECONDS,
            default=0.2,
            show_default=True,
            help="First retry waits up to this many seconds (full jitter, doubling).",
        ),
        click.option(
            "--backoff-max",
            envvar="BRIDGE_BACKOFF_MAX",
            type=SECONDS,
            default=5.0,
            show_default=True,
        ),
        click.option(
            "--request-timeout",
            envvar="BRIDGE_REQUEST_TIMEOUT",
            type=TIMEOUT,
            default=30.0,
            show_default=True,
        ),
        click.option("-v", "--verbose", is_flag=True, help="Log API retries and reconnects."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def configure_logging(params: Mapping[str, Any]) -> None:
    logging.basicConfig(
        level=logging.INFO if params.get("verbose") else logging.WARNING,
        format="bridge: %(message)s",
        stream=sys.stderr,
    )


def bridge_settings(params: Mapping[str, Any], **bridge: Any) -> BridgeSettings:
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


def read_document(value: str | None, what: str, *, encoded: bool = False) -> dict[str, Any]:
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
