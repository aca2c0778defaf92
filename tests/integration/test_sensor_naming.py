"""The Argo Events Sensor names a request's Workflow exactly as ``tenantctl listen`` does.

Both paths submit one Workflow per batch operation id and rely on the API server's 409 for the
same name to drop a duplicate; that only works across the paths if both derive the same name.
The Sensor computes it with a ``dataTemplate`` (Go text/template + Sprig), the orchestrator with
``orchestrator.naming.workflow_name``. Here the rendered ``sensor.yaml`` is evaluated by
argo-events' own trigger code (``testbed/sensorcheck``, built from the pinned module) and every
name compared with ``workflow_name``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.naming import workflow_name

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SENSOR = REPO / "workflows" / "rendered" / "events" / "sensor.yaml"
PROGRAM = REPO / "testbed" / "sensorcheck"
DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# A cold build of argo-events' trigger packages takes minutes on 2 shared cores.
BUILD_TIMEOUT = 1500

IDS = [
    "b-20261122-0001",  # plain: kept as is
    "Batch_1",
    "batch-1",
    "UPPER",
    "--x--",
    "a--b",
    "a.b",
    "___",  # nothing left after sanitizing: lc-<hash>
    "with space",
    "x" * 60,  # the longest id kept as is
    "x" * 61,
    "x" * 200,
    "Ab_" * 70,  # 210 characters, sanitized and truncated
    "a" * 48 + "-" + "b" * 100,  # the cut ends on '-'
    "tenant-ñ-ü",
    "日本語のバッチ",
    "İstanbul",  # Go and Python lower-case İ differently
    "\u212aelvin",  # Kelvin sign: lower-cases to ASCII k in both
    "emoji-🚀-1",
    "ß" * 100,
]


@pytest.fixture(scope="module")
def sensorcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("go is not on PATH: the Sensor check builds testbed/sensorcheck (Go >= 1.26)")
    binary = tmp_path_factory.mktemp("sensorcheck") / "sensorcheck"
    build = subprocess.run(
        [go, "build", "-trimpath", "-mod=readonly", "-o", str(binary), "."],
        cwd=PROGRAM,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert build.returncode == 0, f"go build in {PROGRAM} failed:\n{build.stderr}"
    return binary


def sensor_names(binary: Path, ids: list[object]) -> list[dict[str, str]]:
    """What argo-events makes of the rendered Sensor for a request with each id."""
    lines = "".join(json.dumps({"id": i}, ensure_ascii=False) + "\n" for i in ids)
    done = subprocess.run(
        [str(binary), "-sensor", str(SENSOR)],
        input=lines,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == len(ids), done.stdout
    return results


@pytest.mark.timeout(BUILD_TIMEOUT + 120)
def test_sensor_names_workflows_exactly_as_the_orchestrator(sensorcheck: Path) -> None:
    results = sensor_names(sensorcheck, list(IDS))
    assert {i: r.get("name") for i, r in zip(IDS, results, strict=True)} == {
        i: workflow_name(i) for i in IDS
    }
    names = [r["name"] for r in results]
    assert all(DNS_LABEL.fullmatch(name) for name in names), names
    # Ids that sanitize alike stay apart (the hash), so neither path drops the other's batch.
    assert len(set(names)) == len(names)


@pytest.mark.timeout(BUILD_TIMEOUT + 120)
def test_sensor_submits_nothing_for_a_request_without_id(sensorcheck: Path) -> None:
    # The Sensor's filters drop such events already; the name must not be made up either.
    (result,) = sensor_names(sensorcheck, [None])
    assert "name" not in result
    assert "has no id" in result["error"]
