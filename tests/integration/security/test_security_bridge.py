"""The bridge under attack: tampered parameters, secret leaks, privilege creep.

* It refuses a namespace that is not opted in even when RBAC would let it in (the platform bound
  its role there by mistake), and every other tampered parameter: exit 2, nothing created.
* The tenant environment, the changeset and the storage credentials travel only in the per-run
  Secret: a whole lifecycle (local engine, bridge subprocess, a storage operation on a real
  SeaweedFS) with a distinctive marker in each is searched for the markers everywhere else.
* The pod it creates has exactly the Job template's privileges.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.contract import ContractSettings
from bridge.kube import Kube, KubeSettings
from bridge.podspec import CONTEXT_VOLUME
from bridge.result import Status
from bridge.runner import Runner, RunRequest
from bridge.settings import BridgeSettings
from orchestrator.engine import (
    BridgeSettings as EngineBridgeSettings,
)
from orchestrator.engine import (
    EngineSettings,
    RunObserver,
    local_engine,
)
from orchestrator.engine import RunRequest as EngineRequest
from orchestrator.engine.plan import PlannedJob
from orchestrator.listen import LocalResultPublisher
from orchestrator.metrics import Metrics
from sandbox import Sandbox
from tests.fixtures.seaweedfs import SeaweedS3
from tests.support.bus import FakeBus

from .helpers import MANAGED_NS, PREFIX, WF_NS, find_marker, load_install, token_for

FAST_ENV = {
    "BRIDGE_BACKOFF_BASE": "0.05",
    "BRIDGE_BACKOFF_MAX": "0.2",
    "BRIDGE_STUCK_GRACE": "5",
    "BRIDGE_DELETE_GRACE": "1",
    "BRIDGE_LOG_RECONNECT_DELAY": "0.05",
    "BRIDGE_MAX_RETRIES": "2",
}
FAST = BridgeSettings(
    contract=ContractSettings(),
    kube=KubeSettings(max_retries=3, backoff_base=0.05, backoff_max=0.2, request_timeout=10),
    stuck_grace_seconds=5.0,
    delete_grace_seconds=1,
    log_drain_timeout=5.0,
    log_reconnect_delay=0.05,
    watch_timeout_seconds=5,
)


def _namespace(name: str, *, opted_in: bool) -> dict[str, Any]:
    labels = {f"{PREFIX}/enabled": "true"} if opted_in else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _job(
    ns: str,
    name: str = "hello",
    *,
    script: str = "echo hello",
    operations: str = "lifecycle.upsert",
    suspend: bool = True,
    pod_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec = pod_spec or {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {f"{PREFIX}/enabled": "true"},
            "annotations": {f"{PREFIX}/operations": operations},
        },
        "spec": {"suspend": suspend, "backoffLimit": 0, "template": {"spec": spec}},
    }


def _bridge_binding(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "tenant-lifecycle-bridge", "namespace": ns},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "tenant-lifecycle-bridge",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "tenant-lifecycle-bridge",
                      "namespace": WF_NS}],
    }  # fmt: skip


# -- tampered parameters ---------------------------------------------------------------------

BOUND_NOT_OPTED = "team-bound-not-opted"

TAMPERED = {
    # (namespace, job, operation): what the refusal names
    "bound-but-not-opted-in": ((BOUND_NOT_OPTED, "hello", "lifecycle.upsert"), "not opted in"),
    "job-not-suspended": ((MANAGED_NS, "running", "lifecycle.upsert"), "suspend"),
    "operation-not-annotated": ((MANAGED_NS, "hello", "lifecycle.decommission"), "not annotated"),
    "job-does-not-exist": ((MANAGED_NS, "ghost", "lifecycle.upsert"), "does not exist"),
    "namespace-does-not-exist": (("team-nowhere", "hello", "lifecycle.upsert"), "does not exist"),
}


@pytest.fixture(scope="module")
def tampered_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(rbac=True, workdir=tmp_path_factory.mktemp("security-tampered")) as sb:
        load_install(sb)
        sb.apply([_namespace(BOUND_NOT_OPTED, opted_in=False)])
        sb.apply(
            [
                # RBAC would allow the bridge in: the platform bound its role by mistake.
                _bridge_binding(BOUND_NOT_OPTED),
                _job(BOUND_NOT_OPTED),
                _job(MANAGED_NS),
                _job(MANAGED_NS, "running", suspend=False),
            ]
        )
        yield sb


def test_bridge_refuses_tampered_parameters_and_creates_nothing(
    tampered_cluster: Sandbox, tmp_path: Path
) -> None:
    sb = tampered_cluster
    kubeconfig = sb.kubeconfig_path(token=token_for(sb, "tenant-lifecycle-bridge"))
    env = {**os.environ, **FAST_ENV, "BRIDGE_KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": WF_NS}
    before = sb.store.changes_since(0)[-1].rv if sb.store.changes_since(0) else 0
    procs = {}
    for case, ((ns, job, op), _) in TAMPERED.items():
        result = tmp_path / f"{case}.json"
        argv = [
            sys.executable, "-m", "bridge", "run", "--namespace", ns, "--job", job,
            "--operation", op, "--tenant-env-id", "t-tamper", "--batch-operation-id", case,
            "--result", str(result),
        ]  # fmt: skip
        procs[case] = (
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=tmp_path),
            result,
        )  # fmt: skip
    for case, (proc, result_path) in procs.items():
        out, err = proc.communicate(timeout=60)
        expected = TAMPERED[case][1]
        assert proc.returncode == 2, (case, out, err)
        assert "Traceback" not in err, (case, err)
        assert expected in err, (case, err)
        result = json.loads(result_path.read_text())
        assert (result["status"], result["reason"], result["exitCode"]) == (
            "refused",
            "Refused",
            2,
        ), case
        assert result["attempts"] == []
    created = [
        (c.rkey, c.namespace, c.obj["metadata"]["name"])
        for c in sb.store.changes_since(before)
        if c.type == "ADDED" and c.rkey in ("pods", "secrets")
    ]
    assert created == []


# -- secrets travel only in Secrets ----------------------------------------------------------


class _Recorder(RunObserver):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lines: list[tuple[str, str, str]] = []

    def on_job_line(self, job: PlannedJob, line: str, stream: str) -> None:
        with self.lock:
            self.lines.append((job.key, stream, line))


LEAK_NS = "team-leak"
# The team's program: numbered lines, then an object in the export location with the injected
# credentials (which it must receive -- through secretKeyRef -- but never prints).
LEAK_SCRIPT = """
import os, boto3
for i in range(1, 4):
    print(f"line {i}", flush=True)
