"""The rendered WorkflowTemplate's text: what it says, checked without running or interpreting it.

What the template *does* is proven on the real Argo controller (v4.1.4) in ``tests/e2e/argo``;
these fast tests read the committed YAML only: the parameters, the exact commands, the retry
expression, the level conditions, the security context, the references between templates, and
that a 2,000-job plan fits Argo's 256 kB output limit. Schemas are checked in
``test_workflows_schemas.py`` and ``argo lint`` runs on the real tier.

Removed with ``workflows/emulator.py`` (an exact-text -> lambda interpreter of the template),
each replaced by a run on the real controller:

* ``test_waves_run_in_order_with_one_named_node_per_job`` ->
  ``test_argo_lifecycle.py::test_an_upsert_runs_waves_in_order_over_three_team_namespaces``;
* ``test_failed_abort_job_stops_later_waves_but_finishes_its_own`` and
  ``test_failed_continue_job_does_not_stop_later_waves`` ->
  ``test_argo_lifecycle.py::test_a_failed_abort_job_stops_later_waves_and_a_continue_job_does_not``
  (that the rest of a failing job's own wave still runs is ``failFast: false``, checked below);
* ``test_job_failures_refusals_and_terminations_are_never_retried`` ->
  ``test_argo_lifecycle.py::test_a_jobs_own_exit_75_is_final_not_an_infrastructure_retry`` and
  ``test_argo_stop_and_terminate_during_a_wave_leave_no_team_pod`` (the expression's text below);
* ``test_infrastructure_exit_is_retried_until_it_succeeds`` ->
  ``test_argo_template_levels.py::test_a_bridge_infrastructure_exit_75_is_retried_by_argo_until_it_succeeds``;
  ``test_infrastructure_retries_are_bounded_and_leave_an_error_result`` is text below (the bound,
  ``limit: 4``, and the ``NoResult`` default as JSON): running out of retries on the real
  controller takes its whole backoff, 15 + 30 + 60 + 120 s;
* ``test_empty_plan_skips_the_waves`` ->
  ``test_argo_lifecycle.py::test_an_empty_plan_succeeds_with_a_result_listing_no_job``;
* the delivery half of ``test_tenant_data_reaches_the_containers_only_base64_encoded`` ->
  ``test_argo_lifecycle.py::test_tenant_text_that_looks_like_argo_templates_reaches_the_job_unchanged``
  (that the text never names the raw parameters stays below);
* ``test_labels_and_mutex_come_from_the_parameters`` ->
  ``test_argo_template_levels.py`` (the labels on a real Workflow) and
  ``test_argo_lifecycle.py::test_two_requests_for_one_tenant_are_serialized_and_another_tenant_runs_beside``
  (the mutex); their text stays below;
* ``test_parallelism_parameter_selects_the_highest_level_not_above_it`` ->
  ``test_argo_template_levels.py::test_the_parallelism_parameter_selects_the_highest_level_not_above_it``;
* the 2,000-node fan-out half of ``test_two_thousand_job_plan_fits_argo_output_limit_and_fans_out``
  ->
  ``test_argo_lifecycle.py::test_a_large_workflow_whose_nodes_argo_compresses_still_reports_every_job``;
* ``test_every_expression_in_the_template_is_one_the_emulator_implements``,
  ``test_unknown_expression_is_refused`` and
  ``test_concurrent_emulation_gives_the_same_nodes_and_outcome`` tested the interpreter
  itself: Argo now parses and evaluates every expression (every real run, and
  ``test_argo_lifecycle.py::test_argo_lint_passes_every_rendered_manifest_and_fails_a_broken_one``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.__main__ import main as bridge_cli
from bridge.contract import OnFailure, Participant
from bridge.planner import MAX_PLAN_BYTES, build_plan, plan_size
from workflows.settings import WorkflowSettings

REPO = Path(__file__).resolve().parents[3]
TEMPLATE: dict[str, Any] = yaml.safe_load(
    (REPO / "workflows" / "rendered" / "workflowtemplate.yaml").read_text()
)
TEMPLATES: dict[str, dict[str, Any]] = {t["name"]: t for t in TEMPLATE["spec"]["templates"]}
SETTINGS = WorkflowSettings()
PLAN = "workflow.outputs.parameters.plan"
_CONTAINERS = ("discover", "bridge", "publish-result")
_TAG_NAMESPACE = "{{=split(inputs.parameters.job, '/')[0]}}"
_TAG_JOB = "{{=split(inputs.parameters.job, '/')[1]}}"
# What each container's {{...}} tags could become: enough to hand the argv to the real CLI.
_SAMPLE = {
    "{{workflow.parameters.operation}}": "lifecycle.upsert",
    "{{workflow.parameters.tenant-env-id}}": "t-799a",
    "{{workflow.parameters.batch-operation-id}}": "b-1",
    "{{workflow.parameters.source-batch-operation-id}}": "",
    _TAG_NAMESPACE: "team-a",
    _TAG_JOB: "schema",
    "{{workflow.name}}": "lc-b-1",
    "{{workflow.uid}}": "00000000-0000-0000-0000-000000000000",
    "{{workflow.namespace}}": "tenant-lifecycle",
    "{{workflow.status}}": "Failed",
}


def _argv(name: str) -> list[str]:
    container = TEMPLATES[name]["container"]
    return [*container["command"], *container["args"]]


def test_parameters_are_the_agreed_interface() -> None:
    params = {p["name"]: p for p in TEMPLATE["spec"]["arguments"]["parameters"]}
    assert list(params) == [
        "operation",
        "tenant-env-id",
        "batch-operation-id",
        "environment",
        "changeset",
        "parallelism",
        "source-batch-operation-id",
    ]
    # The three identifying parameters have no default: a submission must set them.
    assert [n for n, p in params.items() if "value" not in p] == [
        "operation",
        "tenant-env-id",
        "batch-operation-id",
    ]
    assert params["source-batch-operation-id"]["value"] == ""
    assert params["parallelism"]["value"] == "8"


def test_discovery_bridge_and_exit_handler_commands_are_exactly_these() -> None:
    assert _argv("discover") == [
        "python", "-m", "bridge", "discover",
        "--operation", "{{workflow.parameters.operation}}",
        "--tenant-env-id", "{{workflow.parameters.tenant-env-id}}",
        "--environment", "/tmp/environment.b64", "--inputs-base64", "--output", "/tmp/plan.json",
    ]  # fmt: skip
    assert _argv("bridge") == [
        "python", "-m", "bridge", "run",
        "--namespace", _TAG_NAMESPACE, "--job", _TAG_JOB,
        "--operation", "{{workflow.parameters.operation}}",
        "--tenant-env-id", "{{workflow.parameters.tenant-env-id}}",
        "--batch-operation-id", "{{workflow.parameters.batch-operation-id}}",
        "--environment", "/tmp/environment.b64", "--changeset", "/tmp/changeset.b64",
        "--inputs-base64",
        "--workflow-name", "{{workflow.name}}", "--workflow-uid", "{{workflow.uid}}",
        "--source-batch-operation-id", "{{workflow.parameters.source-batch-operation-id}}",
        "--result", "/tmp/result.json",
    ]  # fmt: skip
    # In the exit handler the Workflow's phase is not final yet: Argo's verdict is passed.
    assert _argv("publish-result") == [
        "tenantctl", "publish-result",
        "--workflow", "{{workflow.name}}", "--namespace", "{{workflow.namespace}}",
        "--workflow-status", "{{workflow.status}}",
    ]  # fmt: skip
    # Tenant data is handed over as files, base64 of the parameter (sprig.b64enc).
    encoded = {
        name: {a["path"]: a["raw"]["data"] for a in TEMPLATES[name]["inputs"]["artifacts"]}
        for name in ("discover", "bridge")
    }
    assert encoded == {
        "discover": {
            "/tmp/environment.b64": "{{=sprig.b64enc(workflow.parameters['environment'])}}"
        },
        "bridge": {
            "/tmp/environment.b64": "{{=sprig.b64enc(workflow.parameters['environment'])}}",
            "/tmp/changeset.b64": "{{=sprig.b64enc(workflow.parameters['changeset'])}}",
        },
    }
    accounts = {name: TEMPLATES[name]["serviceAccountName"] for name in _CONTAINERS}
    assert accounts == {
        "discover": "tenant-lifecycle-discovery",
        "bridge": "tenant-lifecycle-bridge",
        "publish-result": "tenant-lifecycle-orchestrator",
    }


def test_the_commands_parse_with_the_real_clis_and_the_settings_configmap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The settings ConfigMap is envFrom'd into every platform container: its values must be
    # acceptable to the options they set (BRIDGE_*, TENANTCTL_*).
    config = yaml.safe_load((REPO / "deploy" / "base" / "configmaps.yaml").read_text())
    for key, value in config["data"].items():
        monkeypatch.setenv(key, value)
    from orchestrator.cli import main as tenantctl

    for name in _CONTAINERS:
        argv = _argv(name)
        tags = {a for a in argv if "{{" in a}
        assert tags <= set(_SAMPLE), (name, tags - set(_SAMPLE))
        args = [_SAMPLE.get(a, a) for a in argv]
        if name == "publish-result":
            assert args[:2] == ["tenantctl", "publish-result"]
            tenantctl.commands["publish-result"].make_context(args[1], args[2:]).close()
        else:
            assert args[:3] == ["python", "-m", "bridge"]
            bridge_cli.commands[args[3]].make_context(args[3], args[4:]).close()


def test_only_the_bridges_own_exit_75_is_retried_a_bounded_number_of_times() -> None:
    retry = TEMPLATES["bridge"]["retryStrategy"]
    # The bridge exits 75 only for its own infrastructure errors (it maps a job's 75 to 1).
    assert retry["expression"] == "asInt(lastRetry.exitCode) == 75"
    assert retry["retryPolicy"] == "Always"
    assert retry["limit"] == SETTINGS.bridge_retry_limit == 4
    assert retry["backoff"] == {"duration": "15s", "factor": 2, "cap": "5m"}
    # No other container of the run is retried on a job's behalf; the exit handler publishes
    # idempotently, so any failure of it is retried.
    assert "retryStrategy" not in TEMPLATES["discover"]
    assert "expression" not in TEMPLATES["publish-result"]["retryStrategy"]
    # A bridge that wrote no result still names its job (status error, reason NoResult).
    default = TEMPLATES["bridge"]["outputs"]["parameters"][0]["valueFrom"]["default"]
    filled = default.replace(_TAG_NAMESPACE, "team-a").replace(_TAG_JOB, "schema")
    assert json.loads(filled) == {
        "namespace": "team-a", "job": "schema", "status": "error", "exitCode": -1,
        "reason": "NoResult",
        "message": "the bridge exited without writing a result; see the node logs",
    }  # fmt: skip


def test_the_parallelism_levels_partition_the_parameter_and_bound_each_wave() -> None:
    has_waves = f"len(jsonpath({PLAN}, '$.waves')) > 0"
    p = "asInt(workflow.parameters.parallelism)"
    (discover,), levels = TEMPLATES["lifecycle"]["steps"]
    assert discover["template"] == "discover"
    # Exactly one level's `when` holds for any value: [32, ...), [16, 32), ..., (..., 2).
    assert {s["name"]: s["when"] for s in levels} == {
        "waves-p1": f"{{{{={has_waves} && {p} < 2}}}}",
        "waves-p2": f"{{{{={has_waves} && {p} >= 2 && {p} < 4}}}}",
        "waves-p4": f"{{{{={has_waves} && {p} >= 4 && {p} < 8}}}}",
        "waves-p8": f"{{{{={has_waves} && {p} >= 8 && {p} < 16}}}}",
        "waves-p16": f"{{{{={has_waves} && {p} >= 16 && {p} < 32}}}}",
        "waves-p32": f"{{{{={has_waves} && {p} >= 32}}}}",
    }
    assert [s["template"] for s in levels] == [s["name"] for s in levels]
    assert all(s["arguments"]["parameters"] == [{"name": "index", "value": "0"}] for s in levels)
    for level in SETTINGS.parallelism_levels:
        wave = TEMPLATES[f"wave-p{level}"]
        assert wave["parallelism"] == level
        # Every job of a started wave runs even when one of them failed; abort stops later waves.
        assert wave["failFast"] is False
        (group,) = wave["steps"]
        assert [(s["name"], s["template"], s.get("continueOn")) for s in group] == [
            ("abort-on-failure", "bridge", None),
            ("continue-on-failure", "bridge", {"error": True, "failed": True}),
        ]
        waves = TEMPLATES[f"waves-p{level}"]["steps"]
        assert [[s["template"] for s in g] for g in waves] == [
            [f"wave-p{level}"],
            [f"waves-p{level}"],  # the next wave: recursion on the index
        ]


def test_tenant_data_is_never_placed_in_template_text_as_is() -> None:
    # Argo substitutes a template's text more than once: tenant text placed in it as is would
    # be parsed as Argo's own template ("{{=...}}" evaluated, an unclosed "{{" an error). The
    # template only ever hands it over encoded, by an expression over the parameter.
    rendered = yaml.safe_dump(TEMPLATE)
    for name in ("environment", "changeset"):
        assert f"workflow.parameters.{name}" not in rendered
        assert f"workflow.parameters['{name}']" not in rendered.replace(
            f"sprig.b64enc(workflow.parameters['{name}'])", ""
        )


def test_labels_and_mutex_are_taken_from_the_parameters() -> None:
    spec = TEMPLATE["spec"]
    assert spec["workflowMetadata"]["labelsFrom"] == {
        "tenant-lifecycle.dev/tenant": {"expression": "workflow.parameters['tenant-env-id']"},
        "tenant-lifecycle.dev/operation": {"expression": "workflow.parameters['operation']"},
        "tenant-lifecycle.dev/batch": {"expression": "workflow.parameters['batch-operation-id']"},
    }
    assert spec["synchronization"] == {
        "mutexes": [{"name": "tenant-{{workflow.parameters.tenant-env-id}}"}]
    }


def test_deadline_gc_and_ttl_are_set() -> None:
    spec = TEMPLATE["spec"]
    assert spec["activeDeadlineSeconds"] > 0
    assert spec["podGC"]["strategy"] == "OnPodSuccess"
    assert spec["ttlStrategy"]["secondsAfterFailure"] >= spec["ttlStrategy"]["secondsAfterSuccess"]
    assert spec["onExit"] == "publish-result"


def test_pods_run_as_named_non_root_users_and_are_not_evicted_by_the_autoscaler() -> None:
    spec = TEMPLATE["spec"]
    # argoexec's image has no USER (root): under runAsNonRoot the kubelet refuses its init and
    # wait containers unless the pod names a uid. The product containers run as its image's.
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 8737,
        "runAsGroup": 8737,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    containers = [t["container"] for t in spec["templates"] if "container" in t]
    assert {t["name"] for t in spec["templates"] if "container" in t} == set(_CONTAINERS)
    for container in containers:
        context = container["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (10001, 10001)
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
    # A discovery or bridge pod moved mid-operation fails its job.
    annotations = spec["podMetadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def test_every_referenced_template_and_input_exists() -> None:
    templates = TEMPLATES
    assert TEMPLATE["spec"]["entrypoint"] in templates
    assert TEMPLATE["spec"]["onExit"] in templates
    for template in templates.values():
        declared = {p["name"] for p in template.get("inputs", {}).get("parameters", [])}
        used = {
            m.group(1)
            for s in _strings({k: v for k, v in template.items() if k != "steps"})
            for m in re.finditer(r"inputs\.parameters\.([\w-]+)", s)
        }
        assert used <= declared, (template["name"], used - declared)
        for group in template.get("steps", []):
            for step in group:
                target = templates[step["template"]]
                target_inputs = {p["name"] for p in target.get("inputs", {}).get("parameters", [])}
                passed = {p["name"] for p in step.get("arguments", {}).get("parameters", [])}
                assert passed <= target_inputs, (step["name"], passed - target_inputs)
                required = {
                    p["name"]
                    for p in target.get("inputs", {}).get("parameters", [])
                    if "value" not in p and "default" not in p
                }
                assert required <= passed, (step["name"], required - passed)
    # Every workflow parameter referenced is declared; the plan is the discover step's global.
    parameters = {p["name"] for p in TEMPLATE["spec"]["arguments"]["parameters"]}
    referenced = {
        dotted or indexed
        for s in _strings(TEMPLATE["spec"])
        for dotted, indexed in re.findall(r"workflow\.parameters(?:\.([\w-]+)|\['([\w-]+)'\])", s)
    }
    assert referenced == parameters, referenced
    (plan,) = TEMPLATES["discover"]["outputs"]["parameters"]
    assert (plan["globalName"], plan["valueFrom"]["path"]) == ("plan", "/tmp/plan.json")


def test_two_thousand_job_plan_fits_argo_output_limit() -> None:
    # Ordinary names (34 characters for namespace + name): 40 team namespaces, 50 jobs each,
    # over 4 waves, a tenth `continue`. The plan costs about 85 bytes per job plus the names,
    # so 2,000 jobs fit while namespace + name average at most ~45 characters (docs/workflows.md).
    jobs = [
        (
            f"team-{t:02d}-catalog",
            f"lifecycle-{j:02d}-schema",
            j % 4,
            "continue" if j % 10 == 0 else "abort",
        )
        for t in range(40)
        for j in range(50)
    ]
    plan = build_plan(
        [
            Participant(ns, n, ("lifecycle.upsert",), wave=w, on_failure=OnFailure(f))
            for ns, n, w, f in jobs
        ],
        operation="lifecycle.upsert",
        tenant_env_id="799a2c1e-5d1b-4c53-9f0e-3b8f3c7d9a10",
    )
    size = plan_size(plan)
    assert plan.job_count == 2000
    assert size <= MAX_PLAN_BYTES == 256 * 1024, f"{size} bytes"
    # A wave's fan-out list (a ["namespace/job", ...] parameter) stays well under the limit too.
    biggest = max(
        len(json.dumps([f"{j['namespace']}/{j['name']}" for j in wave["jobs"]]))
        for wave in plan.to_json()["waves"]
    )
    assert biggest < MAX_PLAN_BYTES // 4, biggest
