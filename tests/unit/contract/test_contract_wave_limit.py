"""How many distinct waves a plan may have: the WorkflowTemplate nests one level per wave and
Argo's controller stops at a depth of 100, part-way through a run. Discovery and
``tenantctl plan`` refuse such a plan up front, naming the count, the limit and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bridge.contract import Participant
from bridge.discovery import check_plan_limits
from bridge.errors import ContractError
from bridge.planner import MAX_WAVES, build_plan, plan_limits_problem
from orchestrator.cli import main as cli

from .helpers import make_job


def _participants(waves: int) -> list[Participant]:
    # Wave numbers far apart, as the contract allows (-1000..1000): only the count matters.
    return [
        Participant("team-a", f"job-{i}", ("lifecycle.upsert",), wave=i * 10 - 500)
        for i in range(waves)
    ]


def test_the_limit_counts_distinct_waves_not_their_numbers() -> None:
    at_limit = build_plan(_participants(MAX_WAVES), operation="lifecycle.upsert")
    assert plan_limits_problem(at_limit) is None
    over = build_plan(_participants(MAX_WAVES + 1), operation="lifecycle.upsert")
    problem = plan_limits_problem(over)
    assert problem is not None
    assert f"{MAX_WAVES + 1} distinct waves, more than the {MAX_WAVES}" in problem
    assert "waves -500..400" in problem
    # Many jobs in few waves are fine.
    crowded = [
        Participant("team-a", f"j{i}", ("lifecycle.upsert",), wave=i % 3) for i in range(500)
    ]
    assert plan_limits_problem(build_plan(crowded, operation="lifecycle.upsert")) is None


def test_discovery_refuses_the_plan_with_the_reason_and_the_fix() -> None:
    plan = build_plan(_participants(MAX_WAVES + 1), operation="lifecycle.upsert")
    with pytest.raises(ContractError) as caught:
        check_plan_limits(plan)
    assert "distinct waves" in caught.value.message
    assert "fewer distinct waves" in (caught.value.hint or "")


def test_tenantctl_plan_exits_1_naming_the_limit(tmp_path: Path) -> None:
    docs = []
    for i in range(MAX_WAVES + 1):
        job = make_job(f"job-{i}", annotations={"tenant-lifecycle.dev/wave": str(i - 45)})
        docs.append(job)
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump_all(docs))
    done = CliRunner().invoke(cli, ["plan", "--operation", "lifecycle.upsert", str(tmp_path)])
    assert done.exit_code == 1, done.output
    assert f"{MAX_WAVES + 1} distinct waves" in done.stderr
    assert "discovery will refuse it" in done.stderr
    assert "Traceback" not in done.output
