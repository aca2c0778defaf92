"""Issue 12's fleet acceptance at full size: 200 tenants, ``tenantctl fleet`` subprocesses on
the local engine (bridges as threads: ``--launcher thread``), real bridges against the sandbox.

``--canary 5 --concurrency 20 --max-failures 2%`` (4 failures allowed); 6 tenants (3 %) fail
their Job. One scenario, each step needing the one before:

1. the run is interrupted with SIGINT once tenants have succeeded (the tenants in flight are
   cancelled, their pods deleted), before any failing tenant was reached;
2. ``--resume`` skips every tenant that succeeded, reruns the cancelled ones, tolerates four
   failures, stops starting tenants at the fifth (the sixth failing tenant, far behind it,
   never starts) and reports exactly which failed and which never started;
3. never more than 20 tenants were in flight (from the history's timestamps), and the bound was
   reached;
4. ``tenantctl history --tenant T`` shows T's operations newest first.

Every claim is read back from the history store as well as from the summaries.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from orchestrator.history import HistoryRecord, open_store
from sandbox import Sandbox
from tests.e2e.fleet.fleet_support import (
    TENANTCTL,
    fleet_argv,
    fleet_env,
    lifecycle_objects,
    max_overlap,
    wait_for_outcomes,
    write_inventory,
)

TENANTS = [f"t-{i:03d}" for i in range(200)]
CONCURRENCY = 20
# Spread out, so the resumed run keeps starting tenants after each of the first four failures
# (within the budget) and stops at the fifth. All behind the point where the first run is
# interrupted (about 20 succeeded + 20 in flight).
TOLERATED = ("t-070", "t-085", "t-100", "t-115")
FIFTH = "t-130"
# Far behind the fifth: ~20 tenants start while it runs, so the stop comes long before this one.
SIXTH = "t-195"
FAILING = (*TOLERATED, FIFTH, SIXTH)
INTERRUPT_AFTER = 20  # succeeded tenants (the 5 canaries and 15 more) before the SIGINT
FLAGS = [
    "--launcher",
    "thread",
    "--canary",
    "5",
    "--max-failures",
    "2%",
]


def _script() -> str:
    failing = "|".join(FAILING)
    return (
        f'case "$LIFECYCLE_TENANT_ENV_ID" in {failing}) '
        'sleep 0.2; echo "schema drift in $LIFECYCLE_TENANT_ENV_ID"; exit 3;; esac; '
        'sleep 0.2; echo "migrated $LIFECYCLE_TENANT_ENV_ID"'
    )


def _by_tenant(records: list[HistoryRecord]) -> dict[str, list[HistoryRecord]]:
    grouped: dict[str, list[HistoryRecord]] = {}
    for record in records:
        grouped.setdefault(record.tenant, []).append(record)
    return grouped


def test_two_hundred_tenants_interrupt_resume_budget_bound_history(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.apply(lifecycle_objects(_script()))
    inventory = write_inventory(tmp_path / "tenants.yaml", TENANTS)
    store_url = f"sqlite:///{tmp_path / 'history.db'}"
    parent = "fleet-e2e-200"

    def argv(*args: str) -> list[str]:
        return fleet_argv(
            [*FLAGS, *args],
            kubeconfig=sandbox.kubeconfig_path(),
            store=store_url,
            inventory=inventory,
            concurrency=CONCURRENCY,
        )

    store = open_store(store_url)  # the schema exists before the fleet and the test poll it
    try:
        # 1. Interrupted with SIGINT once INTERRUPT_AFTER tenants succeeded.
        with (tmp_path / "first.err").open("w+") as err_file:
            first = subprocess.Popen(
                argv("--parent-batch-id", parent),
                stdout=subprocess.PIPE,
                stderr=err_file,
                text=True,
                env=fleet_env(),
            )
            done = wait_for_outcomes(
                store,
                parent=parent,
                outcome="succeeded",
                count=INTERRUPT_AFTER,
                alive=lambda: first.poll() is None,
            )
            first.send_signal(signal.SIGINT)
            out, _ = first.communicate(timeout=120)
            err_file.seek(0)
            err = err_file.read()
        assert len(done) >= INTERRUPT_AFTER, err
        assert first.returncode == 130, err
        summary = json.loads(out)
        assert summary["interrupted"] is True
        assert summary["stopped"] == "interrupted"
        assert "resume with: tenantctl fleet" in err
        first_succeeded = {s["tenant"] for s in summary["succeeded"]}
        first_cancelled = {c["tenant"] for c in summary["cancelled"]}
        assert len(first_succeeded) >= INTERRUPT_AFTER
        assert first_cancelled, "tenants were in flight at the SIGINT"
        assert summary["failed"] == []
        first_records = store.query(parent=parent, limit=None)
        assert {r.tenant: r.outcome for r in first_records} == {
            **dict.fromkeys(first_succeeded, "succeeded"),
            **dict.fromkeys(first_cancelled, "cancelled"),
        }
        assert set(summary["notStarted"]) == set(TENANTS) - first_succeeded - first_cancelled
        # The premise of step 2: the first run stopped before any failing tenant started.
        assert not {r.tenant for r in first_records} & set(FAILING), sorted(first_succeeded)
        # The cancelled bridges deleted their pods: no container process is left running.
        assert sandbox.pod_pids() == []
        first_batches = {r.batch_id for r in first_records}

        # 2. Resumed: the successes are skipped; the fifth failure stops new starts.
        second = subprocess.run(
            argv("--resume", parent),
            capture_output=True,
            text=True,
            env=fleet_env(),
            timeout=240,
        )
        assert second.returncode == 1, second.stderr
        resumed = json.loads(second.stdout)
        records = store.query(parent=parent, limit=None)
    finally:
        store.close()
    second_records = [r for r in records if r.batch_id not in first_batches]
    started_second = [r.tenant for r in second_records]
    assert len(started_second) == len(set(started_second))

    # Every tenant that succeeded is skipped, never run again: one record, succeeded.
    assert sorted(resumed["skipped"]) == sorted(first_succeeded)
    assert not set(started_second) & first_succeeded
    for tenant, mine in _by_tenant(records).items():
        assert [r.outcome for r in mine].count("succeeded") <= 1, tenant
        if tenant in first_succeeded:
            assert [r.outcome for r in mine] == ["succeeded"], tenant
    # The cancelled ones run again, as attempt 2 (a new child batch id).
    assert first_cancelled <= set(started_second)

    # Exactly the five failing tenants reached failed; the sixth never started.
    failed = {f["tenant"]: f for f in resumed["failed"]}
    assert sorted(failed) == sorted((*TOLERATED, FIFTH))
    for item in failed.values():
        assert item["status"] == "failed"
        assert "team-a/schema BackoffLimitExceeded (exit 3)" in item["reason"]
    assert resumed["stopped"] == "failure budget exceeded: 5 failed, 4 allowed (--max-failures 2%)"
    assert resumed["interrupted"] is False
    assert resumed["allowedFailures"] == 4
    assert resumed["cancelled"] == []
    by_outcome: dict[str, set[str]] = {}
    for r in second_records:
        by_outcome.setdefault(str(r.outcome), set()).add(r.tenant)
    assert by_outcome.pop("failed") == set(failed)
    assert by_outcome.pop("succeeded") == {s["tenant"] for s in resumed["succeeded"]}
    assert by_outcome == {}, "every started tenant ended succeeded or failed"

    # Never started: exactly the tenants with no record in the resumed run, a tail of the list
    # behind the fifth failure, the sixth failing tenant among them.
    never = [t for t in TENANTS if t not in first_succeeded and t not in started_second]
    assert resumed["notStarted"] == never
    assert SIXTH in never
    assert never == TENANTS[TENANTS.index(never[0]) :]
    assert TENANTS.index(never[0]) > TENANTS.index(FIFTH)
    # No start is later than the failure that exceeded the budget (decisions share one lock).
    (fifth,) = [r for r in second_records if r.tenant == FIFTH]
    assert fifth.finished_at is not None
    assert max(r.started_at for r in second_records if r.started_at) <= fifth.finished_at
    # The first four failures did not stop it: tenants started after the fourth had failed.
    fourth = max(r.finished_at for r in second_records if r.tenant in TOLERATED and r.finished_at)
    assert any(r.started_at and r.started_at > fourth for r in second_records)

    # 3. The concurrency bound, from the recorded intervals: held, and reached.
    assert max_overlap(first_records + second_records) <= CONCURRENCY
    assert max_overlap(first_records) == CONCURRENCY
    assert max_overlap(second_records) == CONCURRENCY

    # 4. One tenant's history, newest first: cancelled in the first run, succeeded on resume.
    tenant = min(first_cancelled)
    shown = subprocess.run(
        [*TENANTCTL, "history", "--tenant", tenant, "--store", store_url, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    history = json.loads(shown.stdout)
    assert [(h["outcome"], h["parentBatchOperationId"]) for h in history] == [
        ("succeeded", parent),
        ("cancelled", parent),
    ]
    stamps = [h["requestedAt"] for h in history]
    assert stamps == sorted(stamps, reverse=True)
    assert history[1]["batchOperationId"] in first_batches
    assert history[0]["batchOperationId"] not in first_batches