url = os.environ["LIFECYCLE_OBJECT_STORE_URL"]
bucket, _, prefix = url.removeprefix("s3://").partition("/")
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
s3.put_object(Bucket=bucket, Key=prefix + "data.txt", Body=b"tenant data")
print("uploaded", flush=True)
"""


def test_no_secret_value_leaks_from_a_whole_lifecycle(
    sandbox: Sandbox, seaweedfs: SeaweedS3, seaweedfs_bucket: str, tmp_path: Path
) -> None:
    marker = f"SECRET-MARKER-{uuid.uuid4().hex}"
    env_marker, change_marker = f"{marker}-ENV", f"{marker}-CHANGESET"
    credential = seaweedfs.secret_access_key
    assert len(credential) >= 16
    sb = sandbox
    pod_spec = {
        "restartPolicy": "Never",
        "containers": [
            {"name": "main", "image": "python", "command": [sys.executable, "-c", LEAK_SCRIPT]}
        ],
    }
    sb.apply(
        [
            _namespace(LEAK_NS, opted_in=True),
            _job(LEAK_NS, "backup", operations="lifecycle.backup", pod_spec=pod_spec),
        ]
    )
    storage_env = {
        "BRIDGE_STORAGE_BUCKET": seaweedfs_bucket,
        "BRIDGE_STORAGE_ENDPOINT_URL": seaweedfs.endpoint_url,
        "BRIDGE_STORAGE_CREDENTIALS": "static",
        "BRIDGE_STORAGE_ACCESS_KEY_ID": seaweedfs.access_key_id,
        "BRIDGE_STORAGE_SECRET_ACCESS_KEY": credential,
        **FAST_ENV,
    }
    engine = local_engine(
        EngineBridgeSettings(kubeconfig=str(sb.kubeconfig_path()), env=storage_env),
        settings=EngineSettings(parallelism=2),
    )
    recorder = _Recorder()
    request = EngineRequest(
        operation="lifecycle.backup",
        tenant_env_id="t-leak",
        batch_operation_id="b-leak",
        environment={"applications": ["catalog"], "dbPassword": env_marker},
        changeset={"apiToken": change_marker},
        region="eu-west-1",
    )
    outcome = engine.run(request, observer=recorder)
    lines = [line for _, stream, line in recorder.lines if stream == "stdout"]
    assert outcome.status == "succeeded", (outcome.to_json(), recorder.lines)
    assert lines == ["line 1", "line 2", "line 3", "uploaded"]

    bus = FakeBus()
    LocalResultPublisher(bus, "results", Metrics()).on_result(request, outcome)
    published = [json.loads(m.data) for m in bus.published["results"]]
    assert len(published) == 1
    assert next(m.attributes for m in bus.published["results"])["ce-id"] == "b-leak"

    changes = sb.store.changes_since(0)
    pods = [c.obj for c in changes if c.rkey == "pods"]
    secrets = [c.obj for c in changes if c.rkey == "secrets"]
    events = [c.obj for c in changes if c.rkey == "events"]
    assert pods
    assert secrets
    # The positive control: the markers and the credential are in the per-run Secret.
    decoded = "".join(
        base64.b64decode(v).decode() for s in secrets for v in (s.get("data") or {}).values()
    )
    for value in (env_marker, change_marker, credential):
        assert value in decoded
    haystacks: dict[str, Any] = {
        "bridge output (stdout+stderr)": "\n".join(line for _, _, line in recorder.lines),
        "result JSON": [job.to_json() for job in outcome.jobs],
        "operation result": outcome.to_json(),
        "result event": published,
        "result event attributes": [m.attributes for m in bus.published["results"]],
        "sandbox events": events,
        "pod specs": [p.get("spec") for p in pods],
        "pod metadata (labels, annotations)": [p.get("metadata") for p in pods],
        "pod status": [p.get("status") for p in pods],
        "pod log": sb.logs(LEAK_NS, pods[0]["metadata"]["name"])
        if sb.pod(LEAK_NS, pods[0]["metadata"]["name"])
        else "",
        "Secret metadata": [s.get("metadata") for s in secrets],
    }
    for value in (env_marker, change_marker, credential, marker):
        assert find_marker(value, haystacks) == [], value
    # The credential reaches the container by reference only.
    container = pods[0]["spec"]["containers"][0]
    by_name = {e["name"]: e for e in container["env"]}
    secret_ref = by_name["AWS_SECRET_ACCESS_KEY"]
    assert "value" not in secret_ref
    assert secret_ref["valueFrom"]["secretKeyRef"]["name"] == pods[0]["metadata"]["name"]
    assert all("value" not in e for k, e in by_name.items() if k.startswith("AWS_") and
               k.endswith(("KEY", "KEY_ID", "TOKEN")))  # fmt: skip


# -- no added privileges ---------------------------------------------------------------------

RICH_TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "schema"}, "annotations": {"team": "catalog"}},
    "spec": {
        "restartPolicy": "OnFailure",
        "serviceAccountName": "catalog-runner",
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 2000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [
            {"name": "init", "image": "busybox", "command": ["true"],
             "securityContext": {"allowPrivilegeEscalation": False,
                                 "capabilities": {"drop": ["ALL"]}}},
        ],
        "containers": [
            {
                "name": "main",
                "image": "busybox",
                "command": ["sh", "-c", "echo ok"],
                "env": [{"name": "TEAM_SETTING", "value": "1"}],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
            }
        ],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "tolerations": [{"key": "team", "operator": "Equal", "value": "catalog"}],
    },
}  # fmt: skip
MINIMAL_TEMPLATE: dict[str, Any] = {
    "spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo ok"]}],
    }
}
DANGEROUS = ("hostNetwork", "hostPID", "hostIPC", "hostUsers", "shareProcessNamespace",
             "priorityClassName", "nodeName", "runtimeClassName")  # fmt: skip


def _strip_injection(spec: dict[str, Any]) -> dict[str, Any]:
    """The pod spec without the documented injection (docs: bridge/podspec.py)."""
    spec = copy.deepcopy(spec)
    spec["volumes"] = [v for v in spec.get("volumes") or [] if v["name"] != CONTEXT_VOLUME]
    if not spec["volumes"]:
        del spec["volumes"]
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            container["env"] = [
                e for e in container.get("env") or [] if not e["name"].startswith("LIFECYCLE_")
            ]
            if not container["env"]:
                del container["env"]
            container["volumeMounts"] = [
                m for m in container.get("volumeMounts") or [] if m["name"] != CONTEXT_VOLUME
            ]
            if not container["volumeMounts"]:
                del container["volumeMounts"]
    spec.pop("restartPolicy", None)
    return spec


def _assert_subset(expected: Any, actual: Any, where: str) -> None:
    """Everything the template set is in the pod, unchanged (server defaults may be added)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            _assert_subset(value, actual.get(key), f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), where
        assert len(actual) == len(expected), where
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _assert_subset(e, a, f"{where}[{index}]")
    else:
        assert actual == expected, where


