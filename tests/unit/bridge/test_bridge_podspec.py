"""Pod naming, the pod built from a Job template, Job semantics of pod outcomes, exit codes."""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import attempts as att
from bridge import podspec
from bridge.contract import PodFailureRule
from bridge.errors import ContractError
from bridge.result import RunResult, Status

IDENTITY = podspec.RunIdentity(
    prefix="tenant-lifecycle.dev",
    namespace="team-a",
    job="schema",
    operation="lifecycle.upsert",
    tenant_env_id="t-1",
    batch_operation_id="b/1 with spaces",
    workflow_name="lc-b1",
    workflow_namespace="argo",
)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@given(
    job=st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?", fullmatch=True),
    batch=st.text(min_size=1, max_size=200),
    attempt=st.integers(min_value=1, max_value=9999),
)
def test_pod_name_is_a_short_deterministic_dns_label(job: str, batch: str, attempt: int) -> None:
    name = podspec.pod_name(batch_operation_id=batch, namespace="ns", job=job, attempt=attempt)
    assert len(name) <= 63
    assert DNS_LABEL.match(name)
    assert name == podspec.pod_name(
        batch_operation_id=batch, namespace="ns", job=job, attempt=attempt
    )
    assert name != podspec.pod_name(
        batch_operation_id=batch + "x", namespace="ns", job=job, attempt=attempt
    )


