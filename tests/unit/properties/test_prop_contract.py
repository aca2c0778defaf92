"""Properties of ``bridge.contract.check_job``: any Job-like input gives a participant or a list
of problems that each say what is wrong and how to fix it -- never an exception."""

from __future__ import annotations

from typing import Any

from hypothesis import event, given

from bridge.contract import (
    ContractSettings,
    check_job,
    is_participant_candidate,
    operation_name_problem,
)

from .strategies import JSON_VALUES, job_like

SETTINGS = ContractSettings()
LEGACY = ContractSettings(legacy_key="collibra.com/tenant.lifecycle")


def check(job: Any, settings: ContractSettings) -> None:
    participant, problems = check_job(job, settings=settings, source="prop.yaml:1")
    event("participant" if participant else ("rejected" if problems else "not a candidate"))
    if participant is None:
        if isinstance(job, dict) and is_participant_candidate(job, settings=settings):
            assert problems, "a candidate rejected without a reason"
        for problem in problems:
            assert problem.message.strip()
            assert problem.fix.strip()
            assert isinstance(problem.field, str)
            assert str(problem).startswith("prop.yaml:1: ")
    else:
        assert problems == []
        assert participant.operations
        assert all(operation_name_problem(op) is None for op in participant.operations)
        assert job["spec"]["suspend"] is True
        assert participant.backoff_limit >= 0
        assert participant.name == job["metadata"]["name"]
    # Deterministic.
    assert check_job(job, settings=settings, source="prop.yaml:1") == (participant, problems)


@given(job_like())
def test_job_like_inputs(job: Any) -> None:
    check(job, SETTINGS)


@given(job_like())
def test_job_like_inputs_with_a_legacy_key(job: Any) -> None:
    check(job, LEGACY)


@given(JSON_VALUES)
def test_arbitrary_json(value: Any) -> None:
    check(value, SETTINGS)
