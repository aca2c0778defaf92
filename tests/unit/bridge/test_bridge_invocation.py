"""``bridge/invocation.py`` spells the command lines the template and the local engine write;
``bridge/cli`` parses them. These tests hold the two to each other, so a flag renamed on one
side fails here and not in a pod on a cluster."""

from __future__ import annotations

import click
import pytest

from bridge.__main__ import main
from bridge.cli.run_command import run_params
from bridge.invocation import DiscoverInvocation, RunInvocation, SweepInvocation


def _options(command: str) -> set[str]:
    cmd = main.commands[command]
    return {name for p in cmd.params if isinstance(p, click.Option) for name in p.opts}


def _flags(args: list[str]) -> set[str]:
    return {a for a in args if a.startswith("--")}


FULL_RUN = RunInvocation(
    namespace="team-a",
    job="schema",
    operation="lifecycle.upsert",
    tenant_env_id="acme-prod",
    batch_operation_id="b-1",
    environment="/tmp/env.json",
    changeset="/tmp/changes.json",
    inputs_base64=True,
    workflow_name="tenant-lifecycle-x1",
    workflow_uid="0b6f",
    source_batch_operation_id="b-0",
    result="/tmp/result.json",
)


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("run", FULL_RUN.args()),
        (
            "discover",
            DiscoverInvocation(
                operation="lifecycle.upsert",
                tenant_env_id="acme-prod",
                environment="/tmp/env.json",
                inputs_base64=True,
                output="/tmp/plan.json",
            ).args(),
        ),
        ("sweep", SweepInvocation(older_than="2h").args()),
    ],
)
def test_every_flag_written_is_one_the_bridge_defines(command: str, args: list[str]) -> None:
    assert _flags(args) - _options(command) == set()


def test_a_full_run_command_line_parses_to_its_values() -> None:
    params = run_params(FULL_RUN.args(), {})
    assert params["namespace"] == "team-a"
    assert params["job"] == "schema"
    assert params["operation"] == "lifecycle.upsert"
    assert params["tenant_env_id"] == "acme-prod"
    assert params["batch_operation_id"] == "b-1"
    assert params["workflow_name"] == "tenant-lifecycle-x1"
    assert params["source_batch_operation_id"] == "b-0"
    assert params["inputs_base64"] is True


def test_optional_values_left_out_are_not_on_the_command_line() -> None:
    bare = RunInvocation(
        namespace="n", job="j", operation="lifecycle.delete", tenant_env_id="t",
        batch_operation_id="b",
    )  # fmt: skip
    assert bare.argv() == [
        "python", "-m", "bridge", "run", "--namespace", "n", "--job", "j",
        "--operation", "lifecycle.delete", "--tenant-env-id", "t", "--batch-operation-id", "b",
    ]  # fmt: skip