@pytest.mark.parametrize("template", [RICH_TEMPLATE, MINIMAL_TEMPLATE], ids=["rich", "minimal"])
def test_bridge_adds_no_privileges_to_the_pod(sandbox: Sandbox, template: dict[str, Any]) -> None:
    sb = sandbox
    ns = "team-priv"
    job = _job(ns, "schema")
    job["spec"]["template"] = copy.deepcopy(template)
    sb.apply(
        [
            _namespace(ns, opted_in=True),
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "catalog-runner", "namespace": ns}},
            job,
        ]
    )  # fmt: skip
    with Kube(settings=FAST.kube, host=sb.url, token=sb.admin_token) as kube:
        request = RunRequest(
            namespace=ns,
            job="schema",
            operation="lifecycle.upsert",
            tenant_env_id="t-priv",
            batch_operation_id=f"b-priv-{uuid.uuid4().hex[:6]}",
        )
        with open(os.devnull, "w") as sink:
            result = Runner(kube, request, settings=FAST, out=sink).run()
    assert result.status is Status.SUCCEEDED, result.message
    created = [c.obj for c in sb.store.changes_since(0) if c.rkey == "pods" and c.type == "ADDED"]
    assert len(created) == 1
    pod_spec = created[0]["spec"]
    expected = copy.deepcopy(template["spec"])
    expected.pop("restartPolicy", None)
    actual = _strip_injection(pod_spec)
    # Server-side defaults the sandbox fills in are not the bridge's doing: compare the
    # fields the template set, and require that no privilege-bearing field appeared.
    for key, value in expected.items():
        _assert_subset(value, actual.get(key), key)
    for key in DANGEROUS:
        assert key not in pod_spec or pod_spec[key] == template["spec"].get(key), key
    assert pod_spec.get("serviceAccountName", "default") == template["spec"].get(
        "serviceAccountName", "default"
    )
    assert pod_spec.get("securityContext") in (None, {}, template["spec"].get("securityContext"))
    for kind in ("initContainers", "containers"):
        for before, after in zip(
            template["spec"].get(kind) or [], pod_spec.get(kind) or [], strict=True
        ):
            assert after.get("securityContext") == before.get("securityContext")
            assert after["image"] == before["image"]
            assert after.get("command") == before.get("command")
    volumes = [v for v in pod_spec.get("volumes") or [] if v["name"] == CONTEXT_VOLUME]
    assert volumes == [
        {"name": CONTEXT_VOLUME, "secret": {"secretName": created[0]["metadata"]["name"]}}
    ]
    assert not any("hostPath" in v for v in pod_spec.get("volumes") or [])
    for container in pod_spec["containers"]:
        mounts = [m for m in container["volumeMounts"] if m["name"] == CONTEXT_VOLUME]
        assert len(mounts) == 1
        assert mounts[0]["readOnly"] is True
    assert pod_spec["restartPolicy"] == "Never"
