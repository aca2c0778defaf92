"""``tenantctl sandbox up``: a local Kubernetes API server (the sandbox) for kubectl and demos."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from bridge.errors import UsageError


@click.group("sandbox")
def sandbox_group() -> None:
    """A local stand-in for the Kubernetes API server; pods run as local processes.

    \b
    Examples:
      tenantctl sandbox up
      tenantctl sandbox up --port 8001 --kubeconfig /tmp/sandbox.yaml --rbac
    """


@sandbox_group.command("up")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="port on 127.0.0.1 (0: a free one)",
)
@click.option(
    "--kubeconfig",
    "kubeconfig_path",
    metavar="PATH",
    type=click.Path(dir_okay=False, writable=True),
    help="where to write the kubeconfig (default: in the sandbox's workdir)",
)
@click.option(
    "--rbac/--no-rbac",
    default=False,
    show_default=True,
    help="authorize requests with Roles and bindings (the kubeconfig holds the admin token)",
)
@click.option(
    "--workdir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="directory for pod files (default: a temporary one, removed on exit)",
)
def up(*, port: int, kubeconfig_path: str | None, rbac: bool, workdir: str | None) -> None:
    """Start the sandbox, print its kubeconfig path, and serve until interrupted.

    The first line on stdout is the kubeconfig path (admin credentials, mode 0600); the URL
    follows on stderr. Ctrl-C or SIGTERM stops it and kills every pod process it started.

    \b
    Examples:
      tenantctl sandbox up
      tenantctl sandbox up --port 8001 --kubeconfig ./sandbox.kubeconfig
      kubectl --kubeconfig ./sandbox.kubeconfig get ns
    """
    from sandbox import Sandbox  # noqa: PLC0415 - heavy: only when serving

    box = Sandbox(rbac=rbac, workdir=Path(workdir) if workdir else None, port=port)
    try:
        box.start()
    except OSError as exc:
        raise UsageError(
            f"--port {port}: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
            hint="choose another port, or --port 0 for a free one",
        ) from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if kubeconfig_path:
            path = box.write_kubeconfig(Path(kubeconfig_path))
        else:
            path = box.kubeconfig_path()
        click.echo(str(path))
        sys.stdout.flush()
        click.echo(
            f"sandbox: serving {box.tls_url or box.url} (also {box.url}); "
            f"rbac {'on' if rbac else 'off'}; Ctrl-C to stop",
            err=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        box.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("sandbox: stopped", err=True)


commands: list[click.Command] = [sandbox_group]
