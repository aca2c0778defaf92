"""``python -m bridge`` argument mistakes: one line naming the flag, before any API call."""

from __future__ import annotations

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
