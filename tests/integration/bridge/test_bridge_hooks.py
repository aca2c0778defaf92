"""The RunHooks seam (what the storage hooks plug into): injected env reaches every container,
secret env only through the per-run Secret, and the hooks can refuse or fail a run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bridge.errors import RefusedError, StorageError
from bridge.hooks import Injection, RunContext
from bridge.kube import PODS, SECRETS
from bridge.result import Status
from tests.integration.bridge.conftest import PREFIX, BridgeEnv

SECRET_VALUE = "sup3r-s3cr3t-value"


@dataclass
class FakeHooks:
    """Records calls; refuses or fails on demand."""

    refuse: bool = False
    fail_after: bool = False
    calls: list[tuple[str, RunContext]] = field(default_factory=list)

    def before_pod(self, ctx: RunContext) -> Injection:
        self.calls.append(("before_pod", ctx))
        if self.refuse:
            raise RefusedError("no export to import from")
        return Injection(
            env={"LIFECYCLE_OBJECT_STORE_URL": "s3://bucket/t-799a/job/"},
            secret_env={"AWS_SECRET_ACCESS_KEY": SECRET_VALUE},
        )

    def after_success(self, ctx: RunContext) -> None:
        self.calls.append(("after_success", ctx))
        if self.fail_after:
            raise StorageError("the export wrote nothing")


def test_injection_reaches_containers_and_secrets_stay_secret(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job(
        "exporter",
        'echo "url=$LIFECYCLE_OBJECT_STORE_URL key=$AWS_SECRET_ACCESS_KEY"; '
        'if touch "$LIFECYCLE_TENANT_ENV_FILE" 2>/dev/null; then echo writable; '
        "else echo read-only; fi",
        annotations={f"{PREFIX}/delete-policy": "never"},
    )
    hooks = FakeHooks()
    result, out = bridge_env.run(
        "exporter", hooks=hooks, source_batch_operation_id="b-source", workflow_name="lc-b"
    )
    assert result.status is Status.SUCCEEDED, result.message
    assert out == [f"url=s3://bucket/t-799a/job/ key={SECRET_VALUE}", "read-only"]
    assert [name for name, _ in hooks.calls] == ["before_pod", "after_success"]
    ctx = hooks.calls[0][1]
    assert (ctx.namespace, ctx.job, ctx.source_batch_operation_id) == (
        bridge_env.namespace,
        "exporter",
        "b-source",
    )
    pod = bridge_env.kube.get(PODS, result.attempts[0].pod, namespace=bridge_env.namespace)
    assert SECRET_VALUE not in json.dumps(pod)
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["key"] == (
        "AWS_SECRET_ACCESS_KEY"
    )
    assert SECRET_VALUE not in json.dumps(result.to_json())
    bridge_env.kube.delete(PODS, result.attempts[0].pod, namespace=bridge_env.namespace)


def test_after_success_failure_fails_the_job(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job("sealer", "echo wrote")
    result, _ = bridge_env.run("sealer", hooks=FakeHooks(fail_after=True))
    assert result.status is Status.FAILED
    assert result.reason == "StorageVerificationFailed"
    assert "wrote nothing" in result.message
    assert result.process_exit_code == 1
    assert len(bridge_env.pods()) == 1  # delete-policy succeeded: kept for debugging


def test_before_pod_refusal_creates_nothing(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job("importer", "echo never")
    result, out = bridge_env.run("importer", hooks=FakeHooks(refuse=True))
    assert result.status is Status.REFUSED
    assert result.process_exit_code == 2
    assert out == []
    assert bridge_env.pods() == []
    assert list(bridge_env.kube.list(SECRETS, namespace=bridge_env.namespace)) == []
