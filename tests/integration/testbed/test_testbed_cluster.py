"""The real control plane itself: what `tenantctl cluster up` promises, checked with kubectl.

The real Job controller and the node agent run a Job with an init container, an emptyDir shared
between containers, a Secret volume and downward-API env; `kubectl logs -f` streams a running
container; `kubectl exec` runs inside the container's own PID namespace; deleting a running pod is
graceful; a pod a real kubelet refuses (runAsNonRoot on a root image, an unknown image, a missing
Secret) is refused here the same way.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
import yaml

from testbed import ControlPlane

_names = count(1)


@pytest.fixture
def ns(control_plane: ControlPlane) -> Iterator[str]:
    name = f"testbed-{next(_names)}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


def apply(plane: ControlPlane, *docs: dict[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))


def get(plane: ControlPlane, kind: str, name: str, ns: str) -> dict[str, Any]:
    return dict(json.loads(plane.kubectl("get", kind, name, "-n", ns, "-o", "json")))


def wait_for(plane: ControlPlane, what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last})")


def pod(name: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"restartPolicy": "Never", **spec}}  # fmt: skip


def container_state(plane: ControlPlane, name: str, ns: str) -> dict[str, Any]:
    statuses = get(plane, "pod", name, ns).get("status", {}).get("containerStatuses") or []
    return dict(statuses[0].get("state", {})) if statuses else {}


def test_version_and_a_ready_node(control_plane: ControlPlane) -> None:
    version = control_plane.request("GET", "/version")
    assert version["gitVersion"] == "v1.35.4"
    nodes = json.loads(control_plane.kubectl("get", "nodes", "-o", "json"))["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["testbed-node"]
    ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}["Ready"]
    assert ready == "True"
    addresses = {a["type"]: a["address"] for a in nodes[0]["status"]["addresses"]}
    assert addresses["InternalIP"] == "127.0.0.1"


def test_a_job_runs_to_completion_with_init_emptydir_secret_and_downward_env(
    control_plane: ControlPlane, ns: str
) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
              "data": {"password": base64.b64encode(b"s3cr3t").decode()}}  # fmt: skip
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "hello", "namespace": ns},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": "hello"}},
                "spec": {
                    "restartPolicy": "Never",
                    "volumes": [
                        {"name": "work", "emptyDir": {}},
                        {"name": "creds", "secret": {"secretName": "creds"}},
                    ],
                    "initContainers": [{
                        "name": "prepare", "image": "busybox:1.36",
                        "command": ["sh", "-c", "echo prepared-by-init > /work/state"],
                        "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                    }],
                    "containers": [{
                        "name": "main", "image": "busybox:1.36",
                        "command": ["sh", "-c",
                                    'cat /work/state; cat /creds/password; echo; '
                                    'echo "pod=$POD_NAME ns=$POD_NS app=$APP"'],
                        "env": [
                            {"name": "POD_NAME",
                             "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "POD_NS",
                             "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            {"name": "APP", "valueFrom": {
                                "fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                        ],
                        "volumeMounts": [
                            {"name": "work", "mountPath": "/work"},
                            {"name": "creds", "mountPath": "/creds", "readOnly": True},
                        ],
                    }],
                },
            },
        },
    }  # fmt: skip
    apply(control_plane, secret, job)
    done = wait_for(
        control_plane,
        "the Job completes",
        lambda: get(control_plane, "job", "hello", ns).get("status", {}).get("succeeded"),
    )
    assert done == 1
    logs = control_plane.kubectl("logs", "-n", ns, "job/hello", "-c", "main")
    lines = logs.splitlines()
    assert lines[0] == "prepared-by-init"
    assert lines[1] == "s3cr3t"
    assert lines[2].startswith("pod=hello-")
    assert lines[2].endswith(f" ns={ns} app=hello")


def test_logs_follow_exec_and_graceful_delete(control_plane: ControlPlane, ns: str) -> None:
    script = (
        # `$$$$`: Kubernetes turns `$$` into `$` in a command, so the shell sees `$$`.
        'trap "echo got-term; sleep 0.5; echo bye; exit 0" TERM; echo "pid=$$$$"; i=0; '
        'while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'
    )
    apply(control_plane, pod("ticker", ns, {
        "terminationGracePeriodSeconds": 20,
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}],
    }))  # fmt: skip
    wait_for(control_plane, "the pod runs", lambda: "running" in container_state(
        control_plane, "ticker", ns))  # fmt: skip
    # `kubectl logs -f` streams while the container runs; the container's shell is PID 1.
    follow = subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "logs",
            "-f",
            "-n",
            ns,
            "ticker",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert follow.stdout is not None
    try:
        _follow_exec_and_delete(control_plane, ns, follow)
    finally:
        follow.kill()
        follow.wait(timeout=10)
        follow.stdout.close()


def _follow_exec_and_delete(
    control_plane: ControlPlane, ns: str, follow: subprocess.Popen[str]
) -> None:
    assert follow.stdout is not None
    assert follow.stdout.readline().strip() == "pid=1"
    assert follow.stdout.readline().strip().startswith("tick ")
    # `kubectl exec` runs in the container's namespaces: its PID 1 is the container's shell.
    out = control_plane.kubectl("exec", "-n", ns, "ticker", "--", "sh", "-c", "cat /proc/1/cmdline")
    assert "while true" in out.replace("\0", " ")
    failed = subprocess.run(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig), "exec", "-n", ns, "ticker",
         "--", "sh", "-c", "echo to-stderr >&2; exit 3"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert failed.returncode == 3
    assert "to-stderr" in failed.stderr
    # Graceful deletion: SIGTERM reaches the container's PID 1, whose trap finishes on its own
    # ("bye" is printed after a pause: a SIGKILL would have cut it), then the pod is gone.
    control_plane.kubectl("delete", "pod", "-n", ns, "ticker", "--wait=true", timeout=60)
    rest = follow.stdout.read()
    follow.wait(timeout=10)
    assert "got-term" in rest
    assert rest.rstrip().endswith("bye")
    gone = control_plane.kubectl("get", "pod", "-n", ns, "ticker", "--ignore-not-found")
    assert gone.strip() == ""


def test_exec_kill_1_stops_the_container_not_the_machine(
    control_plane: ControlPlane, ns: str
) -> None:
    """Argo stops a container by exec'ing `kill 15 1` in it: that must hit the container's PID 1."""
    script = 'trap "echo stopped-by-kill-1; exit 0" TERM; while true; do sleep 0.2; done'
    apply(control_plane, pod("victim", ns, {
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}],
    }))  # fmt: skip
    wait_for(control_plane, "the pod runs", lambda: "running" in container_state(
        control_plane, "victim", ns))  # fmt: skip
    control_plane.kubectl("exec", "-n", ns, "victim", "--", "kill", "-TERM", "1")
    state = wait_for(
        control_plane,
        "the container ends",
        lambda: container_state(control_plane, "victim", ns).get("terminated"),
    )
    assert state["exitCode"] == 0
    assert "stopped-by-kill-1" in control_plane.kubectl("logs", "-n", ns, "victim")
    assert get(control_plane, "pod", "victim", ns)["status"]["phase"] == "Succeeded"


def test_run_as_non_root_on_a_root_image_is_refused_as_a_kubelet_does(
    control_plane: ControlPlane, ns: str
) -> None:
    apply(control_plane, pod("rooted", ns, {
        "securityContext": {"runAsNonRoot": True},
        "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
    }))  # fmt: skip
    waiting = wait_for(
        control_plane,
        "the container is refused",
        lambda: (
            container_state(control_plane, "rooted", ns).get("waiting", {}).get("message")
            and container_state(control_plane, "rooted", ns)["waiting"]
        ),
    )
    assert waiting["reason"] == "CreateContainerConfigError"
    assert waiting["message"] == (
        f'container has runAsNonRoot and image will run as root (pod: "rooted_{ns}'
        f'({get(control_plane, "pod", "rooted", ns)["metadata"]["uid"]})", container: main)'
    )
    assert get(control_plane, "pod", "rooted", ns)["status"]["phase"] == "Pending"


def test_an_unknown_image_waits_in_image_pull_back_off(
    control_plane: ControlPlane, ns: str
) -> None:
    apply(control_plane, pod("nowhere", ns, {
        "containers": [
            {"name": "main", "image": "registry.invalid/nothing:1", "command": ["true"]}
        ],
    }))  # fmt: skip
    reasons = set()

    def seen() -> bool:
        reasons.add(container_state(control_plane, "nowhere", ns).get("waiting", {}).get("reason"))
        return "ImagePullBackOff" in reasons

    wait_for(control_plane, "ImagePullBackOff", seen)
    assert "ErrImagePull" in reasons or "ImagePullBackOff" in reasons
    assert get(control_plane, "pod", "nowhere", ns)["status"]["phase"] == "Pending"


def test_a_missing_secret_holds_the_pod_until_it_exists(
    control_plane: ControlPlane, ns: str
) -> None:
    apply(control_plane, pod("patient", ns, {
        "volumes": [{"name": "s", "secret": {"secretName": "later"}}],
        "containers": [{"name": "main", "image": "busybox", "command": ["cat", "/s/key"],
                        "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
    }))  # fmt: skip

    def failed_mount() -> bool:
        events = control_plane.kubectl(
            "get", "events", "-n", ns, "--field-selector", "involvedObject.name=patient"
        )
        return "FailedMount" in events

    wait_for(control_plane, "a FailedMount event", failed_mount)
    assert get(control_plane, "pod", "patient", ns)["status"]["phase"] == "Pending"
    apply(control_plane, {"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": "later", "namespace": ns},
                          "stringData": {"key": "arrived"}})  # fmt: skip
    wait_for(
        control_plane,
        "the pod succeeds",
        lambda: get(control_plane, "pod", "patient", ns)["status"].get("phase") == "Succeeded",
    )
    assert control_plane.kubectl("logs", "-n", ns, "patient").strip() == "arrived"
