"""The bridge against the sandbox: success, Job semantics, deadline, stuck pods, refusals, and
the pod spec it builds from a realistic template."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from bridge.errors import NotFoundError
from bridge.kube import PODS, SECRETS
from bridge.result import Status
from tests.integration.bridge.conftest import PREFIX, BridgeEnv


def test_successful_run_streams_env_and_files_and_cleans_up(bridge_env: BridgeEnv) -> None:
    env_file = bridge_env.tmp / "env.yaml"
    env_file.write_text(yaml.safe_dump({"applications": ["catalog", "search"], "region": "eu"}))
    changes = bridge_env.tmp / "changeset.json"
    changes.write_text(json.dumps({"plan": "gold"}))
    result_path = bridge_env.tmp / "out" / "result.json"
    bridge_env.add_job(
        "schema",
        'echo "TENANT=$LIFECYCLE_TENANT_ENV_ID OP=$LIFECYCLE_OPERATION_NAME '
        'BATCH=$LIFECYCLE_BATCH_OPERATION_ID ATTEMPT=$LIFECYCLE_ATTEMPT"; '
        'cat "$LIFECYCLE_TENANT_ENV_FILE"; cat "$LIFECYCLE_CHANGESET_FILE"',
    )
    done = bridge_env.cli(
        bridge_env.run_args(
            "schema",
            "--environment",
            str(env_file),
            "--changeset",
            str(changes),
            "--result",
            str(result_path),
            batch="b-1",
        )
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert "TENANT=t-799a OP=lifecycle.upsert BATCH=b-1 ATTEMPT=1" in out
    assert "- catalog" in out
    assert "region: eu" in out
    assert "plan: gold" in out
    result = json.loads(result_path.read_text())
    assert result["status"] == "succeeded"
    assert result["exitCode"] == 0
    assert [a["attempt"] for a in result["attempts"]] == [1]
    assert result["attempts"][0]["pod"].startswith("lc-schema-")
    assert bridge_env.pods_gone()
    assert bridge_env.secrets() == []


def test_exit_code_after_backoff_limit_plus_one_attempts(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job("fails", "echo try $LIFECYCLE_ATTEMPT; exit 3", backoff_limit=2)
    result_path = bridge_env.tmp / "result.json"
    done = bridge_env.cli(bridge_env.run_args("fails", "--result", str(result_path)))
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == ["try 1", "try 2", "try 3"], done.stderr
    result = json.loads(result_path.read_text())
    assert result["status"] == "failed"
    assert result["reason"] == "BackoffLimitExceeded"
    assert [(a["attempt"], a["exitCode"], a["counted"]) for a in result["attempts"]] == [
        (1, 3, True),
        (2, 3, True),
        (3, 3, True),
    ]
    assert len({a["pod"] for a in result["attempts"]}) == 3
    # delete-policy "succeeded": failed pods stay for debugging, their Secrets with them
    assert len(bridge_env.pods()) == 3


def test_fail_job_rule_stops_at_once(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job(
        "fatal",
        "exit 42",
        backoff_limit=5,
        pod_failure_policy={
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]},
                }
            ]
        },
    )
    result, _ = bridge_env.run("fatal")
    assert result.reason == "PodFailurePolicy"
    assert result.process_exit_code == 42
    assert len(result.attempts) == 1


def test_ignore_rule_does_not_count_an_attempt(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job(
        "flaky",
        'if [ "$LIFECYCLE_ATTEMPT" = 1 ]; then exit 7; fi; exit 3',
        backoff_limit=0,
        pod_failure_policy={
            "rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [7]}}]
        },
    )
    result, _ = bridge_env.run("flaky")
    assert [(a.exit_code, a.counted) for a in result.attempts] == [(7, False), (3, True)]
    assert result.reason == "BackoffLimitExceeded"
    assert result.process_exit_code == 3


def test_success_after_a_counted_failure(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job("second", '[ "$LIFECYCLE_ATTEMPT" = 2 ]', backoff_limit=1)
    result, _ = bridge_env.run("second")
    assert result.status is Status.SUCCEEDED
    assert [a.exit_code for a in result.attempts] == [1, 0]
    assert bridge_env.pods() == []  # delete-policy succeeded: every attempt's pod goes


def test_deadline_exceeded_deletes_the_pod(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job("slow", "echo begin; sleep 30", deadline=1, backoff_limit=3)
    result, out = bridge_env.run("slow")
    assert result.status is Status.FAILED
    assert result.reason == "DeadlineExceeded"
    assert result.process_exit_code != 0
    assert "begin" in out
    assert len(result.attempts) == 1
    with pytest.raises(NotFoundError):
        bridge_env.kube.get(PODS, result.attempts[0].pod, namespace=bridge_env.namespace)


# How each backend makes a pod stuck: the sandbox scripts it with reserved image names; on the
# real control plane the node agent cannot "pull" an image missing from its image map, and the
# real scheduler cannot place a pod whose nodeSelector matches no node.
_STUCK: dict[str, dict[str, dict[str, Any]]] = {
    "sandbox": {
        "pull-error": {"image": "sandbox.invalid/pull-error:1"},
        "unschedulable": {"image": "sandbox.invalid/unschedulable"},
    },
    "real": {
        "pull-error": {"image": "registry.invalid/team/nowhere:1"},
        "unschedulable": {"nodeSelector": {f"{PREFIX}/no-such-pool": "true"}},
    },
}


@pytest.mark.parametrize(
    ("stuck", "reasons"),
    [
        ("pull-error", {"ErrImagePull", "ImagePullBackOff"}),
        ("unschedulable", {"Unschedulable"}),
    ],
)
def test_stuck_pod_fails_with_its_reason(
    bridge_env: BridgeEnv, stuck: str, reasons: set[str]
) -> None:
    how = _STUCK[bridge_env.backend.name][stuck]
    container = {"name": "main", "image": how.get("image", "busybox:1.36")}
    container["command"] = ["sh", "-c", "echo never"]
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if "nodeSelector" in how:
        pod_spec["nodeSelector"] = how["nodeSelector"]
    bridge_env.add_job("stuck", pod_spec=pod_spec, backoff_limit=3)
    result, _ = bridge_env.run("stuck")
    assert result.status is Status.FAILED
    assert result.reason in reasons
    assert result.process_exit_code == 1
    assert len(result.attempts) == 1  # retrying cannot fix an image reference
    assert bridge_env.pods_gone()


def _assert_nothing_created(env: BridgeEnv, namespace: str) -> None:
    assert env.pods(namespace) == []
    assert env.secrets(namespace) == []


def test_refused_when_not_annotated_for_the_operation(bridge_env: BridgeEnv) -> None:
    bridge_env.add_job("other", operations="lifecycle.decommission")
    done = bridge_env.cli(bridge_env.run_args("other"))
    assert done.returncode == 2, done.stderr
    assert "not annotated for lifecycle.upsert" in done.stderr
    assert "Traceback" not in done.stderr
    _assert_nothing_created(bridge_env, bridge_env.namespace)


def test_refused_when_namespace_not_opted_in(bridge_env: BridgeEnv) -> None:
    outside = bridge_env.add_namespace(f"{bridge_env.namespace}-out", opted_in=False)
    bridge_env.add_job("job", namespace=outside)
    result, _ = bridge_env.run("job", namespace=outside)
    assert result.status is Status.REFUSED
    assert result.process_exit_code == 2
    assert "not opted in" in result.message
    _assert_nothing_created(bridge_env, outside)


@pytest.mark.parametrize("suspend", [False, None])
def test_refused_when_job_not_suspended(bridge_env: BridgeEnv, suspend: Any) -> None:
    bridge_env.add_job("live", suspend=suspend)
    result, _ = bridge_env.run("live")
    assert result.process_exit_code == 2
    assert "spec.suspend" in result.message
    _assert_nothing_created(bridge_env, bridge_env.namespace)


def test_refused_when_job_missing(bridge_env: BridgeEnv) -> None:
    result, _ = bridge_env.run("ghost")
    assert result.process_exit_code == 2
    assert "does not exist" in result.message


# Fields a server may default on a pod; anything else must equal the template.
_SERVER_DEFAULTS = {
    "nodeName",
    "schedulerName",
    "dnsPolicy",
    "terminationGracePeriodSeconds",
    "enableServiceLinks",
    "priority",
    "preemptionPolicy",
    "serviceAccount",
}
_CONTAINER_DEFAULTS = {
    "imagePullPolicy",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "resources",
}


def test_realistic_template_is_preserved_except_documented_injections(
    bridge_env: BridgeEnv,
) -> None:
    ns = bridge_env.namespace
    bridge_env.backend.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": ns},
                "data": {"MODE": "fast"},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "creds", "namespace": ns},
                "data": {"token": "czNjcjN0"},
            },
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "schema-runner", "namespace": ns},
            },
        ]
    )
    template: dict[str, Any] = {
        "restartPolicy": "OnFailure",
        "serviceAccountName": "schema-runner",
        "imagePullSecrets": [{"name": "regcred"}],
        "securityContext": {"runAsNonRoot": False, "seccompProfile": {"type": "RuntimeDefault"}},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "lifecycle", "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 1,
                        "preference": {
                            "matchExpressions": [
                                {"key": "pool", "operator": "In", "values": ["batch"]}
                            ]
                        },
                    }
                ]
            }
        },
        "initContainers": [
            {"name": "prepare", "image": "busybox:1.36", "command": ["sh", "-c", "echo prepared"]},
        ],
        "containers": [
            {
                "name": "main",
                "image": "registry.example.com/team/schema:1.2.3",
                "command": ["sh", "-c", 'echo "mode=$MODE"; cat /etc/projected/token; echo'],
                "envFrom": [{"configMapRef": {"name": "settings"}}],
                "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {"name": "projected", "mountPath": "/etc/projected", "readOnly": True}
                ],
                "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "10m"}},
            },
            {"name": "sidecar", "image": "envoy:1", "command": ["sh", "-c", "echo sidecar up"]},
        ],
        "volumes": [
            {
                "name": "projected",
                "projected": {
                    "sources": [
                        {"secret": {"name": "creds", "items": [{"key": "token", "path": "token"}]}},
                        {"configMap": {"name": "settings"}},
                    ]
                },
            },
            {"name": "scratch", "emptyDir": {}},
        ],
    }
    bridge_env.add_job(
        "realistic", pod_spec=template, annotations={f"{PREFIX}/delete-policy": "never"}
    )
    result, out = bridge_env.run("realistic")
    assert result.status is Status.SUCCEEDED, result.message
    assert "[prepare] prepared" in out
    assert "[main] mode=fast" in out
    assert "[main] s3cr3t" in out
    assert "[sidecar] sidecar up" in out
    pod = bridge_env.kube.get(PODS, result.attempts[0].pod, namespace=bridge_env.namespace)

    expected = copy.deepcopy(template)
    expected["restartPolicy"] = "Never"
    # API defaulting: a limit without a request is requested at the limit.
    expected["containers"][0]["resources"]["requests"]["memory"] = "128Mi"
    name = pod["metadata"]["name"]
    expected["volumes"].append({"name": "tenant-lifecycle-context", "secret": {"secretName": name}})
    for container in expected["initContainers"] + expected["containers"]:
        container.setdefault("env", [])
        container["volumeMounts"] = [
            *container.get("volumeMounts", []),
            {
                "name": "tenant-lifecycle-context",
                "mountPath": "/var/run/tenant-lifecycle",
                "readOnly": True,
            },
        ]
    spec = _without_admission(pod["spec"])
    assert set(spec) - set(expected) <= _SERVER_DEFAULTS, set(spec) - set(expected)
    for key, value in expected.items():
        if key in ("initContainers", "containers", "volumes"):
            continue
        assert spec[key] == value, key
    assert _without_defaults(spec["volumes"]) == expected["volumes"]
    for kind in ("initContainers", "containers"):
        assert [c["name"] for c in spec[kind]] == [c["name"] for c in expected[kind]]
        for got, want in zip(spec[kind], expected[kind], strict=True):
            injected = [e for e in got["env"] if e["name"].startswith("LIFECYCLE_")]
            assert {e["name"] for e in injected} >= {
                "LIFECYCLE_TENANT_ENV_ID",
                "LIFECYCLE_BATCH_OPERATION_ID",
                "LIFECYCLE_OPERATION_NAME",
                "LIFECYCLE_TENANT_ENV_FILE",
                "LIFECYCLE_CHANGESET_FILE",
                "LIFECYCLE_ATTEMPT",
            }
            assert [e for e in got["env"] if not e["name"].startswith("LIFECYCLE_")] == want["env"]
            rest = {k: v for k, v in got.items() if k != "env"}
            assert set(rest) - set(want) <= _CONTAINER_DEFAULTS
            for key, value in want.items():
                if key != "env":
                    assert rest[key] == value, (got["name"], key)
    labels = pod["metadata"]["labels"]
    assert labels["app"] == "realistic"
    for key in ("managed-by", "tenant", "operation", "batch", "job", "attempt"):
        assert f"{PREFIX}/{key}" in labels
    secret = bridge_env.kube.get(SECRETS, name, namespace=bridge_env.namespace)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]


_ADMITTED_TOLERATIONS = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}


def _without_admission(spec: dict[str, Any]) -> dict[str, Any]:
    """The pod spec less what a real apiserver's admission plugins add to every pod: the
    ServiceAccount plugin's ``kube-api-access-*`` token volume and its mounts, and
    DefaultTolerationSeconds' not-ready/unreachable tolerations (the sandbox adds neither;
    docs/sandbox.md)."""
    cleaned = copy.deepcopy(spec)
    tokens = {
        v["name"] for v in cleaned.get("volumes", []) if v["name"].startswith("kube-api-access-")
    }
    cleaned["volumes"] = [v for v in cleaned.get("volumes", []) if v["name"] not in tokens]
    for kind in ("initContainers", "containers"):
        for container in cleaned.get(kind, []):
            mounts = [m for m in container.get("volumeMounts", []) if m["name"] not in tokens]
            container["volumeMounts"] = mounts
    tolerations = [
        t for t in cleaned.get("tolerations", []) if t.get("key") not in _ADMITTED_TOLERATIONS
    ]
    if tolerations:
        cleaned["tolerations"] = tolerations
    else:
        cleaned.pop("tolerations", None)
    return cleaned


def _without_defaults(volumes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A server may default defaultMode on secret/projected volumes.
    cleaned = copy.deepcopy(volumes)
    for volume in cleaned:
        for source in ("secret", "projected", "configMap"):
            if source in volume:
                volume[source].pop("defaultMode", None)
    return cleaned


def test_deadline_spans_attempts(bridge_env: BridgeEnv) -> None:
    # A real pod takes its scheduling and start-up out of the deadline too: give attempt 1 room.
    deadline = 2 if bridge_env.backend.name == "sandbox" else 8
    bridge_env.add_job(
        "retry-slow",
        'if [ "$LIFECYCLE_ATTEMPT" = 1 ]; then sleep 0.5; exit 3; fi; sleep 30',
        deadline=deadline,
        backoff_limit=5,
    )
    result, _ = bridge_env.run("retry-slow")
    assert result.reason == "DeadlineExceeded"
    # attempt 2 got what was left of the Job's deadline, not a deadline of its own
    assert [a.attempt for a in result.attempts] == [1, 2]
    assert [a.exit_code for a in result.attempts] == [3, None]
    assert result.attempts[1].reason == "DeadlineExceeded"
