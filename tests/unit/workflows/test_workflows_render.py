"""Rendering: the committed files are exactly what the hera source gives (drift test)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from workflows.render import drifted, render_tree, write_tree
from workflows.settings import GENERATED_HEADER, WorkflowSettings

REPO = Path(__file__).resolve().parents[3]


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*.yaml"))
    }


def test_rendering_into_tmp_equals_the_committed_files(tmp_path: Path) -> None:
    files = render_tree(
        WorkflowSettings(),
        argo_dir=tmp_path / "workflows" / "rendered",
        deploy_dir=tmp_path / "deploy",
    )
    write_tree(files)
    rendered = _tree(tmp_path)
    committed = {
        **{f"workflows/rendered/{k}": v for k, v in _tree(REPO / "workflows" / "rendered").items()},
        **{f"deploy/{k}": v for k, v in _tree(REPO / "deploy").items()},
    }
    assert sorted(rendered) == sorted(committed)
    stale = [name for name in rendered if rendered[name] != committed[name]]
    assert stale == [], "run `tenantctl render` and commit the result"


def test_every_file_is_headed_generated() -> None:
    for path in [
        *(REPO / "workflows" / "rendered").rglob("*.yaml"),
        *(REPO / "deploy").rglob("*.yaml"),
    ]:
        assert path.read_text(encoding="utf-8").startswith(GENERATED_HEADER), path


def test_render_check_passes_then_lists_drifted_and_stale_files(tmp_path: Path) -> None:
    runner = CliRunner()
    out, deploy = tmp_path / "argo", tmp_path / "deploy"
    args = ["render", "--out", str(out), "--deploy-out", str(deploy)]
    written = runner.invoke(main, args)
    assert written.exit_code == 0, written.output
    count = len(render_tree(WorkflowSettings(), argo_dir=out, deploy_dir=deploy))
    assert f"{count} files rendered, {count} changed" in written.output
    assert runner.invoke(main, [*args, "--check"]).exit_code == 0

    template = out / "workflowtemplate.yaml"
    template.write_text(template.read_text().replace("parallelism: 8\n", "parallelism: 99\n"))
    (deploy / "base" / "leftover.yaml").write_text("kind: ConfigMap\n")
    checked = runner.invoke(main, [*args, "--check"])
    assert checked.exit_code == 1
    assert f"drift: {template}: differs from the rendered output" in checked.output
    assert "leftover.yaml: not produced by rendering (stale)" in checked.output
    assert "error: 2 rendered file(s) out of date" in checked.output
    assert "Traceback" not in checked.output


def test_image_option_changes_every_container(tmp_path: Path) -> None:
    files = render_tree(
        WorkflowSettings(image="registry.example/tl:9.9"),
        argo_dir=tmp_path / "a",
        deploy_dir=tmp_path / "d",
    )
    template = next(f for f in files if f.path.name == "workflowtemplate.yaml")
    assert template.text.count("image: registry.example/tl:9.9") == 3
    assert "ghcr.io" not in template.text
    assert drifted(files, roots=()) == [f"{f.path}: missing" for f in files]


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout


def test_render_out_writes_only_under_out_and_leaves_the_checkout_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A checkout holding the committed tree, as `tenantctl render` (no flags) writes it.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    monkeypatch.chdir(checkout)
    runner = CliRunner()
    assert runner.invoke(main, ["render"]).exit_code == 0
    assert (checkout / "deploy" / "base" / "kustomization.yaml").is_file()
    _git(checkout, "init", "-q")
    _git(checkout, "add", ".")
    _git(checkout, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "tree")
    assert _git(checkout, "status", "--porcelain") == ""

    outside = tmp_path / "elsewhere"
    written = runner.invoke(main, ["render", "--out", str(outside)])
    assert written.exit_code == 0, written.output
    assert _git(checkout, "status", "--porcelain") == "", "render --out touched the checkout"
    files = sorted(p.relative_to(outside).as_posix() for p in outside.rglob("*.yaml"))
    assert "workflowtemplate.yaml" in files
    assert "deploy/base/kustomization.yaml" in files
    # the install tree under DIR points at the Argo objects under DIR
    base = (outside / "deploy" / "base" / "kustomization.yaml").read_text(encoding="utf-8")
    assert "- ../..\n" in base
    assert runner.invoke(main, ["render", "--out", str(outside), "--check"]).exit_code == 0

    inside = runner.invoke(main, ["render", "--out", "build/rendered"])
    assert inside.exit_code == 0, inside.output
    assert _git(checkout, "status", "--porcelain") == "?? build/\n"
    # the default still renders the committed tree, unchanged
    again = runner.invoke(main, ["render"])
    assert "0 changed" in again.output
    assert _git(checkout, "status", "--porcelain") == "?? build/\n"
