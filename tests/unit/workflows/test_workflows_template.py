"""The WorkflowTemplate's logic, interpreted from the rendered YAML by workflows.emulator.

Schemas check structure only (README pitfall 6); these tests check what the structure does:
wave order, abort/continue, infrastructure-only retries, node names, labels, mutex, exit handler,
and that a 2,000-job plan fits Argo's 256 kB output limit and fans out into 2,000 nodes.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.contract import OnFailure, Participant
from bridge.planner import MAX_PLAN_BYTES, build_plan, plan_size
from workflows.emulator import (
    EXPRESSIONS,
    PATTERNS,
    ContainerCall,
    ContainerResult,
    EmulatedRun,
    EmulationError,
    Emulator,
)
from workflows.template import PLAN_PATH, RESULT_PATH

REPO = Path(__file__).resolve().parents[3]
TEMPLATE: dict[str, Any] = yaml.safe_load(
    (REPO / "workflows" / "rendered" / "workflowtemplate.yaml").read_text()
)
PARAMS = {
    "operation": "lifecycle.upsert",
    "tenant-env-id": "t-799a",
    "batch-operation-id": "b-1",
    "environment": "applications: [catalog]\n",
}


def _plan(*jobs: tuple[str, str, int, str]) -> dict[str, Any]:
    participants = [
        Participant(ns, name, ("lifecycle.upsert",), wave=wave, on_failure=OnFailure(on_failure))
        for ns, name, wave, on_failure in jobs
    ]
    return build_plan(participants, operation="lifecycle.upsert", tenant_env_id="t-799a").to_json()


EXAMPLE_PLAN = _plan(
    ("team-a", "schema", -1, "abort"),
    ("team-a", "seed", 0, "abort"),
    ("team-b", "cache", 0, "continue"),
    ("team-c", "index", 1, "abort"),
)


class FakeRunner:
    """Plays the containers: discovery returns ``plan``, bridges exit with scripted codes."""

    def __init__(self, plan: Mapping[str, Any], exits: Mapping[str, list[int]] | None = None):
        self.plan = json.dumps(plan, separators=(",", ":"))
        self.exits = {k: list(v) for k, v in (exits or {}).items()}
        self.calls: list[ContainerCall] = []

    def __call__(self, call: ContainerCall) -> ContainerResult:
        self.calls.append(call)
        argv = call.argv
        if call.template == "discover":
            return ContainerResult(0, {PLAN_PATH: self.plan})
        if call.template == "bridge":
            key = f"{argv[argv.index('--namespace') + 1]}/{argv[argv.index('--job') + 1]}"
            codes = self.exits.get(key) or [0]
            code = codes.pop(0) if len(codes) > 1 else codes[0]
            if code == 75:  # the bridge gave up before writing a result
                return ContainerResult(code)
            status = "succeeded" if code == 0 else "failed"
            namespace, job = key.split("/")
            result = {"namespace": namespace, "job": job, "status": status}
            return ContainerResult(code, {RESULT_PATH: json.dumps(result)})
        return ContainerResult(0)

    def bridged(self) -> list[str]:
        return [
            f"{c.argv[c.argv.index('--namespace') + 1]}/{c.argv[c.argv.index('--job') + 1]}"
            for c in self.calls
            if c.template == "bridge"
        ]


def _run(runner: FakeRunner, **params: str) -> EmulatedRun:
    return Emulator(TEMPLATE, parameters={**PARAMS, **params}, runner=runner).run()


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


def test_waves_run_in_order_with_one_named_node_per_job() -> None:
    runner = FakeRunner(EXAMPLE_PLAN)
    run = _run(runner)
    assert run.phase == "Succeeded"
    assert runner.bridged() == ["team-a/schema", "team-a/seed", "team-b/cache", "team-c/index"]
    names = [n.display_name for n in run.containers("bridge")]
    assert names == [
        "abort-on-failure(0:team-a/schema)",
        "abort-on-failure(0:team-a/seed)",
        "continue-on-failure(0:team-b/cache)",
        "abort-on-failure(0:team-c/index)",
    ]
    assert [n.inputs["wave"] for n in run.containers("bridge")] == ["-1", "0", "0", "1"]


def test_discovery_and_bridge_commands_are_exactly_the_cli() -> None:
    runner = FakeRunner(EXAMPLE_PLAN)
    _run(runner, **{"source-batch-operation-id": "b-0"})
    discover = next(c for c in runner.calls if c.template == "discover")
    assert discover.argv == (
        "python", "-m", "bridge", "discover",
        "--operation", "lifecycle.upsert", "--tenant-env-id", "t-799a",
        "--environment", "/tmp/environment.b64", "--inputs-base64", "--output", "/tmp/plan.json",
    )  # fmt: skip
    # Tenant data arrives base64-encoded (Argo never parses it as its own template text); the
    # literal is what Go's base64.StdEncoding (sprig.b64enc) gives for the environment.
    assert discover.input_files == {"/tmp/environment.b64": "YXBwbGljYXRpb25zOiBbY2F0YWxvZ10K"}
    assert discover.service_account == "tenant-lifecycle-discovery"
    bridge = next(c for c in runner.calls if c.template == "bridge")
    assert bridge.argv == (
        "python", "-m", "bridge", "run",
        "--namespace", "team-a", "--job", "schema",
        "--operation", "lifecycle.upsert", "--tenant-env-id", "t-799a",
        "--batch-operation-id", "b-1",
        "--environment", "/tmp/environment.b64", "--changeset", "/tmp/changeset.b64",
        "--inputs-base64",
        "--workflow-name", "lc-emulated", "--workflow-uid", "00000000-0000-0000-0000-000000000000",
        "--source-batch-operation-id", "b-0", "--result", "/tmp/result.json",
    )  # fmt: skip
    assert bridge.input_files == {
        "/tmp/environment.b64": "YXBwbGljYXRpb25zOiBbY2F0YWxvZ10K",
        "/tmp/changeset.b64": "e30=",  # "{}"
    }
    assert bridge.service_account == "tenant-lifecycle-bridge"


def test_failed_abort_job_stops_later_waves_but_finishes_its_own() -> None:
    runner = FakeRunner(EXAMPLE_PLAN, exits={"team-a/seed": [3]})
    run = _run(runner)
    assert run.phase == "Failed"
    # The whole wave 0 ran (failFast: false); wave 1 never started.
    assert runner.bridged() == ["team-a/schema", "team-a/seed", "team-b/cache"]
    seed = next(n for n in run.containers("bridge") if "team-a/seed" in n.name)
    assert (seed.phase, seed.exit_code, seed.attempts) == ("Failed", 3, 1)
    # The exit handler runs either way and is told which workflow to publish.
    publish = [c for c in runner.calls if c.template == "publish-result"]
    assert len(publish) == 1
    assert publish[0].argv == (
        "tenantctl", "publish-result",
        "--workflow", "lc-emulated", "--namespace", "tenant-lifecycle",
        "--workflow-status", "Failed",
    )  # fmt: skip


def test_failed_continue_job_does_not_stop_later_waves() -> None:
    runner = FakeRunner(EXAMPLE_PLAN, exits={"team-b/cache": [1]})
    run = _run(runner)
    assert runner.bridged() == ["team-a/schema", "team-a/seed", "team-b/cache", "team-c/index"]
    assert run.phase == "Succeeded"
    cache = next(n for n in run.containers("bridge") if "team-b/cache" in n.name)
    assert cache.phase == "Failed"
    assert json.loads(cache.outputs["result"])["status"] == "failed"


@pytest.mark.parametrize("code", [1, 2, 3, 143])
def test_job_failures_refusals_and_terminations_are_never_retried(code: int) -> None:
    runner = FakeRunner(EXAMPLE_PLAN, exits={"team-a/schema": [code, 0]})
    run = _run(runner)
    assert runner.bridged().count("team-a/schema") == 1
    assert run.phase == "Failed"


def test_infrastructure_exit_is_retried_until_it_succeeds() -> None:
    runner = FakeRunner(EXAMPLE_PLAN, exits={"team-a/schema": [75, 75, 0]})
    run = _run(runner)
    assert runner.bridged().count("team-a/schema") == 3
    assert run.phase == "Succeeded"
    schema = next(n for n in run.containers("bridge") if "team-a/schema" in n.name)
    assert schema.attempts == 3


def test_infrastructure_retries_are_bounded_and_leave_an_error_result() -> None:
    runner = FakeRunner(EXAMPLE_PLAN, exits={"team-a/schema": [75]})
    run = _run(runner)
    limit = next(t for t in TEMPLATE["spec"]["templates"] if t["name"] == "bridge")[
        "retryStrategy"
    ]["limit"]
    assert runner.bridged().count("team-a/schema") == limit + 1
    assert run.phase == "Failed"
    schema = next(n for n in run.containers("bridge") if "team-a/schema" in n.name)
    # No result file: the output default still names the job, as valid JSON.
    result = json.loads(schema.outputs["result"])
    assert (result["namespace"], result["job"], result["status"]) == ("team-a", "schema", "error")


def test_empty_plan_skips_the_waves() -> None:
    runner = FakeRunner(_plan())
    run = _run(runner)
    assert run.phase == "Succeeded"
    assert runner.bridged() == []
    levels = [n for n in run.nodes if ".waves-p" in n.name]
    assert len(levels) == 6
    assert all(n.phase == "Skipped" for n in levels)


def test_tenant_data_reaches_the_containers_only_base64_encoded() -> None:
    # Argo substitutes a template's text more than once: tenant text placed in it as is would
    # be parsed as Argo's own template ("{{=...}}" evaluated, an unclosed "{{" an error). The
    # template only ever hands it over encoded, by an expression over the parameter.
    rendered = yaml.safe_dump(TEMPLATE)
    for name in ("environment", "changeset"):
        assert f"workflow.parameters.{name}" not in rendered
        assert f"workflow.parameters['{name}']" not in rendered.replace(
            f"sprig.b64enc(workflow.parameters['{name}'])", ""
        )
    environment = "applications: [catalog]\nnote: '{{workflow.name}} {{=1+1}} {{ ünïcode'\n"
    changeset = '{"sql": "select \'{{x}}\'"}'
    runner = FakeRunner(EXAMPLE_PLAN)
    _run(runner, environment=environment, changeset=changeset)
    for call in runner.calls:
        if call.template == "publish-result":
            continue
        decoded = {
            p: base64.b64decode(v, validate=True).decode() for p, v in call.input_files.items()
        }
        assert decoded["/tmp/environment.b64"] == environment, call.node
        if call.template == "bridge":
            assert decoded["/tmp/changeset.b64"] == changeset


def test_labels_and_mutex_come_from_the_parameters() -> None:
    run = _run(FakeRunner(EXAMPLE_PLAN))
    assert run.labels == {
        "tenant-lifecycle.dev/tenant": "t-799a",
        "tenant-lifecycle.dev/operation": "lifecycle.upsert",
        "tenant-lifecycle.dev/batch": "b-1",
    }
    assert run.mutex == "tenant-t-799a"


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
    assert {t["name"] for t in spec["templates"] if "container" in t} == {
        "discover",
        "bridge",
        "publish-result",
    }
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


def test_every_expression_in_the_template_is_one_the_emulator_implements() -> None:
    used = {
        m.group(1).strip()
        for s in _strings(TEMPLATE)
        for m in re.finditer(r"\{\{=(.*?)\}\}(?!\})", s)
    }
    used |= {
        t["retryStrategy"]["expression"]
        for t in TEMPLATE["spec"]["templates"]
        if "expression" in t.get("retryStrategy", {})
    }
    used |= {v["expression"] for v in TEMPLATE["spec"]["workflowMetadata"]["labelsFrom"].values()}
    unknown = {
        e for e in used if e not in EXPRESSIONS and not any(p.fullmatch(e) for p, _ in PATTERNS)
    }
    assert unknown == set()
    assert len(used) >= 10


def test_every_referenced_template_and_input_exists() -> None:
    templates = {t["name"]: t for t in TEMPLATE["spec"]["templates"]}
    assert TEMPLATE["spec"]["entrypoint"] in templates
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


def test_unknown_expression_is_refused() -> None:
    broken = json.loads(json.dumps(TEMPLATE))
    lifecycle = next(t for t in broken["spec"]["templates"] if t["name"] == "lifecycle")
    lifecycle["steps"][1][0]["when"] = "{{=len(workflow.outputs.parameters.plan) > 1}}"
    with pytest.raises(EmulationError, match="not implemented"):
        Emulator(broken, parameters=PARAMS, runner=FakeRunner(EXAMPLE_PLAN)).run()


def test_two_thousand_job_plan_fits_argo_output_limit_and_fans_out() -> None:
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
    runner = FakeRunner(plan.to_json())
    run = _run(runner)
    assert run.phase == "Succeeded"
    assert sorted(runner.bridged()) == sorted(f"{ns}/{n}" for ns, n, _, _ in jobs)
    # The per-wave fan-out lists (workflow parameters too) stay well under the limit.
    waves = [n for n in run.nodes if n.template == "wave-p8"]
    assert len(waves) == 4
    assert max(len(n.inputs["abort-jobs"]) for n in waves) < MAX_PLAN_BYTES


def test_concurrent_emulation_gives_the_same_nodes_and_outcome() -> None:
    exits = {"team-b/cache": [1]}
    sequential = _run(FakeRunner(EXAMPLE_PLAN, exits))
    concurrent = Emulator(
        TEMPLATE, parameters=PARAMS, runner=FakeRunner(EXAMPLE_PLAN, exits), max_workers=4
    ).run()
    assert [(n.name, n.phase) for n in concurrent.nodes] == [
        (n.name, n.phase) for n in sequential.nodes
    ]
    assert concurrent.phase == sequential.phase == "Succeeded"


class ConcurrencyRunner(FakeRunner):
    """Counts how many bridges run at the same time.

    Each bridge waits (up to 5 s) until ``expected`` bridges have been running together, so the
    peak does not depend on thread scheduling: it reaches ``expected`` unless fewer are allowed.
    """

    def __init__(self, plan: Mapping[str, Any], *, expected: int) -> None:
        super().__init__(plan)
        self.expected = expected
        self.changed = threading.Condition()
        self.running = 0
        self.peak = 0

    def __call__(self, call: ContainerCall) -> ContainerResult:
        if call.template != "bridge":
            return super().__call__(call)
        with self.changed:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.peak >= self.expected, timeout=5)
            self.running -= 1
        return super().__call__(call)


WIDE_PLAN = _plan(*[("team-a", f"job-{i}", 0, "abort") for i in range(12)])


@pytest.mark.parametrize(
    ("requested", "level"),
    [("1", 1), ("0", 1), ("3", 2), ("4", 4), ("8", 8), ("31", 16), ("500", 32)],
)
def test_parallelism_parameter_selects_the_highest_level_not_above_it(
    requested: str, level: int
) -> None:
    runner = ConcurrencyRunner(WIDE_PLAN, expected=min(level, 12))
    run = Emulator(
        TEMPLATE, parameters={**PARAMS, "parallelism": requested}, runner=runner, max_workers=16
    ).run()
    assert run.phase == "Succeeded"
    ran = [
        n.name.rsplit(".", 1)[-1]
        for n in run.nodes
        if ".waves-p" in n.name and n.phase != "Skipped"
    ]
    assert ran[0] == f"waves-p{level}"
    assert len(runner.bridged()) == 12
    # Never more bridges of a wave at once than the level (the emulator honours `parallelism`).
    assert runner.peak <= level
    assert runner.peak == min(level, 12)