@given(st.text(max_size=100))
def test_label_values_are_valid(value: str) -> None:
    label = podspec.label_value(value)
    assert len(label) <= 63
    assert re.match(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", label)


TEMPLATE: dict[str, Any] = {
    "metadata": {
        "labels": {"app": "schema", "controller-uid": "x", "batch.kubernetes.io/job-name": "j"},
        "annotations": {"team": "a"},
    },
    "spec": {
        "serviceAccountName": "schema-sa",
        "restartPolicy": "OnFailure",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
        "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
        "containers": [
            {
                "name": "main",
                "image": "app",
                "env": [
                    {"name": "LIFECYCLE_ATTEMPT", "value": "stale"},
                    {"name": "A", "value": "1"},
                ],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            },
            {"name": "sidecar", "image": "proxy"},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "imagePullSecrets": [{"name": "regcred"}],
    },
}


def _pod(**kwargs: Any) -> dict[str, Any]:
    env = podspec.PodEnv(
        values=podspec.lifecycle_env(IDENTITY, attempt=2, mount_path="/var/run/tenant-lifecycle"),
        secret_keys=("S3_SECRET",),
    )
    job = {"spec": {"template": copy.deepcopy(TEMPLATE)}}
    return podspec.build_pod(
        job,
        name="lc-x",
        identity=IDENTITY,
        attempt=2,
        env=env,
        mount_path="/var/run/tenant-lifecycle",
    )


def test_pod_preserves_template_with_documented_injections_only() -> None:
    pod = _pod()
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    for key in ("serviceAccountName", "securityContext", "tolerations", "imagePullSecrets"):
        assert spec[key] == TEMPLATE["spec"][key]
    assert spec["volumes"][0] == {"name": "data", "emptyDir": {}}
    assert spec["volumes"][1] == {"name": podspec.CONTEXT_VOLUME, "secret": {"secretName": "lc-x"}}
    for container in spec["initContainers"] + spec["containers"]:
        env = {e["name"]: e for e in container["env"]}
        assert env["LIFECYCLE_ATTEMPT"]["value"] == "2"
        assert env["LIFECYCLE_TENANT_ENV_FILE"]["value"].endswith("/environment.yaml")
        assert env["S3_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "lc-x", "key": "S3_SECRET"}
        assert container["volumeMounts"][-1] == {
            "name": podspec.CONTEXT_VOLUME,
            "mountPath": "/var/run/tenant-lifecycle",
            "readOnly": True,
        }
        assert "securityContext" not in container  # no privileges added
    main = spec["containers"][0]
    assert [e["name"] for e in main["env"]].count("LIFECYCLE_ATTEMPT") == 1
    assert main["env"][0] == {"name": "A", "value": "1"}
    labels = pod["metadata"]["labels"]
    assert "controller-uid" not in labels
    assert "batch.kubernetes.io/job-name" not in labels
    assert labels["app"] == "schema"
    assert labels["tenant-lifecycle.dev/attempt"] == "2"
    assert labels["tenant-lifecycle.dev/managed-by"] == "bridge"
    assert pod["metadata"]["annotations"]["tenant-lifecycle.dev/batch-operation-id"] == (
        "b/1 with spaces"
    )
    assert pod["metadata"]["annotations"]["team"] == "a"


def test_reserved_volume_name_is_refused() -> None:
    job = {"spec": {"template": copy.deepcopy(TEMPLATE)}}
    job["spec"]["template"]["spec"]["volumes"].append({"name": podspec.CONTEXT_VOLUME})
    with pytest.raises(ContractError, match="reserved"):
        podspec.build_pod(
            job,
            name="x",
            identity=IDENTITY,
            attempt=1,
            env=podspec.PodEnv(),
            mount_path="/m",
        )


def test_secret_holds_context_files() -> None:
    secret = podspec.build_secret(
        name="lc-x",
        identity=IDENTITY,
        attempt=1,
        environment_yaml="applications: [a]\n",
        changeset_yaml="{}\n",
        secret_env={"S3_SECRET": "s"},
    )
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {
        "environment.yaml": "applications: [a]\n",
        "changeset.yaml": "{}\n",
        "S3_SECRET": "s",
    }


def _failed_pod(
    *codes: tuple[str, int], conditions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "status": {
            "phase": "Failed",
            "conditions": conditions or [],
            "containerStatuses": [
                {"name": n, "state": {"terminated": {"exitCode": c, "reason": "Error"}}}
                for n, c in codes
            ],
        }
    }


def test_outcome_and_pod_failure_policy() -> None:
    rules = (
        PodFailureRule(action="FailJob", container_name="main", operator="In", values=(42,)),
        PodFailureRule(action="Ignore", operator="In", values=(7,)),
        PodFailureRule(
            action="Ignore", on_pod_conditions=({"type": "DisruptionTarget", "status": "True"},)
        ),
    )
    assert att.verdict(_failed_pod(("main", 42)), rules)[0] is att.Verdict.FAIL_JOB
    assert att.verdict(_failed_pod(("other", 42)), rules)[0] is att.Verdict.COUNT
    assert att.verdict(_failed_pod(("main", 7)), rules)[0] is att.Verdict.IGNORE
    assert att.verdict(_failed_pod(("main", 3)), rules)[0] is att.Verdict.COUNT
    evicted = _failed_pod(conditions=[{"type": "DisruptionTarget", "status": "True"}])
    assert att.verdict(evicted, rules)[0] is att.Verdict.IGNORE
    outcome = att.outcome(_failed_pod(("a", 0), ("b", 3)))
    assert (outcome.exit_code, outcome.container, outcome.succeeded) == (3, "b", False)
    assert att.outcome({"status": {"phase": "Succeeded"}}).succeeded


def test_stuck_reasons() -> None:
    pulling = {
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "m", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "x"}}}
            ],
        }
    }
    assert att.stuck_reason(pulling) == ("ImagePullBackOff", "container m: x")
    unschedulable = {
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        }
    }
    assert att.stuck_reason(unschedulable) is not None
    creating = {
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "m", "state": {"waiting": {"reason": "ContainerCreating"}}}
            ],
        }
    }
    assert att.stuck_reason(creating) is None


@pytest.mark.parametrize(
    ("status", "code", "process"),
    [
        (Status.SUCCEEDED, 0, 0),
        (Status.FAILED, 3, 3),
        (Status.FAILED, 2, 1),
        (Status.FAILED, 75, 1),
        (Status.FAILED, 143, 1),
        (Status.FAILED, None, 1),
        (Status.REFUSED, 2, 2),
        (Status.CANCELLED, None, 143),
        (Status.ERROR, 75, 75),
    ],
)
def test_exit_codes(status: Status, code: int | None, process: int) -> None:
    result = RunResult("ns", "j", "op", "t", "b").finish(
        status, reason="r", message="m", exit_code=code
    )
    assert result.process_exit_code == process
    assert result.to_json()["exitCode"] == code
