"""Every tenantctl command answers a wrong flag with one line naming it, never click's three."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from orchestrator.cli import main


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["validate", "--bogus", "x"], ["--bogus", "tenantctl validate --help"]),
        (["plan", "lifecycle-jobs/"], ["--operation", "tenantctl plan --help"]),
        (["history", "--since", "yesterday-ish"], ["--since"]),
        (["nosuch"], ["nosuch", "tenantctl --help"]),
        (["render", "--out"], ["--out", "tenantctl render --help"]),
    ],
)
def test_a_usage_error_is_one_line_naming_the_flag(argv: list[str], names: list[str]) -> None:
    result = CliRunner().invoke(main, argv, prog_name="tenantctl")

    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    for name in names:
        assert name in lines[0]
    assert "Traceback" not in result.output
