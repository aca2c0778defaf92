"""What the real-fleet tests share: the installed ``tenantctl``, the one opted-in Job every
tenant runs, the inventory, the ``tenantctl fleet`` command line, and the reading of the
history store (overlap of the recorded intervals, waiting for an outcome count)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.history import HistoryRecord, HistoryStore

P = "tenant-lifecycle.dev"
# The tenantctl installed next to this interpreter: the fleet runs as an operator runs it.
TENANTCTL = [str(Path(sys.executable).parent / "tenantctl")]
# Shorter bridge timings, read from the environment by both launchers (the thread launcher
# through `bridge run`'s own options).
FAST_ENV = {
    "BRIDGE_BACKOFF_BASE": "0.05",
    "BRIDGE_BACKOFF_MAX": "0.2",
    "BRIDGE_STUCK_GRACE": "1",
    "BRIDGE_DELETE_GRACE": "2",
    "BRIDGE_LOG_RECONNECT_DELAY": "0.05",
}


def lifecycle_objects(script: str) -> list[dict[str, Any]]:
    """One opted-in team namespace with one suspended ``lifecycle.upsert`` Job ``schema``
    running ``sh -c script`` (``$LIFECYCLE_TENANT_ENV_ID`` says which tenant it runs for)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "labels": {f"{P}/enabled": "true"}},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "schema",
                "namespace": "team-a",
                "labels": {f"{P}/enabled": "true"},
                "annotations": {f"{P}/operations": "lifecycle.upsert"},
            },
            "spec": {
                "suspend": True,
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
                        ],
                    }
                },
            },
        },
    ]


def write_inventory(path: Path, tenants: Iterable[str], *, region: str = "eu-west-1") -> Path:
    path.write_text("tenants:\n" + "".join(f"  - id: {t}\n    region: {region}\n" for t in tenants))
    return path


def fleet_argv(
    args: Sequence[str], *, kubeconfig: Path, store: str, inventory: Path, concurrency: int
) -> list[str]:
    """``tenantctl fleet lifecycle.upsert --all`` over ``inventory``, JSON summary on stdout."""
    return [
        *TENANTCTL,
        "fleet",
        "lifecycle.upsert",
        "--all",
        "--inventory",
        str(inventory),
        "--kubeconfig",
        str(kubeconfig),
        "--store",
        store,
        "--concurrency",
        str(concurrency),
        "-o",
        "json",
        *args,
    ]


def fleet_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(FAST_ENV)
    env.pop("TENANTCTL_STORE", None)
    return env


def max_overlap(records: Iterable[HistoryRecord]) -> int:
    """The most requests in flight at one instant, from the recorded start and finish times.
    A finish and a start at the same instant do not overlap (the finish counts first)."""
    events = []
    for r in records:
        assert r.started_at is not None, r
        assert r.finished_at is not None, r
        events += [(r.started_at, 1), (r.finished_at, -1)]
    running = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        running += delta
        peak = max(peak, running)
    return peak


def wait_for_outcomes(
    store: HistoryStore,
    *,
    parent: str,
    outcome: str,
    count: int,
    alive: Callable[[], bool],
    timeout: float = 120.0,
) -> list[HistoryRecord]:
    """Poll the history until ``count`` requests under ``parent`` ended with ``outcome`` (or
    ``alive()`` turns false, or ``timeout``); returns those records for the caller to assert."""
    deadline = time.monotonic() + timeout
    while True:
        done = [r for r in store.query(parent=parent, limit=None) if r.outcome == outcome]
        if len(done) >= count or not alive() or time.monotonic() > deadline:
            return done
        time.sleep(0.05)
