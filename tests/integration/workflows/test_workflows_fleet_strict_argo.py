"""The scheduled fleet as Argo's own code runs it under ``templateReferencing: Strict``.

``strictcheck/main.go``, built against the Argo module ``testbed/argo/go.mod`` pins, takes a
CronWorkflow and the WorkflowTemplate it references through the workflow controller's steps
(validation, the scheduled Workflow, the Strict checks, the spec join, parameter substitution)
and reports what the dispatcher container would be started with. The old inline CronWorkflow is
refused exactly as a real controller refused it; the new pair is accepted, and runs the command
line ``FleetSchedule.fleet_args`` promises, as the template's service account, with the
template's pod security context.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.fleet_cron import (
    ARGOEXEC_UID,
    FleetSchedule,
    fleet_cron_manifest,
    fleet_workflow_template_manifest,
)
from workflows.settings import WorkflowSettings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
PROGRAM = Path(__file__).resolve().parent / "strictcheck" / "main.go"
PINS = REPO / "testbed" / "argo"
# A cold build of Argo's controller packages takes minutes on 2 shared cores.
BUILD_TIMEOUT = 1500
SCHEDULED = 1767225600  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def strictcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("go is not on PATH: the Strict check builds strictcheck/main.go")
    module = tmp_path_factory.mktemp("strictcheck")
    # The pinned Argo module and its dependencies exactly as the test bed pins them.
    (module / "go.mod").write_text(
        (PINS / "go.mod")
        .read_text()
        .replace("module tenant-lifecycle.dev/testbed/argo", "module strictcheck", 1)
    )
    shutil.copyfile(PINS / "go.sum", module / "go.sum")
    shutil.copyfile(PROGRAM, module / "main.go")
    binary = module / "strictcheck"
    build = subprocess.run(
        [go, "build", "-trimpath", "-mod=mod", "-o", str(binary), "."],
        cwd=module,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert build.returncode == 0, f"go build of {PROGRAM} failed:\n{build.stderr}"
    return binary


def run(binary: Path, tmp_path: Path, cron: dict[str, Any], template: dict[str, Any] | None) -> Any:
    cron_file = tmp_path / "cronworkflow.yaml"
    cron_file.write_text(yaml.safe_dump(cron))
    args = [str(binary), "-cron", str(cron_file), "-time", str(SCHEDULED)]
    if template is not None:
        template_file = tmp_path / "workflowtemplate.yaml"
        template_file.write_text(yaml.safe_dump(template))
        args += ["-template", str(template_file)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def inline_cron() -> dict[str, Any]:
    """The CronWorkflow as it was before: the template's spec inline in ``workflowSpec``."""
    cron = fleet_cron_manifest()
    template = fleet_workflow_template_manifest()
    cron["spec"]["workflowSpec"] = template["spec"]
    return cron


SCHEDULES = [FleetSchedule(), FleetSchedule(selector="region=eu-west-1,tier in (gold,silver)")]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["all", "selector"])
def test_the_scheduled_workflow_runs_under_strict(
    strictcheck: Path, tmp_path: Path, schedule: FleetSchedule
) -> None:
    settings = WorkflowSettings()
    report = run(
        strictcheck,
        tmp_path,
        fleet_cron_manifest(settings, schedule),
        fleet_workflow_template_manifest(settings),
    )
    assert "error" not in report, report
    name = f"{schedule.name}-{SCHEDULED}"
    assert report["workflow"] == name
    expected = [a.replace("{{workflow.name}}", name) for a in schedule.fleet_args(settings)]
    assert report["containers"] == [{"template": "fleet", "args": expected}]
    assert report["serviceAccountName"] == settings.orchestrator_service_account
    assert report["securityContext"]["runAsUser"] == ARGOEXEC_UID
    assert report["securityContext"]["runAsNonRoot"] is True


def test_the_inline_cron_workflow_is_refused(strictcheck: Path, tmp_path: Path) -> None:
    report = run(strictcheck, tmp_path, inline_cron(), None)
    assert report["step"] == "strict"
    assert "must use workflowTemplateRef" in report["error"]


def test_a_reference_that_also_overrides_the_account_is_refused(
    strictcheck: Path, tmp_path: Path
) -> None:
    cron = fleet_cron_manifest()
    cron["spec"]["workflowSpec"]["serviceAccountName"] = "tenant-lifecycle-bridge"
    report = run(strictcheck, tmp_path, cron, fleet_workflow_template_manifest())
    assert report["step"] == "strict"
    assert "ServiceAccountName" in report["error"]


def test_a_reference_to_a_missing_template_is_refused(strictcheck: Path, tmp_path: Path) -> None:
    report = run(strictcheck, tmp_path, fleet_cron_manifest(), None)
    assert report["step"] == "validate cron workflow"
    assert "tenant-lifecycle-fleet" in report["error"]


def test_selector_values_stay_one_argument_through_argo_s_expressions(
    strictcheck: Path, tmp_path: Path
) -> None:
    hostile = "a'b\"c} --engine=local {{workflow.name}}"
    cron = fleet_cron_manifest(None, FleetSchedule(selector=hostile))
    report = run(strictcheck, tmp_path, cron, fleet_workflow_template_manifest())
    assert "error" not in report, report
    (container,) = report["containers"]
    assert container["args"][1] == f"--selector={hostile}"
