"""``bridge.cli.run_command.run_params``: what ``python -m bridge run ARGS`` gets in an environment.

The local engine's thread launcher runs bridges with these parameters, so they must be the
command's own: its types, ranges and defaults, each ``BRIDGE_*`` variable for an option not on
the command line, and the command line winning over the environment.
"""

from __future__ import annotations

import pytest

from bridge.cli.run_command import prepare_run, run_params
from bridge.errors import UsageError

ARGS = [
    "--namespace", "team-a", "--job", "schema", "--operation", "lifecycle.upsert",
    "--tenant-env-id", "t1", "--batch-operation-id", "b1",
]  # fmt: skip


def test_defaults_without_an_environment() -> None:
    params = run_params(ARGS, {})
    assert params["stuck_grace"] == 120.0
    assert params["max_retries"] == 5
    assert params["in_cluster"] is False
    assert params["prefix"] == "tenant-lifecycle.dev"


def test_bridge_variables_are_converted_by_the_options_types() -> None:
    env = {"BRIDGE_STUCK_GRACE": "7.5", "BRIDGE_MAX_RETRIES": "0", "BRIDGE_IN_CLUSTER": "true"}
    params = run_params(ARGS, env)
    assert (params["stuck_grace"], params["max_retries"], params["in_cluster"]) == (7.5, 0, True)
    assert run_params(ARGS, {"BRIDGE_IN_CLUSTER": "0"})["in_cluster"] is False


def test_the_command_line_wins_over_the_environment() -> None:
    params = run_params([*ARGS, "--max-retries", "3"], {"BRIDGE_MAX_RETRIES": "9"})
    assert params["max_retries"] == 3


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BRIDGE_STUCK_GRACE": "-1"}, "--stuck-grace"),
        ({"BRIDGE_MAX_RETRIES": "many"}, "--max-retries"),
        ({"BRIDGE_IN_CLUSTER": "perhaps"}, "BRIDGE_IN_CLUSTER"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(UsageError, match=named):
        run_params(ARGS, env)


def test_a_missing_required_option_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--job"):
        run_params(["--namespace", "team-a"], {})


def test_prepare_run_takes_documents_as_data() -> None:
    params = run_params(ARGS, {"BRIDGE_WORKFLOW_NAMESPACE": "argo-wf"})
    setup = prepare_run(params, environment={"applications": ["catalog"]}, changeset={})
    assert setup.request.environment == {"applications": ["catalog"]}
    assert setup.request.workflow_namespace == "argo-wf"
    assert setup.storage_config is None
