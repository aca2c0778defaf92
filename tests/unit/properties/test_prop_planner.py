"""Properties of ``bridge.planner.build_plan``: deterministic whatever the input order, waves
ascending, every planned job takes part in the operation and passes the applications filter,
every participant of the operation is planned or skipped exactly once, and bad input is a
``ContractError`` with a message."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from hypothesis import event, given
from hypothesis import strategies as st

from bridge.contract import Participant
from bridge.errors import ContractError
from bridge.planner import PLAN_SCHEMA, Plan, build_plan

from .strategies import JSON_VALUES, OPERATION_TEXT

APPS = ["catalog", "search", "billing"]
OPS = ["lifecycle.upsert", "lifecycle.backup", "team.rotate"]

participants = st.lists(
    st.builds(
        lambda ns, name, ops, wave, apps: Participant(
            ns, name, tuple(ops), wave=wave, applications=tuple(apps)
        ),
        st.sampled_from(["team-a", "team-b", "team-c"]),
        st.text(alphabet="abcdef-", min_size=1, max_size=5),
        st.lists(st.sampled_from(OPS), min_size=1, max_size=3, unique=True),
        st.integers(-5, 5),
        st.lists(st.sampled_from(APPS), max_size=2, unique=True),
    ),
    max_size=30,
    unique_by=lambda p: p.key,
)
environments = (
    st.none()
    | st.fixed_dictionaries(
        {}, optional={"applications": st.lists(st.sampled_from([*APPS, "other"]), max_size=3)}
    )
    | JSON_VALUES
)


def _plan_or_error(jobs: list[Participant], operation: str, environment: Any) -> Plan | str:
    try:
        return build_plan(jobs, operation=operation, environment=environment, tenant_env_id="t")
    except ContractError as exc:
        message = str(exc)
    assert message.strip(), "a ContractError without a message"
    return message


@given(
    participants,
    st.sampled_from(OPS) | st.sampled_from(OPS) | st.sampled_from(OPS) | OPERATION_TEXT,
    environments,
    st.randoms(use_true_random=False),
)
def test_plans(jobs: list[Participant], operation: str, environment: Any, rnd: Any) -> None:
    plan = _plan_or_error(jobs, operation, environment)
    shuffled = list(jobs)
    rnd.shuffle(shuffled)
    again = _plan_or_error(shuffled, operation, environment)
    event("ContractError" if isinstance(plan, str) else "plan")
    if isinstance(plan, str):
        assert isinstance(again, str)  # rejected whatever the order (the message may name
        return  # the first duplicate it met)
    assert isinstance(again, Plan)
    assert again.to_compact_json() == plan.to_compact_json()

    waves = [w.wave for w in plan.waves]
    assert waves == sorted(set(waves)), "waves ascend, each once"
    apps = environment.get("applications") if isinstance(environment, dict) else None
    planned = []
    for wave in plan.waves:
        assert wave.jobs, "no empty wave"
        assert [(j.namespace, j.name) for j in wave.jobs] == sorted(
            (j.namespace, j.name) for j in wave.jobs
        )
        for job in wave.jobs:
            assert job.wave == wave.wave
            assert operation in job.operations
            if environment is not None and job.applications:
                assert set(job.applications) & set(apps or ()), "applications filter"
            planned.append(job.key)
    skipped = [f"{s.namespace}/{s.name}" for s in plan.skipped]
    taking_part = [j.key for j in jobs if operation in j.operations]
    assert sorted(planned + skipped) == sorted(taking_part), "planned or skipped, once"
    for s in plan.skipped:
        assert s.reason.strip()

    data = plan.to_json()
    jsonschema.validate(data, PLAN_SCHEMA)
    assert Plan.from_json(json.loads(json.dumps(data))).to_compact_json() == (
        plan.to_compact_json()
    )


@given(participants, st.data())
def test_a_job_listed_twice_is_a_contract_error(jobs: list[Participant], data: Any) -> None:
    if not jobs:
        return
    twice = [*jobs, data.draw(st.sampled_from(jobs))]
    assert isinstance(_plan_or_error(twice, "lifecycle.upsert", None), str)


@given(participants)
def test_without_an_environment_nothing_is_filtered(jobs: list[Participant]) -> None:
    plan = build_plan(jobs, operation="lifecycle.upsert", environment=None)
    assert plan.skipped == ()
    assert plan.job_count == sum("lifecycle.upsert" in j.operations for j in jobs)
