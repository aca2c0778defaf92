"""orchestrator/cli/output.py: the helpers every command shares."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from click.testing import CliRunner

from orchestrator.cli.output import dump_json, echo_json, output_option, plural, render_table


def test_render_table_aligns_and_never_trails_spaces() -> None:
    text = render_table(
        ("WAVE", "JOB", "NOTE"), [(-1, "team-a/schema", None), (10, "b/x", "two\nlines")]
    )
    assert text.splitlines() == [
        "WAVE  JOB            NOTE",
        "-1    team-a/schema  -",
        "10    b/x            two lines",
    ]
    assert render_table(("A",), [], empty="nothing") == "nothing"


def test_dump_json_forms() -> None:
    data = {"b": 1, "a": [1, 2], "when": datetime(2026, 1, 2, tzinfo=UTC), "name": "é"}
    assert dump_json(data, compact=True) == (
        '{"b":1,"a":[1,2],"when":"2026-01-02 00:00:00+00:00","name":"é"}'
    )
    assert json.loads(dump_json(data))["a"] == [1, 2]
    assert plural(1, "Job") == "1 Job"
    assert plural(2, "Job") == "2 Jobs"
    assert plural(0, "entry", "entries") == "0 entries"


def test_output_option_choices_and_env() -> None:
    @click.command()
    @output_option
    def show(output: str) -> None:
        echo_json({"output": output})

    runner = CliRunner()
    assert json.loads(runner.invoke(show, []).stdout) == {"output": "text"}
    assert json.loads(runner.invoke(show, ["-o", "json"]).stdout) == {"output": "json"}
    env = runner.invoke(show, [], auto_envvar_prefix="T", env={"T_OUTPUT": "json"})
    assert json.loads(env.stdout) == {"output": "json"}
    bad = runner.invoke(show, ["--output", "yaml"])
    assert bad.exit_code == 2
    assert "'yaml' is not one of 'text', 'json'" in bad.output
