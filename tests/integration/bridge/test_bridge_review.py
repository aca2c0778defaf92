"""Review findings on the bridge's core: what must never be left behind or retried in a storm."""

from __future__ import annotations

import pytest

from bridge.result import Status
from tests.integration.bridge.conftest import BridgeEnv


def test_a_pod_the_template_cannot_make_leaves_no_secret(bridge_env: BridgeEnv) -> None:
    # The reserved volume name is only found while building the pod: the per-run Secret (the
    # tenant's environment) must not have been created for a pod that never comes.
    bridge_env.add_job(
        "clash",
        pod_spec={
            "restartPolicy": "Never",
            "volumes": [{"name": "tenant-lifecycle-context", "emptyDir": {}}],
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
        },
    )
    result, out = bridge_env.run("clash")
    assert result.status is Status.ERROR
    assert "tenant-lifecycle-context" in result.message
    assert out == []
    assert bridge_env.pods() == []
    assert bridge_env.secrets() == []


@pytest.mark.parametrize("status", [422, 403])
def test_a_rejected_pod_create_leaves_no_secret(bridge_env: BridgeEnv, status: int) -> None:
    # Admission (PodSecurity: 403) or validation (422) refuses the pod for good: the Secret
    # holding the tenant's data goes at once, not whenever sweep comes by.
    bridge_env.add_job("refused-pod", "echo never")
    bridge_env.sb.faults.fail_next(
        2, status=status, retry_after=None, method="POST", path=r"/pods$"
    )
    result, out = bridge_env.run("refused-pod")
    assert result.status is Status.ERROR
    assert str(status) in result.message
    assert out == []
    assert bridge_env.pods() == []
    assert bridge_env.secrets() == []
