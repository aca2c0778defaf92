"""``tenantctl demo`` as a newcomer runs it, and ``tenantctl run``/``demo`` usage errors.

The demo runs as a subprocess with its own TMPDIR and a marker in its environment; after it
exits, no process may remain that carries the marker (bridges, SeaweedFS), runs from or names
the demo's temporary directory (the sandbox's pod processes), or is a child of the demo.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main

REPO = Path(__file__).resolve().parents[3]
TENANTCTL = str(Path(sys.executable).parent / "tenantctl")


def _leftovers(marker: str, tmpdir: Path, demo_pid: int) -> list[str]:
    """Processes the demo left behind: by environment marker, path, or parent."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                cwd = ""
        except OSError:  # the process ended while we looked, or is not ours to read
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if (
            marker.encode() in environ
            or str(tmpdir) in cmdline
            or cwd.startswith(str(tmpdir))
            or parent == demo_pid
        ):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def test_the_demo_tells_the_story_and_leaves_nothing_running(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    marker = f"demo-e2e-{secrets.token_hex(6)}"
    env = {**os.environ, "TMPDIR": str(tmpdir), "TENANTCTL_E2E_MARKER": marker, "TERM": "dumb"}
    process = subprocess.Popen(
        [TENANTCTL, "demo"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, out
    assert "Traceback" not in out

    # The story's key lines: the waves, the retried job, the summaries, where to look.
    assert "== 2/7 lifecycle.upsert: three teams, waves -1, 0 and 1 ==" in out
    assert re.search(r"\(batch demo-\w+-upsert\): 4 jobs in 3 waves \(-1, 0, 1\)", out)
    for wave in ("wave -1: 1 job", "wave 0: 1 job", "wave 1: 2 jobs"):
        assert wave in out
    assert "[team-search/search-index] search cluster not ready yet" in out
    assert "team-search/search-index: succeeded (2 attempts" in out
    assert "team-search/search-index failed its first attempt and succeeded on attempt 2" in out
    assert re.search(r"^WAVE +JOB +STATUS +ATTEMPTS +DURATION +EXIT +REASON$", out, re.M)
    assert re.search(r"^0 +team-search/search-index +succeeded +2 ", out, re.M)
    assert "lifecycle.upsert for tenant acme-prod-7f3a: SUCCEEDED" in out
    assert "catalog.reindex for tenant acme-prod-7f3a: SUCCEEDED" in out
    # SeaweedFS ships with the dev dependencies: the migration really ran.
    assert "lifecycle.migrate-out for tenant acme-prod-7f3a: SUCCEEDED" in out
    assert "restored 3 files: identical (sha256)" in out
    assert "lifecycle.decommission for tenant acme-prod-7f3a: SUCCEEDED" in out
    # The Pub/Sub emulator is installed on this machine: every result event came back.
    assert re.search(r"^  dev.tenant-lifecycle.operation.succeeded +id demo-\w+-upsert", out, re.M)
    assert "(5 of 5 read back)" in out
    assert "docs/team-guide.md" in out
    assert re.search(r"demo finished in (\d+m)?[\d.]+s", out)

    assert _leftovers(marker, tmpdir, process.pid) == []
    assert list(tmpdir.iterdir()) == []  # the work directory is gone


@pytest.mark.parametrize("command", ["run", "demo"])
def test_help_has_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert f"tenantctl {command}" in result.output.split("Examples:")[1]


@pytest.mark.parametrize(
    ("args", "names", "fix"),
    [
        (["run", "lifecycle.upsert", "--tenant-env-id", "t", "--paralelism", "2"],
         "--paralelism", "Did you mean '--parallelism'?"),
        (["run", "lifecycle.upsert", "--tenant-env-id", "t", "--parallelism", "0"],
         "'--parallelism'", "0 is not in the range x>=1"),
        (["run", "lifecycle.upsert", "--tenant-env-id", "t", "--engine", "k8s"],
         "'--engine'", "'k8s' is not one of 'local', 'argo'"),
        (["run", "lifecycle.upsert", "--tenant-env-id", "t", "--logs", "some"],
         "'--logs'", "'some' is not one of 'all', 'failed', 'none'"),
        (["run", "lifecycle.upsert"], "'--tenant-env-id'", "Missing option"),
        (["run", "lifecycle.upsrt", "--tenant-env-id", "t"], "OP", "known: lifecycle.backup"),
        (["run", "lifecycle.upsert", "--tenant-env-id", "t t"],
         "--tenant-env-id", "letters, digits"),
        (["run", "lifecycle.upsert", "--tenant-env-id", "t", "--wait"],
         "--wait", "drop --wait"),
        (["demo", "--logs", "loud"], "'--logs'", "'loud' is not one of"),
    ],
)  # fmt: skip
def test_a_wrong_flag_or_value_is_one_line_naming_it(args: list[str], names: str, fix: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert names in lines[0]
    assert fix in lines[0]
