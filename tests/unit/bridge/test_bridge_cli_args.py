"""``python -m bridge`` argument mistakes: one line naming the flag, before any API call."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bridge.__main__ import main


def test_environment_and_changeset_cannot_both_come_from_stdin() -> None:
    # stdin can be read once: the second document would silently be empty -- a changeset lost.
    done = CliRunner().invoke(
        main,
        [
            "run",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--namespace",
            "team-a",
            "--job",
            "schema",
            "--operation",
            "lifecycle.upsert",
            "--tenant-env-id",
            "t1",
            "--batch-operation-id",
            "b1",
            "--environment",
            "-",
            "--changeset",
            "-",
        ],
        input="applications: [catalog]\n",
    )
    assert done.exit_code == 2, done.output
    assert "--environment" in done.stderr
    assert "--changeset" in done.stderr
    assert "stdin" in done.stderr
    assert "Traceback" not in done.output + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--request-timeout", "-1"),
        ("--request-timeout", "0"),
        ("--max-retries", "-1"),
        ("--backoff-base", "-0.5"),
        ("--stuck-grace", "-5"),
        ("--unschedulable-grace", "-5"),
        ("--delete-grace", "-1"),
        ("--log-reconnect-delay", "-1"),
    ],
)
def test_negative_durations_and_counts_are_usage_errors(option: str, value: str) -> None:
    # --request-timeout -1 used to reach urllib3 and end as an "internal error" traceback; a
    # negative grace would fail every pod at once as "stuck".
    done = CliRunner().invoke(
        main,
        [
            "run",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--namespace",
            "team-a",
            "--job",
            "schema",
            "--operation",
            "lifecycle.upsert",
            "--tenant-env-id",
            "t1",
            "--batch-operation-id",
            "b1",
            option,
            value,
        ],
    )
    assert done.exit_code == 2, done.output
    assert option in done.stderr
    assert "kubeconfig" not in done.stderr  # refused before anything else is tried
    assert "Traceback" not in done.output + done.stderr
