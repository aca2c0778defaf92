"""``tenantctl fleet`` flags, selection errors and ``--dry-run`` (in-process), and the progress
lines for a log and for a terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.cli.commands import fleet as fleet_command
from orchestrator.engine import SubprocessBridgeLauncher, ThreadBridgeLauncher
from orchestrator.fleet import (
    FAILED,
    Counts,
    FailureBudget,
    FleetRun,
    FleetSettings,
    LineProgress,
    TenantOutcome,
    TenantRequest,
    child_batch_id,
)
from orchestrator.fleet.inventory import Tenant
from orchestrator.fleet.runners import LocalEngineTenantRunner
from orchestrator.history import open_store
from tests.support.fleet import FakeScript, FakeTenantRunner

INVENTORY = """\
tenants:
  - {id: t1, region: eu-west-1, labels: {tier: gold}}
  - {id: t2, region: eu-west-1, labels: {tier: silver}}
  - {id: t3, region: us-east-1, labels: {tier: gold}}
  - {id: t4, region: eu-west-1, labels: {tier: gold}}
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "tenants.yaml").write_text(INVENTORY)
    (tmp_path / "ids.txt").write_text("t4\nt1\n")
    return {
        "inventory": str(tmp_path / "tenants.yaml"),
        "ids": str(tmp_path / "ids.txt"),
        "store": f"sqlite:///{tmp_path / 'history.db'}",
    }


def _fleet(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["fleet", *args])
    return result.exit_code, result.stdout, result.stderr


def test_dry_run_shows_the_selection_canaries_first(files: dict[str, str]) -> None:
    code, out, err = _fleet(
        "lifecycle.upsert",
        "--selector",
        "region=eu-west-1,tier in (gold)",
        "--inventory",
        files["inventory"],
        "--store",
        files["store"],
        "--canary",
        "1",
        "--parent-batch-id",
        "fleet-x",
        "--dry-run",
        "-o",
        "json",
    )
    assert code == 0, err
    plan = json.loads(out)
    assert [(p["tenant"], p["canary"]) for p in plan["planned"]] == [("t1", True), ("t4", False)]
    assert plan["planned"][0]["batchOperationId"] == child_batch_id("fleet-x", "t1")
    code, out, _ = _fleet(
        "lifecycle.upsert",
        "--tenants",
        files["ids"],
        "--inventory",
        files["inventory"],
        "--store",
        files["store"],
        "--dry-run",
    )
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["t4", "t1"]


def test_dry_run_of_a_resume_skips_successes_and_retries_failures(files: dict[str, str]) -> None:
    store = open_store(files["store"])
    try:
        FleetRun(
            operation="lifecycle.upsert",
            tenants=[Tenant(t) for t in ("t1", "t2", "t3", "t4")],
            runner=FakeTenantRunner({"t2": FakeScript(FAILED)}),
            store=store,
            settings=FleetSettings(concurrency=1, max_failures=FailureBudget(count=0)),
            parent_batch_id="fleet-y",
        ).execute()
    finally:
        store.close()
    code, out, err = _fleet(
        "lifecycle.upsert",
        "--all",
        "--inventory",
        files["inventory"],
        "--store",
        files["store"],
        "--resume",
        "fleet-y",
        "--dry-run",
        "-o",
        "json",
    )
    assert code == 0, err
    plan = json.loads(out)
    assert plan["skipped"] == ["t1"]
    assert [(p["tenant"], p["attempt"]) for p in plan["planned"]] == [
        ("t2", 2),
        ("t3", 1),
        ("t4", 1),
    ]
    code, _, err = _fleet(
        "lifecycle.upsert",
        "--all",
        "--inventory",
        files["inventory"],
        "--store",
        files["store"],
        "--parent-batch-id",
        "fleet-y",
        "--dry-run",
    )
    assert code == 2
    assert "fleet fleet-y already has history (continue it with --resume fleet-y" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one of --all, --tenants FILE, --selector EXPR"),
        (["--all", "--selector", "a=b"], "(got --all and --selector)"),
        (["--all"], "--all needs a tenant inventory"),
        (
            ["--selector", "tier in gold", "--inventory", "{inventory}"],
            "values must be in parentheses",
        ),
        (["--all", "--inventory", "{inventory}", "--max-failures", "x"], "--max-failures 'x'"),
        (["--all", "--inventory", "{inventory}", "--concurrency", "0"], "--concurrency"),
        (["--selector", "tier=platinum", "--inventory", "{inventory}"], "matched no tenant"),
        (
            ["--all", "--inventory", "{inventory}", "--resume", "a", "--parent-batch-id", "b"],
            "--resume and --parent-batch-id name different runs",
        ),
        (["--all", "--inventory", "{inventory}", "--launcher", "fork"], "--launcher"),
    ],
)
def test_wrong_flags_are_one_line_usage_errors(
    files: dict[str, str], args: list[str], message: str
) -> None:
    argv = [a.format(**files) for a in args]
    code, out, err = _fleet("lifecycle.upsert", *argv, "--store", files["store"], "--dry-run")
    assert code == 2, out
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err


