"""build_plan: waves, order, the applications filter, JSON form and size."""

from __future__ import annotations

import json
import random

import pytest

from bridge.contract import ContractSettings, OnFailure, Participant, check_job
from bridge.errors import ContractError
from bridge.planner import (
    MAX_PLAN_BYTES,
    PLAN_SCHEMA,
    Plan,
    Rejected,
    build_plan,
    plan_size,
    summarize,
)

from .helpers import make_job


def p(key: str, *, ops: str = "lifecycle.upsert", wave: int = 0, apps: str = "") -> Participant:
    namespace, name = key.split("/")
    return Participant(
        namespace=namespace,
        name=name,
        operations=tuple(ops.split(",")),
        wave=wave,
        applications=tuple(a for a in apps.split(",") if a),
    )


def keys(plan: Plan) -> list[list[str]]:
    return [[job.key for job in wave.jobs] for wave in plan.waves]


def test_wave_order_and_stable_order_inside_a_wave() -> None:
    jobs = [
        p("team-b/z", wave=1),
        p("team-a/y", wave=-1),
        p("team-b/a", wave=0),
        p("team-a/x", wave=1),
        p("team-a/b", wave=0),
    ]
    plan = build_plan(jobs, operation="lifecycle.upsert")
    assert [w.wave for w in plan.waves] == [-1, 0, 1]
    assert keys(plan) == [["team-a/y"], ["team-a/b", "team-b/a"], ["team-a/x", "team-b/z"]]
    assert [j.key for j in plan.jobs()] == [
        "team-a/y",
        "team-a/b",
        "team-b/a",
        "team-a/x",
        "team-b/z",
    ]


def test_only_participants_of_the_operation() -> None:
    jobs = [
        p("a/up"),
        p("a/down", ops="lifecycle.decommission"),
        p("a/both", ops="lifecycle.upsert,lifecycle.decommission"),
    ]
    assert keys(build_plan(jobs, operation="lifecycle.decommission")) == [["a/both", "a/down"]]
    assert build_plan(jobs, operation="lifecycle.backup").waves == ()


def test_applications_filter() -> None:
    jobs = [p("a/always"), p("a/catalog", apps="catalog"), p("a/search", apps="search,graph")]
    only_catalog = build_plan(
        jobs, operation="lifecycle.upsert", environment={"applications": ["catalog"]}
    )
    assert keys(only_catalog) == [["a/always", "a/catalog"]]
    assert [s.key for s in only_catalog.skipped] == ["a/search"]
    assert "runs only for applications search, graph" in only_catalog.skipped[0].reason
    both = build_plan(
        jobs, operation="lifecycle.upsert", environment={"applications": ["graph", "catalog"]}
    )
    assert keys(both) == [["a/always", "a/catalog", "a/search"]]
    none_listed = build_plan(jobs, operation="lifecycle.upsert", environment={})
    assert keys(none_listed) == [["a/always"]]
    unknown = build_plan(jobs, operation="lifecycle.upsert", environment=None)
    assert keys(unknown) == [["a/always", "a/catalog", "a/search"]]


@pytest.mark.parametrize("environment", [{"applications": "catalog"}, {"applications": [1]}, ["x"]])
def test_malformed_environment(environment: object) -> None:
    with pytest.raises(ContractError, match=r"applications|mapping"):
        build_plan([p("a/b")], operation="lifecycle.upsert", environment=environment)  # type: ignore[arg-type]


@pytest.mark.parametrize("operation", ["upsert", "lifecycle.nope", "Team.op"])
def test_invalid_operation(operation: str) -> None:
    with pytest.raises(ContractError):
        build_plan([], operation=operation)


def test_duplicate_participant() -> None:
    with pytest.raises(ContractError, match="a/b is listed twice"):
        build_plan([p("a/b"), p("a/b", wave=1)], operation="lifecycle.upsert")


def test_json_form_has_the_fixed_keys() -> None:
    jobs = [p("team-a/schema", wave=0)]
    rejected = [Rejected("team-b", "broken", ("spec.suspend: missing",))]
    plan = build_plan(jobs, operation="lifecycle.upsert", rejected=rejected, tenant_env_id="t1")
    assert plan.to_json() == {
        "operation": "lifecycle.upsert",
        "tenantEnvId": "t1",
        "waves": [
            {
                "wave": 0,
                "jobs": [
                    {
                        "namespace": "team-a",
                        "name": "schema",
                        "wave": 0,
                        "onFailure": "abort",
                        "deletePolicy": "succeeded",
                    }
                ],
            }
        ],
        "rejected": [
            {"namespace": "team-b", "name": "broken", "errors": ["spec.suspend: missing"]}
        ],
        "skipped": [],
    }
    assert " " not in plan.to_compact_json().replace("spec.suspend: missing", "")
    assert summarize(plan) == "lifecycle.upsert: 1 waves, 1 jobs, 1 rejected"


