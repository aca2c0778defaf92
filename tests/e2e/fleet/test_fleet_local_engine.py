"""A real fleet: ``tenantctl fleet`` subprocesses, the local engine, real bridges, the sandbox.

One scenario, because each step needs the one before: a fleet is interrupted with SIGINT
(the tenants in flight are cancelled and their pods deleted), resumed (no tenant that
succeeded runs again), stopped by its failure budget, and ``tenantctl history`` shows a
tenant's operations newest first. Every claim is read back from the history store.
"""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.history import open_store
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

TENANTS = [f"t-{i:02d}" for i in range(8)]
# Late in the list, so the first run is interrupted before any of them starts.
FAILING = ("t-06", "t-07")
SCRIPT = (
    'case "$LIFECYCLE_TENANT_ENV_ID" in '
    't-06|t-07) sleep 0.5; echo "schema drift"; exit 3;; esac; '
    'sleep 1; echo "migrated $LIFECYCLE_TENANT_ENV_ID"'
)


def _fleet(args: list[str], *, kubeconfig: Path, store: str, inventory: Path) -> list[str]:
    return fleet_argv(args, kubeconfig=kubeconfig, store=store, inventory=inventory, concurrency=3)


def test_interrupt_resume_budget_and_history(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.apply(lifecycle_objects(SCRIPT))
    kubeconfig = sandbox.kubeconfig_path()
    inventory = write_inventory(tmp_path / "tenants.yaml", TENANTS)
    store_url = f"sqlite:///{tmp_path / 'history.db'}"
    parent = "fleet-e2e-upsert"

    # 1. Interrupted: SIGINT once two tenants succeeded.
    first = subprocess.Popen(
        _fleet(
            ["--canary", "1", "--max-failures", "0", "--parent-batch-id", parent],
            kubeconfig=kubeconfig,
            store=store_url,
            inventory=inventory,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=fleet_env(),
    )
    store = open_store(store_url)
    try:
        wait_for_outcomes(
            store,
            parent=parent,
            outcome="succeeded",
            count=2,
            alive=lambda: first.poll() is None,
            timeout=60,
        )
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 130, err
        summary = json.loads(out)
        assert summary["interrupted"] is True
        assert summary["stopped"] == "interrupted"
        first_succeeded = {s["tenant"] for s in summary["succeeded"]}
        assert len(first_succeeded) >= 2
        assert summary["cancelled"] or summary["notStarted"]
        assert "resume with: tenantctl fleet" in err
        # The cancelled bridges deleted their pods: no container process is left running.
        assert sandbox.pod_pids() == []
        recorded = {r.tenant: r.outcome for r in store.query(parent=parent, limit=None)}
        for item in summary["cancelled"]:
            assert recorded[item["tenant"]] == "cancelled"

        # 2. Resumed: succeeded tenants are skipped; t-06 fails and exceeds the budget (0).
        resumed_at = datetime.now(UTC)
        second = subprocess.run(
            _fleet(
                ["--resume", parent, "--max-failures", "0"],
                kubeconfig=kubeconfig,
                store=store_url,
                inventory=inventory,
            ),
            capture_output=True,
            text=True,
            env=fleet_env(),
            timeout=120,
        )
        assert second.returncode == 1, second.stderr
        resumed = json.loads(second.stdout)
        records = store.query(parent=parent, limit=None)
        started_second = {r.tenant for r in records if r.requested_at >= resumed_at}
        assert sorted(resumed["skipped"]) == sorted(first_succeeded)
        assert not started_second & first_succeeded
        for tenant in first_succeeded:  # ran exactly once: in the first run
            assert [r.outcome for r in records if r.tenant == tenant] == ["succeeded"]
        failed = {f["tenant"]: f for f in resumed["failed"]}
        assert set(failed) == set(FAILING) & started_second
        assert "t-06" in failed
        assert "team-a/schema BackoffLimitExceeded (exit 3)" in failed["t-06"]["reason"]
        assert resumed["stopped"].startswith("failure budget exceeded: 1 failed, 0 allowed")
        assert {s["tenant"] for s in resumed["succeeded"]} == started_second - set(FAILING)
        assert resumed["notStarted"] == [
            t for t in TENANTS if t not in first_succeeded and t not in started_second
        ]
        assert max_overlap(records) <= 3
    finally:
        store.close()

    # 3. History of one tenant, newest first, as an operator reads it.
    shown = subprocess.run(
        [*TENANTCTL, "history", "--tenant", "t-06", "--store", store_url, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    history = json.loads(shown.stdout)
    assert history, "t-06 ran at least once"
    assert history[0]["outcome"] == "failed"
    assert history[0]["parentBatchOperationId"] == parent
    stamps = [h["requestedAt"] for h in history]
    assert stamps == sorted(stamps, reverse=True)
    text = subprocess.run(
        [*TENANTCTL, "history", "--tenant", "t-06", "--store", store_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert text.stdout.splitlines()[0].startswith("REQUESTED (UTC)")
    assert "BackoffLimitExceeded" in text.stdout.splitlines()[1]
