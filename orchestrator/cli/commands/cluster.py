"""``tenantctl cluster up|build``: the real control plane of the test bed on this machine."""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from bridge.errors import LifecycleError, UsageError
from orchestrator.cli.commands.demo import jobs_directory, jobs_option, tenant_option


class ClusterError(LifecycleError):
    """The test bed could not be built or started."""


def _progress(line: str) -> None:
    click.echo(f"cluster: {line}", err=True)


@click.group("cluster")
def cluster_group() -> None:
    """A real Kubernetes control plane on this machine, for tests, demos and trying Jobs.

    etcd, kube-apiserver and kube-controller-manager are built from the Go modules that
    testbed/go pins (the first run builds them: minutes; later runs reuse the cache), and the
    project's node agent runs pods as local processes, each container in its own PID and mount
    namespace.

    \b
    Examples:
      tenantctl cluster up
      tenantctl cluster up --argo --kubeconfig ./cluster.kubeconfig
      tenantctl cluster build
    """


@cluster_group.command("build")
def build() -> None:
    """Build (or find in the cache) the test bed's binary and Argo's programs; print their paths.

    The first line is the control plane's binary, the second the directory holding Argo's
    workflow-controller, argoexec and argo (all from the pinned modules).
    """
    from testbed import (  # noqa: PLC0415 - only this command needs it
        BuildError,
        argo,
        ensure_binary,
    )

    try:
        path = ensure_binary(progress=_progress)
        argo_programs = argo.ensure_binaries(progress=_progress)
    except BuildError as exc:
        raise ClusterError(str(exc)) from exc
    click.echo(str(path))
    click.echo(str(argo_programs))


@cluster_group.command("up")
@click.option(
    "--kubeconfig",
    "kubeconfig_path",
    metavar="PATH",
    type=click.Path(dir_okay=False, writable=True),
    help="also copy the admin kubeconfig here (default: only in the cluster's temporary dir)",
)
@click.option(
    "--workdir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="parent directory of the cluster's files (default: the system's temporary directory)",
)
@click.option(
    "--node/--no-node",
    default=True,
    show_default=True,
    help="start the node agent (without it pods are never run: API and controllers only)",
)
@click.option(
    "--argo",
    "with_argo",
    is_flag=True,
    help="also install Argo Workflows (pinned; controller and argo-server run as pods)",
)
def up(*, kubeconfig_path: str | None, workdir: str | None, node: bool, with_argo: bool) -> None:
    """Start etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the node agent;
    serve until interrupted.

    The first line on stdout is the admin kubeconfig's path (client certificate, mode 0600).
    Ctrl-C or SIGTERM stops every process and removes the cluster's temporary files.

    \b
    Examples:
      tenantctl cluster up
      kubectl --kubeconfig "$(tenantctl cluster up | head -1)" get nodes   # in another shell
    """
    from testbed import (  # noqa: PLC0415
        BuildError,
        ControlPlane,
        ControlPlaneError,
        argo,
    )

    if with_argo and not node:
        raise UsageError("--argo needs the node agent", hint="drop --no-node")

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    plane = ControlPlane(
        workdir=Path(workdir) if workdir else None, node_agent=node, progress=_progress
    )
    try:
        try:
            if with_argo:
                programs = argo.ensure_binaries(progress=_progress)
                plane.image_map = argo.image_map(programs)
            plane.start()
            if with_argo:
                argo.install(plane, progress=_progress)
        except (BuildError, ControlPlaneError) as exc:
            raise ClusterError(str(exc)) from exc
        except KeyboardInterrupt:
            raise ClusterError("interrupted while starting; every process was stopped") from None
        path = plane.kubeconfig
        if kubeconfig_path:
            try:
                shutil.copyfile(path, kubeconfig_path)
            except OSError as exc:
                raise UsageError(
                    f"--kubeconfig {kubeconfig_path}: cannot write it: {exc.strerror or exc}",
                    hint="choose a writable path",
                ) from exc
            Path(kubeconfig_path).chmod(0o600)
            path = Path(kubeconfig_path)
        click.echo(str(path))
        sys.stdout.flush()
        _progress(
            f"serving {plane.url}; node {'on' if node else 'off'}; "
            f"try: kubectl --kubeconfig {path} get nodes; Ctrl-C to stop"
        )
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        plane.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _progress("stopped; its processes and files are gone")


@cluster_group.command("demo")
@jobs_option
@tenant_option
@click.option(
    "--serve/--exit",
    default=True,
    show_default=True,
    help="keep the cluster up after the tour until Ctrl-C (--exit: stop at once)",
)
def demo(*, jobs_dir: str, tenant_env_id: str, serve: bool) -> None:
    """The guided tour on the real control plane and the real Argo Workflows controller.

    Builds (first run: minutes, with progress) or reuses the pinned Kubernetes and Argo
    programs, starts the control plane with Argo installed, installs the project as
    docs/install.md says, applies the example teams' Jobs, runs lifecycle.upsert through
    `tenantctl run --engine argo --wait` and shows what ran, with the `argo get` / `argo logs`
    commands to look further. Exit status: the run's (0 when it succeeded).

    \b
    Examples:
      make demo-argo
      tenantctl cluster demo --exit
    """
    from devtools.demo_argo import ArgoTour, TourError  # noqa: PLC0415
    from sandbox.emulators import EmulatorError, PubSubEmulator  # noqa: PLC0415 - a dev tool
    from testbed import (  # noqa: PLC0415
        BuildError,
        ControlPlane,
        ControlPlaneError,
        argo,
    )

    jobs = jobs_directory(jobs_dir)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    plane = ControlPlane(progress=_progress)
    helpers = contextlib.ExitStack()
    code = 1
    try:
        try:
            plane.image_map = argo.image_map(argo.ensure_binaries(progress=_progress))
            plane.start()
            argo.install(plane, progress=_progress)
            # The exit handler publishes each run's result event: to the local emulator here.
            bus = helpers.enter_context(PubSubEmulator(project="tenant-lifecycle-demo"))
            tour = ArgoTour(
                kubeconfig=plane.kubeconfig,
                argo=argo.ensure_binaries() / "argo",
                repo=Path.cwd(),
                jobs_dir=jobs,
                tenant_env_id=tenant_env_id,
                bus_host=bus.host,
                bus_project=bus.project,
                serving=serve,
            )
            tour.install(click.echo)
            code = tour.run(click.echo)
        except (BuildError, ControlPlaneError, TourError, EmulatorError) as exc:
            raise ClusterError(str(exc)) from exc
        except KeyboardInterrupt:
            raise ClusterError("interrupted; every process was stopped") from None
        if serve:
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        plane.stop()
        helpers.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _progress("stopped; its processes and files are gone")
    raise SystemExit(code)


commands: list[click.Command] = [cluster_group]
