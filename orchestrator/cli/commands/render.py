"""``tenantctl render``: regenerate the committed Argo and install manifests, or check them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from bridge.errors import LifecycleError

COMMITTED_ARGO_DIR = Path("workflows/rendered")
COMMITTED_DEPLOY_DIR = Path("deploy")


@click.command("render")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=COMMITTED_ARGO_DIR,
    show_default=True,
    help="Directory for the Argo objects (WorkflowTemplate, Argo Events). Anywhere else than "
    "the default, everything is written under it: the install tree too, in DIR/deploy.",
)
@click.option(
    "--deploy-out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for the kustomize install tree (default: deploy with the default --out, "
    "otherwise OUT/deploy).",
)
@click.option(
    "--image",
    envvar="TENANT_LIFECYCLE_IMAGE",
    default=None,
    help="Container image of bridge, discovery and exit handler "
    "(env TENANT_LIFECYCLE_IMAGE; default: the release image).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 listing every file that differs from what rendering gives.",
)
def render(out: Path, deploy_out: Path | None, image: str | None, check: bool) -> None:
    """Render the WorkflowTemplate, Argo Events objects and install manifests to YAML.

    Every file is headed "generated — do not edit". Run it from the repository root after
    changing anything under workflows/; CI runs it with --check.

    \b
    Examples:
      tenantctl render
      tenantctl render --check
      tenantctl render --out /tmp/rendered   # writes only under /tmp/rendered
      tenantctl render --out /tmp/argo --deploy-out /tmp/deploy --image registry.example/tl:1.2
    """
    # hera (pydantic models) is heavy: imported only when rendering, not for `tenantctl --help`.
    from workflows.render import drifted, render_tree, write_tree  # noqa: PLC0415
    from workflows.settings import WorkflowSettings  # noqa: PLC0415

    if deploy_out is None:
        # The committed install tree points at the committed Argo directory; rendering the
        # Argo objects elsewhere must not rewrite it to point there (only under --out).
        committed = out.resolve() == COMMITTED_ARGO_DIR.resolve()
        deploy_out = COMMITTED_DEPLOY_DIR if committed else out / "deploy"
    settings = WorkflowSettings()
    if image:
        settings = replace(settings, image=image)
    files = render_tree(settings, argo_dir=out, deploy_dir=deploy_out)
    if check:
        problems = drifted(files, roots=(out, deploy_out))
        if problems:
            for line in problems:
                click.echo(f"drift: {line}", err=True)
            raise LifecycleError(
                f"{len(problems)} rendered file(s) out of date",
                hint="run `tenantctl render` from the repository root and commit the result",
            )
        click.echo(f"{len(files)} rendered files up to date")
        return
    changed = write_tree(files)
    for path in changed:
        click.echo(f"wrote {path}")
    click.echo(f"{len(files)} files rendered, {len(changed)} changed")


commands: list[click.Command] = [render]
