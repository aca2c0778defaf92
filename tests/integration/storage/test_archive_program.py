"""The archive example's program on its own (no bridge): the operations that need no store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bridge.manifests import load_objects

TEAM = Path(__file__).resolve().parents[3] / "lifecycle-jobs" / "archive"


def _run(tmp_path: Path, operation: str, **extra: str) -> subprocess.CompletedProcess[str]:
    [config_map] = [o for o in load_objects([TEAM]) if o["kind"] == "ConfigMap"]
    program = tmp_path / "archive.py"
    program.write_text(config_map["data"]["archive.py"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")}
    env.update(
        {
            "LIFECYCLE_TENANT_ENV_ID": "t1",
            "LIFECYCLE_OPERATION_NAME": operation,
            "LIFECYCLE_STATE_DIR": str(tmp_path / "state"),
            **extra,
        }
    )
    return subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, env=env, timeout=60
    )


def test_decommission_deletes_the_tenants_archive_only(tmp_path: Path) -> None:
    tenant = tmp_path / "state" / "tenants" / "t1"
    (tenant / "archive" / "2026").mkdir(parents=True)
    (tenant / "archive" / "2026" / "a.txt").write_text("a")
    (tenant / "archive.incoming-b9").mkdir()
    (tenant / "catalog").mkdir()
    (tenant / "catalog" / "schema.json").write_text("{}")

    done = _run(tmp_path, "lifecycle.decommission")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "deleted the tenant's archive: 1 file(s)" in done.stdout
    assert sorted(p.name for p in tenant.iterdir()) == ["catalog"]


def test_a_storage_operation_without_a_location_is_a_usage_error(tmp_path: Path) -> None:
    done = _run(tmp_path, "lifecycle.migrate-out")
    assert done.returncode == 64
    assert "needs LIFECYCLE_OBJECT_STORE_URL" in done.stdout
