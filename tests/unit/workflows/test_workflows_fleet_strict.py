"""The scheduled fleet under ``templateReferencing: Strict``: the CronWorkflow only references the
reviewed dispatcher WorkflowTemplate, and what a submitter could change is nothing that matters.

The Strict allow-list is read from the pinned Argo module's source (``workflow/util/merge.go``,
the fields a Workflow that references a template may still set), so the check follows the
version the project is tested against.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import main
from testbed import BuildError
from testbed import argo as pinned_argo
from tests.fixtures.argo_schemas import ArgoSchemas
from workflows.fleet_cron import (
    ARGOEXEC_UID,
    FLEET_TEMPLATE_NAME,
    SELECTION_ARG,
    FleetSchedule,
    FleetTemplate,
    fleet_cron_manifest,
    fleet_workflow_template_manifest,
)
from workflows.install import HISTORY_SECRET, HISTORY_SECRET_KEY, PRODUCT_UID
from workflows.settings import WorkflowSettings

SCHEDULES = [
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
]
IDS = ["nightly-backup-all", "weekly-upsert-selected"]


@functools.cache
def _argo_module() -> Path:
    try:
        return pinned_argo.module_dir()
    except BuildError as exc:
        pytest.fail(f"the pinned Argo module is not available: {exc}", pytrace=False)


@functools.cache
def strict_allow_list() -> frozenset[str]:
    """JSON names of the WorkflowSpec fields Strict lets a referencing Workflow set."""
    module = _argo_module()
    merge = (module / "workflow" / "util" / "merge.go").read_text(encoding="utf-8")
    block = re.search(r"allowedUserOverrideFields = map\[string\]bool\{(.*?)\n\}", merge, re.S)
    assert block, "allowedUserOverrideFields not found in workflow/util/merge.go"
    go_names = set(re.findall(r'"(\w+)":\s*true', block.group(1)))
    types = (module / "pkg" / "apis" / "workflow" / "v1alpha1" / "workflow_types.go").read_text(
        encoding="utf-8"
    )
    spec = re.search(r"^type WorkflowSpec struct \{\n(.*?)^\}", types, re.S | re.M)
    assert spec, "type WorkflowSpec not found in workflow_types.go"
    json_names = dict(re.findall(r'^\t(\w+) [^\n]*?json:"(\w+)', spec.group(1), re.M))
    assert go_names <= set(json_names), go_names - set(json_names)
    return frozenset(json_names[name] for name in go_names)


def test_the_allow_list_is_read_and_keeps_the_template_s_security_out_of_reach() -> None:
    allowed = strict_allow_list()
    assert {"arguments", "workflowTemplateRef", "activeDeadlineSeconds", "podGC"} <= allowed
    # What the old inline CronWorkflow set, and Strict refuses from a submitter.
    for field in ("templates", "serviceAccountName", "securityContext", "podMetadata"):
        assert field not in allowed, field


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_the_cron_workflow_only_references_the_template(schedule: FleetSchedule) -> None:
    spec = fleet_cron_manifest(WorkflowSettings(), schedule)["spec"]
    workflow_spec = spec["workflowSpec"]
    assert set(workflow_spec) == {"workflowTemplateRef", "arguments"}
    assert set(workflow_spec) <= strict_allow_list()
    assert workflow_spec["workflowTemplateRef"] == {"name": FLEET_TEMPLATE_NAME}
    # The scheduling safety stays on the CronWorkflow itself.
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 3600
    assert spec["schedules"] == [schedule.schedule]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_the_cron_arguments_are_the_template_parameters(schedule: FleetSchedule) -> None:
    template = fleet_workflow_template_manifest()
    declared = [p["name"] for p in template["spec"]["arguments"]["parameters"]]
    passed = fleet_cron_manifest(WorkflowSettings(), schedule)["spec"]["workflowSpec"]
    assert [p["name"] for p in passed["arguments"]["parameters"]] == declared
    # Every parameter has a default: the template also runs on its own (argo submit --from).
    assert all("value" in p for p in template["spec"]["arguments"]["parameters"])


def test_the_template_holds_what_strict_keeps_from_the_submitter() -> None:
    settings = WorkflowSettings()
    spec = fleet_workflow_template_manifest(settings)["spec"]
    assert spec["serviceAccountName"] == settings.orchestrator_service_account
    assert spec["activeDeadlineSeconds"] == FleetTemplate().active_deadline_seconds
    (dispatcher,) = spec["templates"]
    assert dispatcher["retryStrategy"] == {"limit": 2, "retryPolicy": "Always"}
    container = dispatcher["container"]
    assert container["command"] == ["tenantctl"]
    assert container["image"] == settings.image
    (env,) = container["env"]
    assert env == {
        "name": "TENANTCTL_STORE",
        "valueFrom": {"secretKeyRef": {"name": HISTORY_SECRET, "key": HISTORY_SECRET_KEY}},
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_argo_s_executor_containers_can_start_under_run_as_non_root() -> None:
    # argoexec's image has no USER (root): runAsNonRoot without a uid makes the kubelet refuse
    # Argo's init and wait containers. The pod runs them as Argo's non-root uid, the dispatcher
    # as the product image's user.
    spec = fleet_workflow_template_manifest()["spec"]
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": ARGOEXEC_UID,
        "runAsGroup": ARGOEXEC_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    context = spec["templates"][0]["container"]["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (PRODUCT_UID, PRODUCT_UID)
    assert context["runAsNonRoot"] is True
    assert context["allowPrivilegeEscalation"] is False


def test_the_template_passes_the_upstream_schemas(argo_schemas: ArgoSchemas) -> None:
    manifest = fleet_workflow_template_manifest()
    assert argo_schemas.errors("WorkflowTemplate", manifest) == []
    manifest["spec"]["serviceAcountName"] = manifest["spec"].pop("serviceAccountName")
    errors = argo_schemas.errors("WorkflowTemplate", manifest)
    assert any("'serviceAcountName' was unexpected" in e for e in errors), errors


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_the_cron_workflow_passes_the_upstream_schemas(
    argo_schemas: ArgoSchemas, schedule: FleetSchedule
) -> None:
    assert argo_schemas.errors("CronWorkflow", fleet_cron_manifest(None, schedule)) == []


def resolved_args(arguments: dict[str, str], workflow_name: str) -> list[str]:
    """The dispatcher's arguments once Argo substituted the Workflow's parameters.

    ``{{workflow.parameters.NAME}}`` and ``{{workflow.name}}`` are plain substitutions; the one
    expression (:data:`~workflows.fleet_cron.SELECTION_ARG`) is evaluated as Argo's
    ``util/template`` evaluates it (checked against the pinned module's code when it was
    written): ``--all`` for an empty selector, else ``--selector=`` and the selector.
    """
    template = fleet_workflow_template_manifest()
    values = {
        p["name"]: p["value"] for p in template["spec"]["arguments"]["parameters"]
    } | arguments
    resolved = []
    for arg in template["spec"]["templates"][0]["container"]["args"]:
        if arg == SELECTION_ARG:
            resolved.append(f"--selector={values['selector']}" if values["selector"] else "--all")
            continue
        assert "{{=" not in arg, f"an expression the test does not know: {arg}"
        arg = arg.replace("{{workflow.name}}", workflow_name)
        arg = re.sub(r"\{\{workflow\.parameters\.([\w-]+)\}\}", lambda m: values[m[1]], arg)
        assert "{{" not in arg, arg
        resolved.append(arg)
    return resolved


def _parse(args: list[str]) -> dict[str, Any]:
    command = main.commands[args[0]]
    ctx = command.make_context(args[0], list(args[1:]), parent=None)  # raises on a bad flag
    return dict(ctx.params)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_the_scheduled_run_is_the_schedule_s_command_line(
    schedule: FleetSchedule, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TENANTCTL_STORE", raising=False)
    arguments = fleet_cron_manifest(WorkflowSettings(), schedule)["spec"]["workflowSpec"]
    name = f"{schedule.name}-1767225600"  # how Argo names a scheduled Workflow
    args = resolved_args(
        {p["name"]: p["value"] for p in arguments["arguments"]["parameters"]}, name
    )
    assert args == [
        a.replace("{{workflow.name}}", name) for a in schedule.fleet_args(WorkflowSettings())
    ]
    params = _parse(args)
    assert params["operation"] == schedule.operation
    assert params["all_tenants"] is (schedule.selector is None)
    assert params["selector"] == schedule.selector
    assert params["resume"] == name
    assert params["engine"] == "argo"
    assert params["argo_namespace"] == WorkflowSettings().workflow_namespace
    assert (params["concurrency"], params["canary"]) == (schedule.concurrency, schedule.canary)
    assert params["max_failures"] == schedule.max_failures
    assert params["inventory"] == schedule.inventory


def test_no_parameter_value_becomes_a_flag_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whoever may create Workflows chooses the arguments; they must stay values.
    monkeypatch.delenv("TENANTCTL_STORE", raising=False)
    hostile = {
        "operation": "--store=postgresql://attacker@evil/db",
        "selector": "--engine=local",
        "inventory": "--dry-run",
        "max-failures": "--kubeconfig=/etc/passwd",
    }
    params = _parse(resolved_args(hostile, "fleet-x"))
    assert params["operation"] == hostile["operation"]  # refused by tenantctl as an operation
    assert params["selector"] == hostile["selector"]
    assert params["inventory"] == hostile["inventory"]
    assert params["max_failures"] == hostile["max-failures"]
    assert params["store"] is None
    assert params["engine"] == "argo"
    assert params["dry_run"] is False
    assert params["kubeconfig"] is None
