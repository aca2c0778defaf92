"""``tenantctl validate`` and ``tenantctl plan`` as a team uses them: each acceptance case of
the contract with its message naming the file, the object and the field; never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "lifecycle-jobs"
# The contract engineer's example teams (other teams, e.g. archive/, are tested by their owners).
TEAMS = [str(EXAMPLES / team) for team in ("team-billing", "team-catalog", "team-search")]
P = "tenant-lifecycle.dev"


def job_yaml(
    name: str = "schema",
    *,
    namespace: str = "team-a",
    label: str | None = '"true"',
    operations: str | None = "lifecycle.upsert",
    extra_annotations: str = "",
    suspend: str | None = "true",
) -> str:
    lines = ["apiVersion: batch/v1", "kind: Job", "metadata:", f"  name: {name}"]
    lines.append(f"  namespace: {namespace}")
    if label is not None:
        lines += ["  labels:", f"    {P}/enabled: {label}"]
    annotations = []
    if operations is not None:
        annotations.append(f"    {P}/operations: {operations}")
    annotations += [line for line in extra_annotations.splitlines() if line]
    if annotations:
        lines += ["  annotations:", *annotations]
    lines.append("spec:")
    if suspend is not None:
        lines.append(f"  suspend: {suspend}")
    lines += [
        "  template:",
        "    spec:",
        "      restartPolicy: Never",
        "      containers: [{name: main, image: busybox, command: ['true']}]",
    ]
    return "\n".join(lines) + "\n"


def run(*args: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def write(tmp_path: Path, text: str, name: str = "jobs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def validate_fails_with(path: Path, *expected: str) -> str:
    """Run validate, expect exit 1, and find one problem line containing every expected part."""
    result = run("validate", str(path))
    assert result.exit_code == 1, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    matching = [line for line in lines if all(part in line for part in expected)]
    assert matching, f"no problem line with {expected} in:\n{result.output}"
    return matching[0]


# ------------------------------------------------------------------ acceptance cases


def test_examples_validate(tmp_path: Path) -> None:
    result = run("validate", str(EXAMPLES))
    assert result.exit_code == 0, result.output
    assert "OK: every lifecycle Job is valid" in result.output
    assert ", 0 invalid, 0 not taking part" in result.output
    for name in ("catalog-schema", "catalog-reindex", "search-index", "billing-account"):
        (line,) = [line for line in result.output.splitlines() if f"/{name} " in line]
        assert line.startswith("ok ")
    result = run("validate", *TEAMS)
    assert result.exit_code == 0, result.output
    assert "5 Jobs in 9 files: 5 valid, 0 invalid" in result.output
    assert "ignored 3 ConfigMap, 3 Kustomization, 3 Namespace" in result.output


def test_missing_suspend(tmp_path: Path) -> None:
    path = write(tmp_path, job_yaml(suspend=None))
    line = validate_fails_with(path, f"{path}:1", "Job team-a/schema", "spec.suspend:")
    assert "spec.suspend is missing" in line
    assert "fix: set spec.suspend: true" in line


def test_wave_not_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path, job_yaml(extra_annotations=f'    {P}/wave: "early"'))
    validate_fails_with(
        path,
        f"{path}:1: Job team-a/schema: metadata.annotations[{P}/wave]:",
        "wave 'early' is not an integer",
    )


def test_unknown_delete_policy(tmp_path: Path) -> None:
    path = write(tmp_path, job_yaml(extra_annotations=f"    {P}/delete-policy: sometimes"))
    validate_fails_with(
        path,
        f"{path}:1: Job team-a/schema: metadata.annotations[{P}/delete-policy]:",
        "unknown delete-policy 'sometimes'; expected one of succeeded, always, never",
    )


def test_unknown_on_failure(tmp_path: Path) -> None:
    path = write(tmp_path, job_yaml(extra_annotations=f"    {P}/on-failure: retry"))
    validate_fails_with(
        path,
        f"{path}:1: Job team-a/schema: metadata.annotations[{P}/on-failure]:",
        "unknown on-failure 'retry'; expected one of abort, continue",
    )


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ('"lifecycle.upsert lifecycle.resume"', "contains whitespace"),
        ("upsert", "operation name 'upsert' has no dot"),
        ('""', "the operations list is empty"),
    ],
)
def test_operation_names(tmp_path: Path, operations: str, message: str) -> None:
    path = write(tmp_path, job_yaml(operations=operations))
    validate_fails_with(
        path, f"{path}:1: Job team-a/schema: metadata.annotations[{P}/operations]:", message
    )


def test_label_without_annotation(tmp_path: Path) -> None:
    path = write(tmp_path, job_yaml(operations=None))
    validate_fails_with(
        path,
        f"{path}:1: Job team-a/schema: metadata.annotations[{P}/operations]:",
        "has the label tenant-lifecycle.dev/enabled but no operations annotation",
    )


def test_annotation_without_label(tmp_path: Path) -> None:
    path = write(tmp_path, job_yaml(label=None))
    validate_fails_with(
        path,
        f"{path}:1: Job team-a/schema: metadata.labels[{P}/enabled]:",
        "not the label tenant-lifecycle.dev/enabled",
    )


def test_non_job_kinds_are_ignored_and_counted(tmp_path: Path) -> None:
    text = (
        job_yaml()
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: programs, namespace: team-a}\n"
        + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
    )
    result = run("validate", str(write(tmp_path, text)))
    assert result.exit_code == 0, result.output
    assert "ignored 1 ConfigMap, 1 Deployment" in result.output
    data = json.loads(run("validate", "-o", "json", str(tmp_path)).stdout)
    assert data["summary"]["ignored"] == {"ConfigMap": 1, "Deployment": 1}


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, job_yaml() + "---\nkind: Job\nmetadata:\n  name: 'unterminated\n")
    line = validate_fails_with(path, f"{path}:", "file: syntax: invalid YAML")
    assert "fix: fix the YAML syntax" in line


def test_job_listed_twice(tmp_path: Path) -> None:
    first = write(tmp_path, job_yaml(), "a.yaml")
    second = write(tmp_path, job_yaml(), "b.yaml")
    validate_fails_with(
        tmp_path,
        f"{second}:1: Job team-a/schema: metadata.name:",
        f"listed twice: at {first}:1 and at {second}:1",
    )


def test_all_problems_of_a_job_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        job_yaml(
            operations="upsert",
            suspend="false",
            extra_annotations=f'    {P}/wave: "x"\n    {P}/on-failure: never',
        ),
    )
    result = run("validate", "-o", "json", str(path))
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False
    fields = [p["field"] for p in data["problems"]]
    assert fields == [
        f"metadata.annotations[{P}/operations]",
        f"metadata.annotations[{P}/wave]",
        f"metadata.annotations[{P}/on-failure]",
        "spec.suspend",
    ]
    assert {p["source"] for p in data["problems"]} == {f"{path}:1"}
    assert {p["object"] for p in data["problems"]} == {"Job team-a/schema"}
    assert data["jobs"][0]["status"] == "invalid"


# ------------------------------------------------------------------ validate: edges


def test_no_lifecycle_job_fails_unless_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    result = run("validate", str(path))
    assert result.exit_code == 1
    assert "no lifecycle Job found" in result.output
    assert run("validate", "--allow-empty", str(path)).exit_code == 0


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "error: no such file or directory" in result.stderr


def test_bad_prefix_is_a_usage_error(tmp_path: Path) -> None:
    result = run("validate", "--prefix", "Not A Prefix", str(EXAMPLES))
    assert result.exit_code == 2
    assert "invalid contract prefix" in result.stderr


def test_custom_prefix_and_legacy_key(tmp_path: Path) -> None:
    legacy = "    collibra.com/tenant.lifecycle: lifecycle.upsert,lifecycle.migrate-in"
    text = job_yaml(operations=None, extra_annotations=legacy).replace(P, "acme.io")
    path = write(tmp_path, text)
    assert run("validate", str(path)).exit_code == 1  # no default-prefix Job: empty
    args = ["--prefix", "acme.io", "--legacy-key", "collibra.com/tenant.lifecycle", str(path)]
    result = run("validate", *args)
    assert result.exit_code == 0, result.output
    plan = json.loads(
        run("plan", "--operation", "lifecycle.migrate-in", "-o", "json", *args).stdout
    )
    assert plan["waves"][0]["jobs"][0]["name"] == "schema"


def test_env_var_sets_the_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["validate", str(EXAMPLES)], env={"TENANTCTL_VALIDATE_OUTPUT": "json"}
    )
    assert json.loads(result.stdout)["valid"] is True


@pytest.mark.parametrize("variable", ["TENANTCTL_PREFIX", "TENANTCTL_VALIDATE_PREFIX"])
def test_prefix_from_the_environment(tmp_path: Path, variable: str) -> None:
    path = write(tmp_path, job_yaml().replace(P, "acme.io"))
    result = CliRunner().invoke(main, ["validate", str(path)], env={variable: "acme.io"})
    assert result.exit_code == 0, result.output
    assert "1 valid" in result.output


def test_stdin(tmp_path: Path) -> None:
    result = run("validate", "-", stdin=job_yaml(suspend="false"))
    assert result.exit_code == 1
    assert "<stdin>:1: Job team-a/schema: spec.suspend:" in result.output


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_help_has_examples(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert f"tenantctl {command}" in result.output


# ------------------------------------------------------------------ plan


def test_plan_text_for_the_examples() -> None:
    result = run("plan", "--operation", "lifecycle.upsert", *TEAMS)
    assert result.exit_code == 0, result.output
    rows = [
        line.split() for line in result.output.splitlines() if line[:2].strip() in {"-1", "0", "1"}
    ]
    assert [(r[0], r[1]) for r in rows] == [
        ("-1", "team-catalog/catalog-schema"),
        ("0", "team-search/search-index"),
        ("1", "team-billing/billing-account"),
        ("1", "team-billing/billing-notify"),
    ]
    assert "lifecycle.upsert: 3 waves, 4 jobs" in result.output


def plan_json(*args: str) -> dict[str, Any]:
    result = run("plan", "-o", "json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_plan_json_with_environment_filter(tmp_path: Path) -> None:
    env = write(tmp_path, "applications: [search]\n", "env.yaml")
    data = plan_json(
        "--operation",
        "lifecycle.upsert",
        "--environment",
        str(env),
        "--tenant-env-id",
        "t1",
        *TEAMS,
    )
    assert data["operation"] == "lifecycle.upsert"
    assert data["tenantEnvId"] == "t1"
    assert [(w["wave"], [j["name"] for j in w["jobs"]]) for w in data["waves"]] == [
        (0, ["search-index"]),
        (1, ["billing-account", "billing-notify"]),
    ]
    assert data["waves"][1]["jobs"][1] == {
        "namespace": "team-billing",
        "name": "billing-notify",
        "wave": 1,
        "onFailure": "continue",
        "deletePolicy": "always",
    }
    assert [s["name"] for s in data["skipped"]] == ["catalog-schema"]
    assert data["rejected"] == []


def test_plan_accepts_a_request_shaped_environment(tmp_path: Path) -> None:
    env = write(tmp_path, "tenantEnvironment:\n  applications: [catalog]\n", "req.yaml")
    data = plan_json("--operation", "lifecycle.upsert", "--environment", str(env), *TEAMS)
    names = [j["name"] for w in data["waves"] for j in w["jobs"]]
    assert names == ["catalog-schema", "billing-account", "billing-notify"]


def test_plan_team_admin_operation() -> None:
    data = plan_json("--operation", "catalog.reindex", *TEAMS)
    assert [[j["name"] for j in w["jobs"]] for w in data["waves"]] == [["catalog-reindex"]]


def test_plan_lists_rejected_jobs(tmp_path: Path) -> None:
    write(tmp_path, job_yaml("good"), "a.yaml")
    write(tmp_path, job_yaml("broken", suspend="false"), "b.yaml")
    data = plan_json("--operation", "lifecycle.upsert", str(tmp_path))
    assert [j["name"] for j in data["waves"][0]["jobs"]] == ["good"]
    (rejected,) = data["rejected"]
    assert rejected["name"] == "broken"
    assert rejected["errors"][0].startswith("spec.suspend: spec.suspend is false")
    strict = run("plan", "--strict", "--operation", "lifecycle.upsert", str(tmp_path))
    assert strict.exit_code == 1
    assert "rejected (--strict)" in strict.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--operation", "upsert"], "--operation: operation name 'upsert' has no dot"),
        (["--operation", "lifecycle.nope"], "unknown operation 'lifecycle.nope'"),
        (["--operation", "lifecycle.upsert", "--environment", "/nope.yaml"], "cannot read"),
    ],
)
def test_plan_usage_errors(args: list[str], message: str) -> None:
    result = run("plan", *args, str(EXAMPLES))
    assert result.exit_code == 2
    assert message in result.stderr


def test_plan_bad_environment_file(tmp_path: Path) -> None:
    env = write(tmp_path, "applications: catalog\n", "env.yaml")
    result = run(
        "plan", "--operation", "lifecycle.upsert", "--environment", str(env), str(EXAMPLES)
    )
    assert result.exit_code == 2
    assert "applications must be a list" in result.stderr


def test_plan_with_unreadable_yaml_prints_plan_and_fails(tmp_path: Path) -> None:
    write(tmp_path, job_yaml("good"), "a.yaml")
    write(tmp_path, "kind: [\n", "b.yaml")
    result = run("plan", "-o", "json", "--operation", "lifecycle.upsert", str(tmp_path))
    assert result.exit_code == 1
    assert json.loads(result.stdout)["waves"][0]["jobs"][0]["name"] == "good"
    assert "the plan may be missing Jobs" in result.stderr


# ------------------------------------------------------------------ the installed command


def test_installed_tenantctl_validates_the_examples() -> None:
    tenantctl = Path(sys.executable).with_name("tenantctl")
    completed = subprocess.run(
        [str(tenantctl), "validate", "lifecycle-jobs/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "OK: every lifecycle Job is valid" in completed.stdout
    assert "Traceback" not in completed.stdout + completed.stderr


def test_examples_are_valid_kubernetes_objects() -> None:
    """What `kubectl apply` would accept (the upstream OpenAPI schema, unknown fields rejected)."""
    import kubernetes_validate

    from bridge.manifests import load_objects

    objects = load_objects(TEAMS)
    assert sorted({o["kind"] for o in objects}) == ["ConfigMap", "Job", "Namespace"]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_kustomize_output_validates_from_stdin() -> None:
    kustomized = subprocess.run(
        ["kubectl", "kustomize", str(EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    result = run("validate", "-", stdin=kustomized)
    assert result.exit_code == 0, result.output
    assert "<stdin>:" in result.output
    for name in ("catalog-schema", "catalog-reindex", "search-index", "billing-account"):
        assert f"/{name} " in result.output