def test_json_round_trip() -> None:
    jobs = [
        Participant("a", "x", ("lifecycle.upsert",), wave=2, on_failure=OnFailure.CONTINUE),
        p("a/y", wave=-1),
        p("b/z", apps="nope"),
    ]
    plan = build_plan(
        jobs,
        operation="lifecycle.upsert",
        environment={"applications": ["catalog"]},
        rejected=[Rejected("c", "d", ("bad",))],
        tenant_env_id="t",
    )
    again = Plan.from_json(json.loads(plan.to_compact_json()))
    assert again.to_json() == plan.to_json()
    assert again.waves[1].jobs[0].on_failure is OnFailure.CONTINUE


def test_from_json_rejects_garbage() -> None:
    with pytest.raises(ContractError, match="malformed plan JSON"):
        Plan.from_json({"operation": "x", "waves": [{"jobs": []}]})


def test_determinism_regardless_of_input_order() -> None:
    jobs = [p(f"team-{i % 7}/job-{i}", wave=i % 3 - 1) for i in range(50)]
    rejected = [Rejected(f"team-{i}", "bad", ("e",)) for i in range(5)]
    first = build_plan(jobs, operation="lifecycle.upsert", rejected=rejected).to_compact_json()
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(jobs)
        rng.shuffle(rejected)
        assert (
            build_plan(jobs, operation="lifecycle.upsert", rejected=rejected).to_compact_json()
            == first
        )


def test_two_thousand_jobs_fit_in_argo_output_limit() -> None:
    # Ordinary names: 100 team namespaces x 20 jobs, like team-042/tenant-schema-07 (24 chars).
    jobs = [
        p(f"team-{t:03d}/tenant-schema-{j:02d}", wave=j % 5 - 1, ops="lifecycle.upsert")
        for t in range(100)
        for j in range(20)
    ]
    plan = build_plan(
        jobs, operation="lifecycle.upsert", tenant_env_id="799a1c2e-0d3b-4f4e-9d57-2a61b3c8e001"
    )
    assert plan.job_count == 2000
    size = plan_size(plan)
    assert size == len(plan.to_compact_json().encode())
    assert size < MAX_PLAN_BYTES, f"plan JSON is {size} bytes"
    # Measured: 84 bytes per job plus namespace and name, so 2,000 jobs average ~108 B here.
    assert 200_000 < size < 220_000


def test_per_job_overhead_leaves_room_for_long_names() -> None:
    # The budget per job at 2,000 jobs is 131 B; the fixed part must leave >= 40 chars for names.
    one = build_plan([p("n/j")], operation="lifecycle.upsert")
    two = build_plan([p("n/j"), p("n/k")], operation="lifecycle.upsert")
    per_job = plan_size(two) - plan_size(one) - len("nk")
    assert per_job <= 85
    assert (MAX_PLAN_BYTES - 1000) // 2000 - per_job >= 40


def test_contract_to_plan_with_legacy_key_and_custom_prefix() -> None:
    settings = ContractSettings(prefix="acme.io", legacy_key="collibra.com/tenant.lifecycle")
    jobs = [
        make_job(
            "new",
            prefix="acme.io",
            operations="lifecycle.migrate-in",
            annotations={"acme.io/wave": "1"},
        ),
        make_job(
            "old",
            prefix="acme.io",
            operations=None,
            annotations={"collibra.com/tenant.lifecycle": "lifecycle.upsert,lifecycle.migrate-in"},
        ),
        make_job("default-prefix"),  # not seen with the acme.io prefix
    ]
    participants = []
    for job in jobs:
        participant, problems = check_job(job, settings=settings)
        assert problems == []
        if participant:
            participants.append(participant)
    plan = build_plan(participants, operation="lifecycle.migrate-in")
    assert keys(plan) == [["team-a/old"], ["team-a/new"]]
    assert keys(build_plan(participants, operation="lifecycle.upsert")) == [["team-a/old"]]


def test_plan_json_matches_its_schema() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(PLAN_SCHEMA)
    plan = build_plan(
        [p("a/x", wave=-1), p("a/y", apps="search"), p("b/z", wave=3)],
        operation="lifecycle.upsert",
        environment={"applications": []},
        rejected=[Rejected("c", "d", ("bad",))],
    )
    jsonschema.validate(json.loads(plan.to_compact_json()), PLAN_SCHEMA)
    broken = plan.to_json()
    broken["waves"][0]["jobs"][0]["onFailure"] = "explode"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, PLAN_SCHEMA)
