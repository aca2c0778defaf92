"""kubectl (/usr/bin/kubectl) against the sandbox through a kubeconfig, unmodified."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from sandbox import Sandbox
from sandbox.discovery import AGGREGATED_V2

KUBECTL = "/usr/bin/kubectl"

Kubectl = Callable[..., str]


@pytest.fixture(scope="module")
def kube_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(workdir=tmp_path_factory.mktemp("sandbox-kubectl")) as sb:
        yield sb


@pytest.fixture(scope="module")
def kubectl(kube_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    cache = tmp_path_factory.mktemp("kubectl-cache")
    config = kube_sandbox.kubeconfig_path()

    def run(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [KUBECTL, "--kubeconfig", str(config), "--cache-dir", str(cache), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"kubectl {' '.join(args)} failed: {done.stderr}"
        return done.stdout

    return run


MANIFESTS = """
apiVersion: v1
kind: Namespace
metadata: {name: team-k}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team-k, labels: {tier: config}}
data: {region: eu}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: team-k}
stringData: {token: abc}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: runner, namespace: team-k}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: schema
  namespace: team-k
  labels: {tenant-lifecycle.dev/enabled: "true"}
  annotations: {tenant-lifecycle.dev/operations: lifecycle.upsert}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: example/schema:1, command: ["true"]}]
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: lc-b1, namespace: team-k}
spec: {workflowTemplateRef: {name: tenant-lifecycle}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: team-k}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
"""


def test_create_get_label_annotate_delete(kubectl: Kubectl) -> None:
    out = kubectl("create", "-f", "-", stdin=MANIFESTS)
    assert "job.batch/schema created" in out
    assert "workflow.argoproj.io/lc-b1 created" in out
    names = kubectl("get", "ns", "-o", "name").split()
    assert "namespace/team-k" in names
    jobs = kubectl(
        "get", "jobs", "-n", "team-k", "-l", "tenant-lifecycle.dev/enabled=true", "-o", "name"
    )
    assert jobs.split() == ["job.batch/schema"]
    assert kubectl("get", "wf", "-n", "team-k", "-o", "name").split() == [
        "workflow.argoproj.io/lc-b1"
    ]
    assert "settings" in kubectl("get", "cm", "-n", "team-k", "-l", "tier in (config)")
    kubectl("label", "-n", "team-k", "configmap", "settings", "owner=team-k")
    kubectl("annotate", "-n", "team-k", "configmap", "settings", "note=hello world")
    got = json.loads(kubectl("get", "-n", "team-k", "configmap", "settings", "-o", "json"))
    assert got["metadata"]["labels"] == {"tier": "config", "owner": "team-k"}
    assert got["metadata"]["annotations"]["note"] == "hello world"
    kubectl("label", "-n", "team-k", "configmap", "settings", "owner-")
    got = json.loads(kubectl("get", "-n", "team-k", "configmap", "settings", "-o", "json"))
    assert "owner" not in got["metadata"]["labels"]
    for kind in (
        "job/schema",
        "wf/lc-b1",
        "secret/creds",
        "sa/runner",
        "role/reader",
        "configmap/settings",
    ):
        kubectl("delete", "-n", "team-k", kind)
    assert kubectl("get", "jobs,cm,secrets,roles", "-n", "team-k", "-o", "name") == ""


def test_generators_send_protobuf_and_work(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "team-g")
    kubectl("create", "configmap", "c", "-n", "team-g", "--from-literal=a=1")
    kubectl("create", "secret", "generic", "s", "-n", "team-g", "--from-literal=pw=x")
    kubectl("create", "serviceaccount", "runner", "-n", "team-g")
    kubectl("create", "role", "r", "-n", "team-g", "--verb=get", "--resource=pods")
    kubectl(
        "create", "rolebinding", "rb", "-n", "team-g", "--role=r", "--serviceaccount=team-g:runner"
    )
    assert kubectl("get", "cm", "c", "-n", "team-g", "-o", "jsonpath={.data.a}") == "1"
    assert kubectl("create", "token", "runner", "-n", "team-g").strip()
    subjects = json.loads(
        kubectl("get", "rolebinding", "rb", "-n", "team-g", "-o", "jsonpath={.subjects}")
    )
    assert subjects[0]["name"] == "runner"


def test_logs_follow_on_a_running_pod(kubectl: Kubectl, kube_sandbox: Sandbox) -> None:
    kube_sandbox.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "talker", "namespace": "default"},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "x",
                            "command": [
                                "sh",
                                "-c",
                                "for i in 1 2 3; do echo tick $i; sleep 0.2; done",
                            ],
                        }
                    ],
                },
            }
        ]
    )
    kube_sandbox.wait_for_pod("default", "talker", phases=["Running"])
    assert kubectl("logs", "-f", "talker") == "tick 1\ntick 2\ntick 3\n"
    assert "Completed" in kubectl("get", "pod", "talker")
    kubectl("delete", "pod", "talker")


def test_get_all_namespaces_as_yaml(kubectl: Kubectl, kube_sandbox: Sandbox) -> None:
    kube_sandbox.apply(
        [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": ns}}
            for ns in ("default", "kube-system")
        ]
    )
    doc = yaml.safe_load(kubectl("get", "configmaps", "-A", "-o", "yaml"))
    found = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in doc["items"]}
    assert {("default", "x"), ("kube-system", "x")} <= found


def test_aggregated_discovery_and_api_resources(kubectl: Kubectl, kube_sandbox: Sandbox) -> None:
    request = urllib.request.Request(
        f"{kube_sandbox.url}/apis",
        headers={"Accept": f"{AGGREGATED_V2},application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.headers["Content-Type"] == AGGREGATED_V2
        doc = json.loads(resp.read())
    assert doc["kind"] == "APIGroupDiscoveryList"
    groups = {item["metadata"]["name"] for item in doc["items"]}
    assert {"batch", "argoproj.io", "rbac.authorization.k8s.io"} <= groups
    resources = kubectl("api-resources", "-o", "name").split()
    assert {"pods", "jobs.batch", "workflows.argoproj.io"} <= set(resources)
    short = kubectl("api-resources", "--api-group=argoproj.io")
    assert "wf" in short


def test_kubectl_errors_read_like_a_real_server(tmp_path: Path, kube_sandbox: Sandbox) -> None:
    done = subprocess.run(
        [
            KUBECTL,
            "--kubeconfig",
            str(kube_sandbox.kubeconfig_path()),
            "--cache-dir",
            str(tmp_path),
            "get",
            "pod",
            "missing",
            "-n",
            "default",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert 'Error from server (NotFound): pods "missing" not found' in done.stderr
