"""check_job: each rule of the contract, with the exact field and a message that says why."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.contract import (
    DEFAULT_PREFIX,
    KNOWN_OPERATIONS,
    STORAGE_OPERATIONS,
    ContractSettings,
    DeletePolicy,
    OnFailure,
    Participant,
    PodFailureRule,
    Problem,
    check_job,
    is_namespace_opted_in,
    is_participant_candidate,
    operation_name_problem,
)
from bridge.errors import UsageError

from .helpers import make_job

S = ContractSettings()
OPS = f"metadata.annotations[{DEFAULT_PREFIX}/operations]"
WAVE = f"metadata.annotations[{DEFAULT_PREFIX}/wave]"
LABEL = f"metadata.labels[{DEFAULT_PREFIX}/enabled]"


def problems_of(job: dict[str, Any], settings: ContractSettings = S) -> list[Problem]:
    participant, problems = check_job(job, settings=settings, source="jobs.yaml:1")
    assert participant is None
    assert problems, "expected at least one problem"
    for problem in problems:
        assert problem.message
        assert problem.fix
        assert problem.source == "jobs.yaml:1"
    return problems


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def test_settings_keys_and_selector() -> None:
    assert S.enabled_label == "tenant-lifecycle.dev/enabled"
    assert S.operations_key == "tenant-lifecycle.dev/operations"
    assert S.wave_key == "tenant-lifecycle.dev/wave"
    assert S.applications_key == "tenant-lifecycle.dev/applications"
    assert S.delete_policy_key == "tenant-lifecycle.dev/delete-policy"
    assert S.on_failure_key == "tenant-lifecycle.dev/on-failure"
    assert S.label_selector() == "tenant-lifecycle.dev/enabled=true"
    assert ContractSettings(prefix="example.com").label_selector() == "example.com/enabled=true"


def test_known_operations() -> None:
    assert len(KNOWN_OPERATIONS) == 8
    assert STORAGE_OPERATIONS < KNOWN_OPERATIONS
    assert "lifecycle.upsert" not in STORAGE_OPERATIONS


@pytest.mark.parametrize("prefix", ["", "Upper.dev", "has space", "-x.dev", "a/b"])
def test_invalid_prefix_is_a_usage_error(prefix: str) -> None:
    with pytest.raises(UsageError, match="invalid contract prefix"):
        ContractSettings(prefix=prefix)


@pytest.mark.parametrize("key", ["", "a b/c", "x.com/", "x.com/-bad"])
def test_invalid_legacy_key_is_a_usage_error(key: str) -> None:
    with pytest.raises(UsageError, match="invalid legacy key"):
        ContractSettings(legacy_key=key)


def test_valid_job_gives_participant_with_all_settings() -> None:
    job = make_job(
        operations=" lifecycle.upsert , catalog.reindex ,lifecycle.decommission",
        annotations={
            f"{DEFAULT_PREFIX}/wave": "-1",
            f"{DEFAULT_PREFIX}/applications": "catalog, search",
            f"{DEFAULT_PREFIX}/delete-policy": "always",
            f"{DEFAULT_PREFIX}/on-failure": "continue",
        },
        spec={
            "activeDeadlineSeconds": 600,
            "podFailurePolicy": {
                "rules": [
                    {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3, 42]}},
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
        },
    )
    participant, problems = check_job(job, settings=S)
    assert problems == []
    assert participant == Participant(
        namespace="team-a",
        name="schema",
        operations=("lifecycle.upsert", "catalog.reindex", "lifecycle.decommission"),
        wave=-1,
        applications=("catalog", "search"),
        delete_policy=DeletePolicy.ALWAYS,
        on_failure=OnFailure.CONTINUE,
        backoff_limit=2,
        active_deadline_seconds=600,
        pod_failure_rules=(
            PodFailureRule(action="FailJob", operator="In", values=(3, 42)),
            PodFailureRule(action="Ignore", on_pod_conditions=({"type": "DisruptionTarget"},)),
        ),
    )
    assert participant.key == "team-a/schema"


def test_defaults() -> None:
    job = make_job(namespace=None)
    del job["spec"]["backoffLimit"]
    participant, problems = check_job(job, settings=S)
    assert problems == []
    assert participant is not None
    assert participant.namespace == "default"
    assert participant.wave == 0
    assert participant.applications == ()
    assert participant.delete_policy is DeletePolicy.SUCCEEDED
    assert participant.on_failure is OnFailure.ABORT
    assert participant.backoff_limit == 6
    assert participant.active_deadline_seconds is None


def test_not_a_participant() -> None:
    job = make_job(operations=None, label=None)
    assert not is_participant_candidate(job, settings=S)
    assert check_job(job, settings=S) == (None, [])


def test_label_false_switches_the_job_off() -> None:
    job = make_job(label="false")
    assert not is_participant_candidate(job, settings=S)
    assert check_job(job, settings=S) == (None, [])


def test_missing_suspend() -> None:
    problem = only(problems_of(make_job(suspend=None)))
    assert problem.field == "spec.suspend"
    assert "missing" in problem.message
    assert "run by itself" in problem.message
    assert "spec.suspend: true" in problem.fix
    assert str(problem) == (
        "jobs.yaml:1: Job team-a/schema: spec.suspend: "
        + problem.message
        + f" (fix: {problem.fix})"
    )


@pytest.mark.parametrize(("value", "text"), [(False, "false"), ("true", "'true'")])
def test_suspend_not_true(value: Any, text: str) -> None:
    problem = only(problems_of(make_job(suspend=value)))
    assert problem.field == "spec.suspend"
    assert text in problem.message


@pytest.mark.parametrize("wave", ["one", "1.5", "", "0x10", "1 2"])
def test_wave_not_an_integer(wave: str) -> None:
    problem = only(problems_of(make_job(annotations={f"{DEFAULT_PREFIX}/wave": wave})))
    assert problem.field == WAVE
    assert f"wave {wave!r} is not an integer" in problem.message


@pytest.mark.parametrize(("wave", "expected"), [("-1000", -1000), (" 7 ", 7), ("+3", 3)])
def test_wave_integers(wave: str, expected: int) -> None:
    participant, problems = check_job(
        make_job(annotations={f"{DEFAULT_PREFIX}/wave": wave}), settings=S
    )
    assert problems == []
    assert participant is not None
    assert participant.wave == expected


def test_wave_out_of_range() -> None:
    problem = only(problems_of(make_job(annotations={f"{DEFAULT_PREFIX}/wave": "1001"})))
    assert "outside -1000..1000" in problem.message


def test_unquoted_annotation_value() -> None:
    problem = only(problems_of(make_job(annotations={f"{DEFAULT_PREFIX}/wave": 1})))
    assert problem.field == WAVE
    assert "strings" in problem.message
    assert problem.fix == 'quote it: "1"'


def test_unknown_delete_policy() -> None:
    problem = only(
        problems_of(make_job(annotations={f"{DEFAULT_PREFIX}/delete-policy": "sometimes"}))
    )
    assert problem.field == f"metadata.annotations[{DEFAULT_PREFIX}/delete-policy]"
    assert problem.message == (
        "unknown delete-policy 'sometimes'; expected one of succeeded, always, never"
    )


def test_unknown_on_failure_suggests_close_value() -> None:
    problem = only(problems_of(make_job(annotations={f"{DEFAULT_PREFIX}/on-failure": "Abort"})))
    assert problem.field == f"metadata.annotations[{DEFAULT_PREFIX}/on-failure]"
    assert problem.message == "unknown on-failure 'Abort'; expected one of abort, continue"
    assert "use 'abort'" in problem.fix


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ("lifecycle.upsert lifecycle.suspend", "contains whitespace"),
        ("lifecycle. upsert", "contains whitespace"),
        ("upsert", "has no dot"),
        ("lifecycle.Upsert", "segment 'Upsert' must be lowercase"),
        ("team..op", "has an empty segment"),
        ("a.b.c", "exactly one dot"),
        ("team.-op", "segment '-op'"),
        ("lifecycle.explode", "unknown operation 'lifecycle.explode'; known: lifecycle.backup"),
        ("lifecycle.upsert,lifecycle.upsert", "listed twice"),
        ("lifecycle.upsert,,lifecycle.suspend", "item 2 of"),
        ("team." + "x" * 70, "longer than 63"),
    ],
)
def test_operation_syntax(operations: str, message: str) -> None:
    problem = only(problems_of(make_job(operations=operations)))
    assert problem.field == OPS
    assert message in problem.message


def test_unknown_lifecycle_operation_suggests_known_name() -> None:
    problem = only(problems_of(make_job(operations="lifecycle.upsrt")))
    assert "did you mean lifecycle.upsert?" in problem.fix


@pytest.mark.parametrize("operations", ["", "  ", " , "])
def test_empty_operations(operations: str) -> None:
    problems = problems_of(make_job(operations=operations))
    assert all(p.field == OPS for p in problems)
    assert any("empty" in p.message for p in problems)


def test_label_without_annotation() -> None:
    job = make_job(operations=None)
    assert is_participant_candidate(job, settings=S)
    problem = only(problems_of(job))
    assert problem.field == OPS
    assert "has the label tenant-lifecycle.dev/enabled but no operations annotation" in (
        problem.message
    )


def test_annotation_without_label() -> None:
    job = make_job(label=None)
    assert is_participant_candidate(job, settings=S)
    problem = only(problems_of(job))
    assert problem.field == LABEL
    assert "not the label tenant-lifecycle.dev/enabled" in problem.message
    assert "discovery would never see it" in problem.message


def test_label_with_wrong_value() -> None:
    problem = only(problems_of(make_job(label="yes")))
    assert problem.field == LABEL
    assert "'yes'" in problem.message


def test_all_problems_reported_together() -> None:
    job = make_job(
        operations="upsert",
        suspend=False,
        annotations={
            f"{DEFAULT_PREFIX}/wave": "first",
            f"{DEFAULT_PREFIX}/delete-policy": "x",
            f"{DEFAULT_PREFIX}/on-failure": "y",
            f"{DEFAULT_PREFIX}/applications": ",",
        },
        spec={"backoffLimit": -1, "activeDeadlineSeconds": 0},
    )
    fields = {p.field for p in problems_of(job)}
    assert fields == {
        OPS,
        WAVE,
        f"metadata.annotations[{DEFAULT_PREFIX}/delete-policy]",
        f"metadata.annotations[{DEFAULT_PREFIX}/on-failure]",
        f"metadata.annotations[{DEFAULT_PREFIX}/applications]",
        "spec.suspend",
        "spec.backoffLimit",
        "spec.activeDeadlineSeconds",
    }


def test_misspelt_annotation_is_flagged() -> None:
    problem = only(problems_of(make_job(annotations={f"{DEFAULT_PREFIX}/wav": "1"})))
    assert problem.field == f"metadata.annotations[{DEFAULT_PREFIX}/wav]"
    assert problem.fix == f"did you mean {DEFAULT_PREFIX}/wave?"


def test_unrelated_prefix_annotation_is_left_alone() -> None:
    job = make_job(annotations={f"{DEFAULT_PREFIX}/owner": "team-a"})
    assert check_job(job, settings=S)[1] == []


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"backoffLimit": -1}, "spec.backoffLimit", "not a non-negative integer"),
        ({"backoffLimit": "2"}, "spec.backoffLimit", "not a non-negative integer"),
        ({"backoffLimit": True}, "spec.backoffLimit", "not a non-negative integer"),
        ({"backoffLimit": 101}, "spec.backoffLimit", "more than 100"),
        ({"activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds", "not a positive integer"),
        ({"parallelism": 2}, "spec.parallelism", "one pod per attempt"),
        ({"completionMode": "Indexed"}, "spec.completionMode", "not supported"),
    ],
)
def test_job_spec_sanity(spec: dict[str, Any], field: str, message: str) -> None:
    problem = only(problems_of(make_job(spec=spec)))
    assert problem.field == field
    assert message in problem.message


def _policy(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"podFailurePolicy": {"rules": list(rules)}}


@pytest.mark.parametrize(
    ("rule", "field", "message"),
    [
        (
            {"action": "Explode", "onExitCodes": {"operator": "In", "values": [1]}},
            "spec.podFailurePolicy.rules[0].action",
            "not one of FailJob",
        ),
        (
            {"action": "FailJob", "onExitCodes": {"operator": "Is", "values": [1]}},
            "spec.podFailurePolicy.rules[0].onExitCodes.operator",
            "not In or NotIn",
        ),
        (
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 1]}},
            "spec.podFailurePolicy.rules[0].onExitCodes.values[0]",
            "exit code 0 is not allowed with operator In",
        ),
        (
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": ["1"]}},
            "spec.podFailurePolicy.rules[0].onExitCodes.values[0]",
            "not an integer",
        ),
        (
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": []}},
            "spec.podFailurePolicy.rules[0].onExitCodes.values",
            "non-empty list",
        ),
        (
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [5, 3]}},
            "spec.podFailurePolicy.rules[0].onExitCodes.values[1]",
            "ascending order",
        ),
        (
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "Yes"}],
            },
            "spec.podFailurePolicy.rules[0].onPodConditions[0].status",
            "not True, False or Unknown",
        ),
        (
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget"}],
                "status": "True",
            },
            "spec.podFailurePolicy.rules[0].status",
            "unknown field 'status'",
        ),
        (
            {"action": "FailJob"},
            "spec.podFailurePolicy.rules[0]",
            "exactly one of onExitCodes and onPodConditions",
        ),
        (
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "sidecar", "operator": "In", "values": [1]},
            },
            "spec.podFailurePolicy.rules[0].onExitCodes.containerName",
            "no container named 'sidecar'",
        ),
        (
            {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]}},
            "spec.podFailurePolicy.rules[0].action",
            "Indexed Job",
        ),
    ],
)
def test_pod_failure_policy_rules(rule: dict[str, Any], field: str, message: str) -> None:
    problem = only(problems_of(make_job(spec=_policy(rule))))
    assert problem.field == field
    assert message in problem.message


def test_pod_failure_policy_requires_restart_policy_never() -> None:
    job = make_job(
        spec=_policy({"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}})
    )
    job["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    problem = only(problems_of(job))
    assert problem.field == "spec.template.spec.restartPolicy"
    assert "requires Never" in problem.message


def test_restart_policy_always_is_rejected() -> None:
    job = make_job()
    job["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    problem = only(problems_of(job))
    assert problem.field == "spec.template.spec.restartPolicy"


def test_pod_failure_rule_matching() -> None:
    fail = PodFailureRule(action="FailJob", container_name="main", operator="In", values=(3, 42))
    assert fail.matches_exit("main", 42)
    assert not fail.matches_exit("main", 1)
    assert not fail.matches_exit("other", 42)
    ignore = PodFailureRule(action="Ignore", operator="NotIn", values=(1,))
    assert ignore.matches_exit("any", 2)
    assert not ignore.matches_exit("any", 1)
    assert not ignore.matches_exit("any", 0)
    conditions = PodFailureRule(action="Ignore", on_pod_conditions=({"type": "DisruptionTarget"},))
    assert not conditions.matches_exit("main", 1)


def test_legacy_key() -> None:
    legacy = ContractSettings(legacy_key="collibra.com/tenant.lifecycle")
    job = make_job(
        operations=None,
        annotations={"collibra.com/tenant.lifecycle": "lifecycle.upsert,lifecycle.migrate-in"},
    )
    # Without the legacy setting the Job has the label but no operations.
    assert "no operations annotation" in only(problems_of(job)).message
    participant, problems = check_job(job, settings=legacy)
    assert problems == []
    assert participant is not None
    assert participant.operations == ("lifecycle.upsert", "lifecycle.migrate-in")


def test_legacy_key_alone_makes_a_candidate() -> None:
    legacy = ContractSettings(legacy_key="collibra.com/tenant.lifecycle")
    job = make_job(operations=None, label=None, annotations={"collibra.com/tenant.lifecycle": "x"})
    assert is_participant_candidate(job, settings=legacy)
    assert not is_participant_candidate(job, settings=S)
    problems = problems_of(job, legacy)
    assert {p.field for p in problems} == {
        LABEL,
        "metadata.annotations[collibra.com/tenant.lifecycle]",
    }


def test_legacy_key_conflicting_with_operations_annotation() -> None:
    legacy = ContractSettings(legacy_key="collibra.com/tenant.lifecycle")
    job = make_job(annotations={"collibra.com/tenant.lifecycle": "lifecycle.suspend"})
    problem = only(problems_of(job, legacy))
    assert "legacy annotation collibra.com/tenant.lifecycle" in problem.message
    same = make_job(annotations={"collibra.com/tenant.lifecycle": "lifecycle.upsert"})
    assert check_job(same, settings=legacy)[1] == []


def test_custom_prefix() -> None:
    custom = ContractSettings(prefix="lifecycle.example.com")
    job = make_job(prefix="lifecycle.example.com", annotations={"lifecycle.example.com/wave": "2"})
    participant, problems = check_job(job, settings=custom)
    assert problems == []
    assert participant is not None
    assert participant.wave == 2
    # The default-prefix reader does not see it at all.
    assert check_job(job, settings=S) == (None, [])


def test_namespace_opt_in() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    assert not is_namespace_opted_in(ns, settings=S)
    ns["metadata"]["labels"] = {"tenant-lifecycle.dev/enabled": "true"}
    assert is_namespace_opted_in(ns, settings=S)
    ns["metadata"]["labels"] = {"tenant-lifecycle.dev/enabled": "false"}
    assert not is_namespace_opted_in(ns, settings=S)
    assert not is_namespace_opted_in({"metadata": {"labels": ["x"]}}, settings=S)


@pytest.mark.parametrize("name", ["lifecycle.upsert", "catalog.reindex", "team-1.op-2"])
def test_operation_name_valid(name: str) -> None:
    assert operation_name_problem(name) is None


@pytest.mark.parametrize(
    "job",
    [
        "not a dict",
        {"metadata": "x"},
        {"metadata": {"labels": {"tenant-lifecycle.dev/enabled": "true"}, "annotations": []}},
        {"metadata": {"labels": {"tenant-lifecycle.dev/enabled": "true"}}, "spec": []},
        {
            "metadata": {"annotations": {"tenant-lifecycle.dev/operations": None}},
            "spec": {"podFailurePolicy": {"rules": [None, {"action": "Count", "onExitCodes": 1}]}},
        },
    ],
)
def test_malformed_objects_never_raise(job: Any) -> None:
    participant, problems = check_job(job, settings=S)
    assert participant is None
    for problem in problems:
        assert problem.message
        assert problem.object.startswith("Job ")
