"""Review findings on the bridge's core: what must never be left behind or retried in a storm.

Sandbox only: most of these inject API failures with the sandbox's fault knobs.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import pytest

from bridge import podspec
from bridge.hooks import Injection, RunContext
from bridge.kube import SECRETS
from bridge.result import Status
from bridge.runner import Runner
from tests.integration.bridge.conftest import FAST, BridgeEnv


@pytest.fixture(scope="module")
def backend() -> str:
    return "sandbox"


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


class CancelInBeforePod:
    """SIGTERM arrives while the storage hook prepares the run (STS, bucket checks take time)."""

    def __init__(self) -> None:
        self.runner: Runner | None = None

    def before_pod(self, ctx: RunContext) -> Injection:
        assert self.runner is not None
        self.runner.cancel()
        return Injection()

    def after_success(self, ctx: RunContext) -> None:
        raise AssertionError("the job must not run")


def test_sigterm_before_the_pod_exists_starts_no_pod(bridge_env: BridgeEnv) -> None:
    # A stopped workflow must not start the team's job only to kill it a moment later.
    bridge_env.add_job("late", "echo started")
    created: list[str] = []
    create = bridge_env.kube.create

    def recording(resource: Any, body: Any, **kwargs: Any) -> Any:
        created.append(resource.plural)
        return create(resource, body, **kwargs)

    bridge_env.kube.create = recording  # type: ignore[method-assign]
    hooks = CancelInBeforePod()
    out = io.StringIO()
    runner = Runner(
        bridge_env.kube, bridge_env.request("late"), settings=FAST, hooks=hooks, out=out
    )
    hooks.runner = runner
    result = runner.run()
    assert result.status is Status.CANCELLED
    assert result.process_exit_code == 143
    assert created == []
    assert result.attempts == []
    assert out.getvalue() == ""
    assert bridge_env.pods() == []
    assert bridge_env.secrets() == []


def test_an_error_the_workflow_will_not_retry_leaves_no_running_pod(bridge_env: BridgeEnv) -> None:
    # The pod exists, then a call fails for good (here the create of its Secret, 422): the
    # bridge ends with exit 1, which Argo does not retry -- so nobody would supervise, time out
    # or clean up the team's job any more. It must not keep waiting behind the result.
    bridge_env.add_job("orphan", "sleep 30; echo finished")
    bridge_env.sb.faults.fail_next(
        1, status=422, retry_after=None, method="POST", path=r"/secrets$"
    )
    result, out = bridge_env.run("orphan")
    assert result.status is Status.ERROR
    assert result.process_exit_code == 1
    assert "422" in result.message
    assert out == []
    deadline = time.monotonic() + 20
    while bridge_env.pods() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bridge_env.pods() == []
    assert bridge_env.secrets() == []


def test_an_infrastructure_error_keeps_the_pod_for_the_restarted_bridge(
    bridge_env: BridgeEnv,
) -> None:
    # Exit 75 is retried by Argo: the restarted bridge attaches to the pod, so it stays -- here
    # still waiting for the Secret it mounts, which the restarted bridge then creates.
    bridge_env.add_job("kept", "sleep 1; echo finished")
    bridge_env.sb.faults.fail_next(
        6, status=503, retry_after=None, method="POST", path=r"/secrets$"
    )
    result, _ = bridge_env.run("kept")
    assert result.process_exit_code == 75
    assert len(bridge_env.pods()) == 1
    assert bridge_env.secrets() == []
    again, out = bridge_env.run("kept")
    assert again.status is Status.SUCCEEDED, again.message
    assert out == ["finished"]


def test_a_retried_secret_create_needs_no_read_access_to_secrets(bridge_env: BridgeEnv) -> None:
    # docs/rbac.md grants the bridge no `get` on Secrets. A Secret create whose first try landed
    # before a 5xx is retried into a 409; resolving that 409 by reading the Secret is forbidden,
    # which turned a transient blip into a failed run (exit 1, never retried by Argo).
    bridge_env.add_job("blip", 'cat "$LIFECYCLE_TENANT_ENV_FILE"')
    request = bridge_env.request("blip", environment={"region": "eu"})
    name = podspec.pod_name(
        batch_operation_id=request.batch_operation_id,
        namespace=request.namespace,
        job=request.job,
        attempt=1,
    )
    # What the first, landed try left: the run's Secret (the bridge cannot read it; replaced).
    bridge_env.sb.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": bridge_env.namespace},
                "data": {
                    podspec.ENVIRONMENT_KEY: base64.b64encode(b"region: eu\n").decode(),
                    podspec.CHANGESET_KEY: base64.b64encode(b"{}\n").decode(),
                },
            }
        ]
    )
    faults = bridge_env.sb.faults
    faults.fail_next(1, status=500, retry_after=None, method="POST", path=r"/secrets$")
    faults.fail_next(2, status=403, retry_after=None, method="GET", path=r"/secrets/")
    result, out = bridge_env.run("blip", environment={"region": "eu"})
    assert result.status is Status.SUCCEEDED, result.message
    assert out == ["region: eu"]


def test_sigterm_with_the_api_failing_still_deletes_the_pod(bridge_env: BridgeEnv) -> None:
    # SIGTERM lands while the API is failing (here the create of the pod's Secret, 503 until
    # the retries run out): the run ends as cancelled (143), which Argo does not retry for a
    # stopped workflow -- so the pod must go now, not wait on until sweep.
    bridge_env.add_job("stopped", "sleep 30; echo finished")
    bridge_env.sb.faults.fail_next(
        6, status=503, retry_after=None, method="POST", path=r"/secrets$"
    )
    out = io.StringIO()
    runner = Runner(bridge_env.kube, bridge_env.request("stopped"), settings=FAST, out=out)
    create = bridge_env.kube.create

    def cancelling(resource: Any, *args: Any, **kwargs: Any) -> Any:
        if resource is SECRETS:
            runner.cancel()
        return create(resource, *args, **kwargs)

    bridge_env.kube.create = cancelling  # type: ignore[method-assign]
    result = runner.run()
    assert result.status is Status.CANCELLED
    assert result.process_exit_code == 143
    deadline = time.monotonic() + 20
    while bridge_env.pods() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bridge_env.pods() == []
