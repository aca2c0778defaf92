"""The example teams' programs do real, checkable work: run each planned Job's command the way
the sandbox does (a local process, the ConfigMap's files at their mountPath, the LIFECYCLE_*
env), wave by wave with the Job's backoffLimit, and check the tenant state they leave."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.contract import ContractSettings
from bridge.manifests import check_manifests, load_objects
from bridge.planner import build_plan

ROOT = Path(__file__).resolve().parents[3]
TEAMS = [ROOT / "lifecycle-jobs" / t for t in ("team-billing", "team-catalog", "team-search")]
MOUNT = "/opt/lifecycle"
STATE = "/var/lib/tenant-lifecycle-demo"


class ExampleRunner:
    """Runs a plan's jobs as local processes; records (job, attempt, exit code)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        self.objects = load_objects(TEAMS)
        self.jobs = {
            (o["metadata"]["namespace"], o["metadata"]["name"]): o
            for o in self.objects
            if o["kind"] == "Job"
        }
        self.participants = check_manifests(TEAMS, settings=ContractSettings()).participants()
        self.attempts: list[tuple[str, int, int]] = []
        self.logs: list[str] = []
        for cm in (o for o in self.objects if o["kind"] == "ConfigMap"):
            directory = tmp_path / "cm" / cm["metadata"]["namespace"] / cm["metadata"]["name"]
            directory.mkdir(parents=True)
            for key, text in cm["data"].items():
                (directory / key).write_text(text)

    def _argv(self, job: dict[str, Any], programs: Path) -> tuple[list[str], dict[str, str]]:
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        assert mounts[MOUNT]["configMap"]["name"] == programs.name
        assert mounts[STATE]["hostPath"]["path"] == STATE
        argv = [arg.replace(MOUNT, str(programs)) for arg in container["command"]]
        if argv[0] == "python3":
            argv[0] = sys.executable  # the same interpreter, without a version-manager shim
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        env["LIFECYCLE_STATE_DIR"] = str(self.state)
        return argv, env

    def run(self, operation: str, tenant: str, batch: str, applications: list[str]) -> bool:
        env_file = self.tmp / f"{batch}-environment.yaml"
        env_file.write_text("applications:\n" + "".join(f"- {a}\n" for a in applications))
        changeset = self.tmp / f"{batch}-changeset.yaml"
        changeset.write_text("billing:\n  plan: gold\n")
        plan = build_plan(
            self.participants, operation=operation, environment={"applications": applications}
        )
        for wave in plan.waves:
            for participant in wave.jobs:
                job = self.jobs[(participant.namespace, participant.name)]
                volumes = job["spec"]["template"]["spec"]["volumes"]
                cm_name = next(v["configMap"]["name"] for v in volumes if "configMap" in v)
                programs = self.tmp / "cm" / participant.namespace / cm_name
                argv, extra = self._argv(job, programs)
                for attempt in range(1, participant.backoff_limit + 2):
                    completed = subprocess.run(
                        argv,
                        env={
                            "PATH": os.environ["PATH"],
                            **extra,
                            "LIFECYCLE_TENANT_ENV_ID": tenant,
                            "LIFECYCLE_BATCH_OPERATION_ID": batch,
                            "LIFECYCLE_OPERATION_NAME": operation,
                            "LIFECYCLE_TENANT_ENV_FILE": str(env_file),
                            "LIFECYCLE_CHANGESET_FILE": str(changeset),
                            "LIFECYCLE_ATTEMPT": str(attempt),
                        },
                        capture_output=True,
                        text=True,
                        timeout=30,
                        check=False,
                    )
                    self.logs.append(completed.stdout + completed.stderr)
                    assert "Traceback" not in completed.stderr, completed.stderr
                    self.attempts.append((participant.name, attempt, completed.returncode))
                    if completed.returncode == 0:
                        break
                else:
                    if participant.on_failure.value == "abort":
                        return False
        return True


@pytest.fixture
def runner(tmp_path: Path) -> ExampleRunner:
    return ExampleRunner(tmp_path)


def test_full_lifecycle_of_a_tenant(runner: ExampleRunner) -> None:
    tenant = runner.state / "tenants" / "t1"
    apps = ["catalog", "search"]

    assert runner.run("lifecycle.upsert", "t1", "b1", apps)
    assert runner.attempts == [
        ("catalog-schema", 1, 0),
        ("search-index", 1, 3),  # fails on purpose on its first attempt...
        ("search-index", 2, 0),  # ...and the retry (backoffLimit: 2) succeeds
        ("billing-account", 1, 0),
        ("billing-notify", 1, 0),
    ]
    assert "search cluster not ready yet" in runner.logs[1]
    assert json.loads((tenant / "catalog" / "schema.json").read_text())["version"] == 3
    assert json.loads((tenant / "search" / "index.json").read_text())["catalogSchema"] == 3
    account = json.loads((tenant / "billing" / "account.json").read_text())
    assert account == {"plan": "gold", "status": "active", "tenant": "t1"}
    assert not list((tenant / "search").glob(".first-attempt-failed-*"))

    runner.attempts.clear()
    assert runner.run("catalog.reindex", "t1", "b2", apps)
    assert runner.attempts == [("catalog-reindex", 1, 0)]
    assert (tenant / "catalog" / "reindex.json").exists()

    assert runner.run("lifecycle.suspend", "t1", "b3", apps)
    assert (tenant / "search" / "FROZEN").exists()
    assert json.loads((tenant / "billing" / "account.json").read_text())["status"] == "paused"
    assert runner.run("lifecycle.resume", "t1", "b4", apps)
    assert not (tenant / "search" / "FROZEN").exists()
    assert json.loads((tenant / "billing" / "account.json").read_text())["status"] == "active"

    assert runner.run("lifecycle.decommission", "t1", "b5", apps)
    assert not (tenant / "catalog").exists()
    assert not (tenant / "search").exists()
    assert not (tenant / "billing" / "account.json").exists()
    invoice = runner.state / "invoices" / "final-t1.json"
    assert json.loads(invoice.read_text()) == {"tenant": "t1", "plan": "gold"}
    log = (tenant / "billing" / "notifications.log").read_text().splitlines()
    assert log == [
        "lifecycle.upsert tenant=t1 batch=b1",
        "lifecycle.decommission tenant=t1 batch=b5",
    ]


def test_applications_filter_and_failures_are_checkable(runner: ExampleRunner) -> None:
    # A tenant without catalog or search: only billing runs.
    assert runner.run("lifecycle.upsert", "t2", "b1", [])
    assert [a[0] for a in runner.attempts] == ["billing-account", "billing-notify"]
    # Resume before upsert: the search index does not exist, the job fails with a reason.
    runner.attempts.clear()
    assert not runner.run("lifecycle.resume", "t3", "b2", ["search"])
    assert runner.attempts[-1] == ("search-index", 3, 1)
    assert "run lifecycle.upsert first" in runner.logs[-1]