def test_a_missing_inventory_is_an_error_naming_the_file(files: dict[str, str]) -> None:
    code, _, err = _fleet(
        "lifecycle.upsert",
        "--all",
        "--inventory",
        "/nonexistent/tenants.yaml",
        "--store",
        files["store"],
        "--dry-run",
    )
    assert code == 1
    assert "inventory /nonexistent/tenants.yaml: cannot read" in err


def test_launcher_reaches_the_local_engine(
    files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--launcher`` is ``tenantctl run``'s option, handed to the local engine's settings."""
    seen: list[str] = []

    def runner(**kwargs: object) -> FakeTenantRunner:
        seen.append(str(kwargs["launcher"]))
        return FakeTenantRunner()

    monkeypatch.setattr(fleet_command, "local_runner", runner)
    base = ["lifecycle.upsert", "--all", "--inventory", files["inventory"]]
    code, _, err = _fleet(*base, "--store", files["store"], "--launcher", "process")
    assert code == 0, err
    code, _, err = _fleet(*base, "--store", files["store"].replace("history", "h2"))
    assert code == 0, err
    assert seen == ["process", "thread"]  # the default: bridges in threads (issue 21)
    # The same option, help and default as `tenantctl run --launcher`.
    options = {
        name: next(p for p in main.commands[name].params if p.name == "launcher")
        for name in ("run", "fleet")
    }
    assert options["fleet"].to_info_dict() == options["run"].to_info_dict()


@pytest.mark.parametrize(
    ("launcher", "kind"), [("thread", ThreadBridgeLauncher), ("process", SubprocessBridgeLauncher)]
)
def test_local_runner_builds_the_engine_with_that_launcher(launcher: str, kind: type) -> None:
    runner = fleet_command.local_runner(
        kubeconfig=None, context=None, parallelism=2, launcher=launcher
    )
    assert isinstance(runner, LocalEngineTenantRunner)
    assert isinstance(runner.engine.launcher, kind)
    assert runner.engine.settings.launcher == launcher


def _request(tenant: str) -> TenantRequest:
    return TenantRequest(
        batch_operation_id=f"p-{tenant}",
        parent_batch_operation_id="p",
        tenant=Tenant(tenant),
        operation="lifecycle.upsert",
    )


def test_progress_lines_for_a_log() -> None:
    written: list[str] = []
    progress = LineProgress(written.append, tty=False)
    counts = Counts(total=3, running=1)
    progress.on_start(_request("t1"), canary=True, counts=counts)
    counts.running, counts.failed = 0, 1
    progress.on_finish(
        _request("t1"), TenantOutcome(FAILED, "team-a/schema Error (exit 1)"), counts
    )
    progress.on_stop("canary t1 failed", counts)
    text = "".join(written)
    assert "\r" not in text
    assert text.splitlines() == [
        "start canary t1 (p-t1)",
        "failed t1: team-a/schema Error (exit 1)  [1/3] running 0, succeeded 0, failed 1",
        "stopping: canary t1 failed; no new tenant will start",
    ]


def test_progress_on_a_terminal_rewrites_one_status_line() -> None:
    written: list[str] = []
    progress = LineProgress(written.append, tty=True)
    counts = Counts(total=2, running=1)
    progress.on_start(_request("t1"), canary=False, counts=counts)
    counts.running, counts.succeeded = 0, 1
    progress.on_finish(_request("t1"), TenantOutcome("succeeded"), counts)
    progress.close()
    text = "".join(written)
    assert "start" not in text
    assert "succeeded t1" not in text
    assert text.endswith("\r\x1b[2K[1/2] running 0, succeeded 1, failed 0\n")
