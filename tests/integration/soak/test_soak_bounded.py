"""The bounded soak in ``make test``: the full soak's harness and invariant checks, small.

20 requests over 5 tenants (a few malformed among them) through the real Pub/Sub emulator into
``tenantctl listen --engine local`` against the sandbox, with faults of every kind injected
from a fixed seed. ``python -m tests.soak`` (``make chaos``) runs the same at full size.
"""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.pubsub_emulator import PubSubEmulator
from tests.soak.faults import KINDS
from tests.soak.harness import SoakConfig, run_soak

BOUNDED = SoakConfig(
    requests=20,
    tenants=5,
    faults_per_kind=2,
    seed=20261126,
    window=6,
    collision_rate=0.05,
    job_lines=8,
    line_delay=0.05,
    fault_interval=0.2,
    settle_seconds=5.0,
    timeout=240.0,
)


def test_bounded_soak_keeps_every_invariant(
    pubsub_emulator: PubSubEmulator, tmp_path: Path
) -> None:
    config = SoakConfig(
        **{**BOUNDED.__dict__, "emulator_host": pubsub_emulator.host, "workdir": tmp_path}
    )
    report = run_soak(config)
    failed = {i["name"]: i["problems"][:5] for i in report["invariants"] if not i["ok"]}
    assert report["ok"], failed
    assert report["requests"] == {"valid": 20, "malformed": config.malformed_count}
    injected = report["faults"]["injected"]
    # Every kind hit something (targets such as a running pod come and go; the injector waits
    # for one), the full budget of each.
    assert injected == dict.fromkeys(KINDS, 2), injected
    assert (
        sum(report["outcomes"].get(k, 0) for k in report["outcomes"] if k.startswith("operations."))
        == 20
    )
    assert report["outcomes"].get("operations.succeeded", 0) > 0
