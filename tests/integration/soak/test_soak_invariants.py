"""The soak's invariant checks catch what they claim to: each one fails on a made-up
observation that breaks it, and passes on a clean one (pure functions, no processes)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.soak import invariants as inv

RID, TENANT = "soak-1-00000", "t-000"


def _line(i: int, n: int = 3, attempt: int = 1, batch: str = RID) -> str:
    return f"soak {batch} schema attempt={attempt} line {i}/{n}"


def clean() -> inv.Observations:
    result = {
        "id": RID,
        "type": inv.SUCCEEDED_TYPE,
        "data": {
            "status": "succeeded",
            "startedAt": "2026-11-26T10:00:00Z",
            "finishedAt": "2026-11-26T10:00:05Z",
            "jobs": [
                {"namespace": "soak-team-a", "job": "schema", "status": "succeeded",
                 "attempts": [{"attempt": 1, "exitCode": 0}]},
            ],
        },
    }  # fmt: skip
    argv = ("python", "-m", "bridge", "run", "--namespace", "soak-team-a", "--job", "schema",
            "--batch-operation-id", RID)  # fmt: skip
    return inv.Observations(
        requests={RID: TENANT},
        malformed={"malformed-0000"},
        results=[result],
        dead_letters=[{"soak-id": "malformed-0000", "reason": "bad", "reasonCode": "NotJSON"}],
        records=[
            {"event": "start", "tenant": TENANT, "batch": RID, "job": "schema", "attempt": "1"}
        ],
        outputs=[inv.BridgeOutput("1-100", argv, ("x", _line(1), _line(2), _line(3)))],
        killed_batches=set(),
        leftovers=[],
        job_lines=3,
    )


def test_a_clean_run_passes_every_check() -> None:
    assert [r.name for r in inv.check_all(clean()) if not r.ok] == []


def _second_result(obs: inv.Observations, **data: Any) -> None:
    other = copy.deepcopy(obs.results[0])
    other["id"] = "soak-1-00001"
    other["data"].update(data)
    obs.results.append(other)
    obs.requests["soak-1-00001"] = TENANT


BREAKS: dict[str, Callable[[inv.Observations], Any]] = {
    "missing result": lambda o: o.results.clear(),
    "conflicting results": lambda o: o.results.append(
        {**o.results[0], "type": inv.FAILED_TYPE, "data": {"status": "failed"}}
    ),
    "job ran twice at once": lambda o: o.records.append(
        {"event": "overlap-run", "batch": RID, "job": "schema", "attempt": "2"}
    ),
    "tenant overlap (operations)": lambda o: _second_result(
        o, startedAt="2026-11-26T10:00:04Z", finishedAt="2026-11-26T10:00:09Z"
    ),
    "tenant overlap (jobs)": lambda o: o.records.append(
        {"event": "overlap-tenant", "tenant": TENANT, "batch": RID, "other": "soak-1-00009"}
    ),
    "leftover pod": lambda o: o.leftovers.append("pod soak-team-a/lc-schema-x-1"),
    "lost line": lambda o: o.outputs.__setitem__(
        0, inv.BridgeOutput("1-100", o.outputs[0].argv, (_line(1), _line(3)))
    ),
    "duplicated line": lambda o: o.outputs.__setitem__(
        0, inv.BridgeOutput("1-100", o.outputs[0].argv, (_line(1), _line(2), _line(2), _line(3)))
    ),
    "garbled line": lambda o: o.outputs.__setitem__(
        0, inv.BridgeOutput("1-100", o.outputs[0].argv, (_line(1), "soak 12", _line(3)))
    ),
    "malformed not dead-lettered": lambda o: o.dead_letters.clear(),
    "valid dead-lettered": lambda o: o.dead_letters.append(
        {"soak-id": RID, "reason": "x", "reasonCode": "NotJSON"}
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_each_violation_is_caught(name: str) -> None:
    obs = clean()
    BREAKS[name](obs)
    assert [r.name for r in inv.check_all(obs) if not r.ok] != [], name


def test_a_job_overlap_after_a_bridge_kill_is_a_failure_that_names_the_kill() -> None:
    # The engine reruns a killed bridge under the tenant's lock (and deletes the pod when it
    # gives up), so even then a tenant's jobs must never overlap.
    obs = clean()
    obs.records.append(
        {"event": "overlap-tenant", "tenant": TENANT, "batch": "soak-1-00009", "other": RID}
    )
    obs.killed_batches.add(RID)
    check = inv.one_operation_per_tenant(obs)
    assert not check.ok
    assert check.problems == [
        f"tenant {TENANT}: a job of soak-1-00009 started while a job of {RID} was running "
        f"(a bridge of {RID} was killed)"
    ]
