"""The scheduled fleet CronWorkflow: valid against the upstream CRD and schema (strict), safe
settings, and a command line the real ``tenantctl fleet`` accepts."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from orchestrator.cli import main
from tests.fixtures.argo_schemas import schemas_dir, strict
from workflows.fleet_cron import (
    FleetSchedule,
    fleet_cron_manifest,
    fleet_workflow_template_manifest,
)
from workflows.settings import WorkflowSettings

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@pytest.fixture(scope="module")
def cron_validators() -> list[tuple[str, Draft202012Validator]]:
    root = schemas_dir()
    crd = yaml.load(
        (root / "argo-workflows" / "argoproj.io_cronworkflows.yaml").read_text(), Loader=_LOADER
    )
    defs = json.loads((root / "argo-workflows" / "schema.json").read_text())["definitions"]
    for name in (  # README pitfall 3: IntOrString/Quantity typed as string in schema.json
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
    ):
        defs[name] = {"type": ["integer", "string"]}
    ref = {"$ref": "#/definitions/io.argoproj.workflow.v1alpha1.CronWorkflow", "definitions": defs}
    return [
        (
            "CRD strict",
            Draft202012Validator(strict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])),
        ),
        ("schema.json strict", Draft202012Validator(strict(ref))),
    ]


def errors(validators: list[tuple[str, Draft202012Validator]], manifest: Any) -> list[str]:
    return [
        f"{label}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for label, validator in validators
        for e in validator.iter_errors(manifest)
    ]


@pytest.mark.parametrize(
    "schedule",
    [
        FleetSchedule(),
        FleetSchedule(
            name="fleet-weekly-upsert-eu",
            operation="lifecycle.upsert",
            schedule="30 3 * * 0",
            timezone="Europe/Brussels",
            selector="region=eu-west-1,tier in (gold,silver)",
            canary=2,
            concurrency=5,
            max_failures="3",
        ),
    ],
)
def test_the_cron_workflow_passes_the_crd_strictly(
    cron_validators: list[tuple[str, Draft202012Validator]], schedule: FleetSchedule
) -> None:
    manifest = fleet_cron_manifest(WorkflowSettings(), schedule)
    assert errors(cron_validators, manifest) == []
    assert manifest["kind"] == "CronWorkflow"
    spec = manifest["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["schedules"] == [schedule.schedule]
    assert spec["timezone"] == schedule.timezone


def test_strict_validation_catches_a_typo(
    cron_validators: list[tuple[str, Draft202012Validator]],
) -> None:
    manifest = copy.deepcopy(fleet_cron_manifest())
    manifest["spec"]["concurrencyPolicyy"] = manifest["spec"].pop("concurrencyPolicy")
    found = errors(cron_validators, manifest)
    assert any("'concurrencyPolicyy' was unexpected" in e for e in found), found


def test_the_nightly_backup_runs_a_resumable_fleet() -> None:
    # The CronWorkflow only references the dispatcher template (templateReferencing: Strict);
    # the command line, retries and the history Secret are the template's.
    assert set(fleet_cron_manifest()["spec"]["workflowSpec"]) == {
        "workflowTemplateRef",
        "arguments",
    }
    (template,) = fleet_workflow_template_manifest()["spec"]["templates"]
    args = FleetSchedule().fleet_args(WorkflowSettings())
    assert template["container"]["command"] == ["tenantctl"]
    assert args[:2] == ["fleet", "--all"]
    assert args[-2:] == ["--", "lifecycle.backup"]
    assert args[args.index("--resume") + 1] == "{{workflow.name}}"
    assert args[args.index("--engine") + 1] == "argo"
    assert template["retryStrategy"]["limit"] == 2
    (env,) = template["container"]["env"]
    assert env["name"] == "TENANTCTL_STORE"
    assert "secretKeyRef" in env["valueFrom"]  # the database password never sits in the spec


@pytest.mark.parametrize("schedule", [FleetSchedule(), FleetSchedule(selector="tier=gold")])
def test_the_command_line_is_one_tenantctl_accepts(schedule: FleetSchedule) -> None:
    args = schedule.fleet_args(WorkflowSettings())
    command = main.commands[args[0]]
    ctx = command.make_context(args[0], list(args[1:]), parent=None)  # raises on a bad flag
    assert ctx.params["operation"] == schedule.operation
    assert ctx.params["engine"] == "argo"
    assert ctx.params["resume"] == "{{workflow.name}}"
