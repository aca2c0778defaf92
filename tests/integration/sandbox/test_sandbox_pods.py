"""The pod runtime: processes, env, volumes, statuses, logs, deadlines, deletion, orphans."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox import Sandbox


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(workdir=tmp_path_factory.mktemp("sandbox-pods")) as sb:
        yield sb


@pytest.fixture
def core(shared_sandbox: Sandbox) -> Iterator[client.CoreV1Api]:
    cfg = client.Configuration()
    cfg.host = shared_sandbox.url
    cfg.api_key = {"authorization": f"Bearer {shared_sandbox.admin_token}"}
    with client.ApiClient(cfg) as api_client:
        yield client.CoreV1Api(api_client)


@pytest.fixture
def ns(core: client.CoreV1Api, request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("_", "-")[:50].lower().strip("-")
    core.create_namespace({"metadata": {"name": name}})
    return name


def pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}
    container.update(spec.pop("container", {}))
    return {
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def test_secret_volume_pod_fails_with_exit_3_and_logs_the_secret(
    core: client.CoreV1Api, ns: str, shared_sandbox: Sandbox
) -> None:
    core.create_namespaced_secret(
        ns, {"metadata": {"name": "ctx"}, "stringData": {"environment.yaml": "tenant: t1\n"}}
    )
    body = pod(
        "p",
        'echo hi; cat "$FILE"; exit 3',
        container={
            "env": [{"name": "FILE", "value": "/var/run/tenant-lifecycle/environment.yaml"}],
            "volumeMounts": [
                {"name": "ctx", "mountPath": "/var/run/tenant-lifecycle", "readOnly": True}
            ],
        },
        volumes=[{"name": "ctx", "secret": {"secretName": "ctx"}}],
    )
    core.create_namespaced_pod(ns, body)
    done = shared_sandbox.wait_for_pod(ns, "p")
    assert done["status"]["phase"] == "Failed"
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"
    assert core.read_namespaced_pod_log("p", ns) == "hi\ntenant: t1\n"
    # The mount lived in the container's private mount namespace only.
    assert not os.path.exists("/var/run/tenant-lifecycle")


def test_env_sources_config_volumes_init_containers_and_working_dir(
    core: client.CoreV1Api, ns: str, shared_sandbox: Sandbox
) -> None:
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": "cfg"}, "data": {"region": "eu", "mode": "fast"}}
    )
    core.create_namespaced_secret(ns, {"metadata": {"name": "sec"}, "stringData": {"pw": "s3"}})
    body = {
        "metadata": {"name": "p", "labels": {"app": "demo"}},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [
                {
                    "name": "init",
                    "image": "x",
                    "command": ["sh", "-c", "echo seeded > /work/seed"],
                    "volumeMounts": [{"name": "scratch", "mountPath": "/work"}],
                }
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "x",
                    "workingDir": "/work",
                    "command": ["sh", "-c"],
                    "args": [
                        "echo $(GREETING) $REGION $PW $POD $NSP $APP $CFG_mode; cat seed; "
                        "cat /etc/cfg/renamed; echo; ls /etc/cfg"
                    ],
                    "env": [
                        {"name": "WHO", "value": "world"},
                        {"name": "GREETING", "value": "hello-$(WHO)"},
                        {
                            "name": "REGION",
                            "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "region"}},
                        },
                        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {
                            "name": "NSP",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                        },
                        {
                            "name": "APP",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}},
                        },
                    ],
                    "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                    "volumeMounts": [
                        {"name": "scratch", "mountPath": "/work"},
                        {"name": "cfg", "mountPath": "/etc/cfg"},
                    ],
                }
            ],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {
                    "name": "cfg",
                    "configMap": {"name": "cfg", "items": [{"key": "mode", "path": "renamed"}]},
                },
            ],
        },
    }
    core.create_namespaced_pod(ns, body)
    done = shared_sandbox.wait_for_pod(ns, "p")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == (
        "Completed"
    )
    assert core.read_namespaced_pod_log("p", ns, container="main").splitlines() == [
        "hello-world eu s3 p " + ns + " demo fast",
        "seeded",
        "fast",
        "renamed",
    ]
    assert core.read_namespaced_pod_log("p", ns, container="init") == ""


def test_phases_and_container_states_while_running(
    core: client.CoreV1Api, ns: str, shared_sandbox: Sandbox
) -> None:
    core.create_namespaced_pod(ns, pod("p", "echo started; sleep 30"))
    running = shared_sandbox.wait_for_pod(ns, "p", phases=["Running"])
    state = running["status"]["containerStatuses"][0]
    assert "startedAt" in state["state"]["running"]
    assert state["ready"] is True
    assert running["status"]["startTime"]
    conditions = {c["type"]: c["status"] for c in running["status"]["conditions"]}
    assert conditions["PodScheduled"] == "True"
    assert conditions["Ready"] == "True"
    core.delete_namespaced_pod("p", ns, grace_period_seconds=0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not core.list_namespaced_pod(ns).items:
            break
        time.sleep(0.05)
    assert core.list_namespaced_pod(ns).items == []


def test_init_container_failure_fails_the_pod(
    core: client.CoreV1Api, ns: str, shared_sandbox: Sandbox
) -> None:
    body = pod("p", "echo never")
    body["spec"]["initContainers"] = [{"name": "init", "image": "x", "command": ["false"]}]
    core.create_namespaced_pod(ns, body)
    done = shared_sandbox.wait_for_pod(ns, "p")
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
    waiting = done["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "PodInitializing"


def test_exit_137_is_oomkilled_and_missing_binary_is_start_error(
    core: client.CoreV1Api, ns: str, shared_sandbox: Sandbox
) -> None:
    # "$$" is Kubernetes' escape for "$": the shell sees "kill -9 $$".
    core.create_namespaced_pod(ns, pod("oom", "kill -9 $$$$"))
    core.create_namespaced_pod(
        ns, pod("nobin", "", container={"command": ["no-such-binary-anywhere"]})
    )
    oom = shared_sandbox.wait_for_pod(ns, "oom")["status"]["containerStatuses"][0]
    assert oom["state"]["terminated"]["exitCode"] == 137
    assert oom["state"]["terminated"]["reason"] == "OOMKilled"
    nobin = shared_sandbox.wait_for_pod(ns, "nobin")["status"]["containerStatuses"][0]
    assert nobin["state"]["terminated"]["exitCode"] == 128
    assert nobin["state"]["terminated"]["reason"] == "StartError"


def test_active_deadline_kills_the_pod(
    core: client.CoreV1Api, ns: str, shared_sandbox: Sandbox
) -> None:
    core.create_namespaced_pod(ns, pod("p", "sleep 30", activeDeadlineSeconds=1))
    done = shared_sandbox.wait_for_pod(ns, "p")
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["reason"] == "DeadlineExceeded"


def test_delete_sends_sigterm_then_sigkill_after_grace(
    core: client.CoreV1Api, ns: str, shared_sandbox: Sandbox
) -> None:
    core.create_namespaced_pod(
        ns,
        pod("polite", "trap 'echo got TERM; exit 0' TERM; echo up; while true; do sleep 0.1; done"),
    )
    core.create_namespaced_pod(
        ns, pod("stubborn", "trap '' TERM; echo up; while true; do sleep 0.1; done")
    )
    for name in ("polite", "stubborn"):
        shared_sandbox.wait_for_pod(ns, name, phases=["Running"])
    deadline = time.monotonic() + 5
    while "up" not in shared_sandbox.logs(ns, "polite") and time.monotonic() < deadline:
        time.sleep(0.02)
    deleted = core.delete_namespaced_pod("polite", ns, grace_period_seconds=5)
    assert deleted.metadata.deletion_timestamp is not None
    core.delete_namespaced_pod("stubborn", ns, grace_period_seconds=1)
    deadline = time.monotonic() + 10
    while core.list_namespaced_pod(ns).items and time.monotonic() < deadline:
        time.sleep(0.05)
    assert core.list_namespaced_pod(ns).items == []
    assert shared_sandbox.pod_pids() == [] or all(
        not _alive(pid) for pid in shared_sandbox.pod_pids()
    )


def _previous_log(core: client.CoreV1Api, ns: str, name: str) -> str | int:
    """The previous run's log, or the HTTP status when there is none yet."""
    try:
        return str(core.read_namespaced_pod_log(name, ns, previous=True))
    except ApiException as exc:
        return int(exc.status)


def _raw_log(sb: Sandbox, ns: str, name: str, query: str) -> str:
    # The generated client has no sinceTime parameter; the bridge calls the path directly too.
    request = urllib.request.Request(
        f"{sb.url}/api/v1/namespaces/{ns}/pods/{name}/log?{query}",
        headers={"Authorization": f"Bearer {sb.admin_token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(resp.read().decode())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_logs_timestamps_since_time_tail_and_previous(
    core: client.CoreV1Api, ns: str, shared_sandbox: Sandbox
) -> None:
    core.create_namespaced_pod(ns, pod("p", "echo one; sleep 0.05; echo two; echo three"))
    shared_sandbox.wait_for_pod(ns, "p")
    stamped = core.read_namespaced_pod_log("p", ns, timestamps=True).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two", "three"]
    stamps = [line.split(" ", 1)[0] for line in stamped]
    assert all(len(s) == len("2026-01-01T00:00:00.000000000Z") for s in stamps)
    assert stamps == sorted(stamps)
    # sinceTime is inclusive, at full precision: resuming from the last seen line repeats only it.
    since = _raw_log(shared_sandbox, ns, "p", f"sinceTime={stamps[1]}")
    assert since == "two\nthree\n"
    assert core.read_namespaced_pod_log("p", ns, tail_lines=1) == "three\n"
    datetime.fromisoformat(stamps[0][:26] + "+00:00").astimezone(UTC)

    restarting = pod("r", "echo run; exit 1", restartPolicy="OnFailure")
    core.create_namespaced_pod(ns, restarting)
    # Once the container has restarted, the previous run's log is served.
    previous: str | int = 400
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and previous == 400:
        previous = _previous_log(core, ns, "r")
        time.sleep(0.05)
    assert previous == "run\n"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("p", ns, previous=True)
    assert err.value.status == 400
    core.delete_namespaced_pod("r", ns, grace_period_seconds=0)


def test_follow_streams_lines_as_they_are_written(
    core: client.CoreV1Api, ns: str, shared_sandbox: Sandbox
) -> None:
    core.create_namespaced_pod(ns, pod("p", "for i in 1 2 3; do echo line $i; sleep 0.2; done"))
    shared_sandbox.wait_for_pod(ns, "p", phases=["Running", "Succeeded"])
    resp = core.read_namespaced_pod_log("p", ns, follow=True, _preload_content=False)
    try:
        lines = [line.decode() for line in resp.stream() if line]
    finally:
        resp.release_conn()
    assert "".join(lines) == "line 1\nline 2\nline 3\n"


def test_logs_of_a_waiting_container_are_400(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(
        ns, pod("p", "true", container={"image": "sandbox.invalid/pull-error:1"})
    )
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("p", ns)
    assert err.value.status == 400
    assert "is waiting to start" in err.value.body


def test_scripted_images_and_config_errors(
    core: client.CoreV1Api, ns: str, shared_sandbox: Sandbox
) -> None:
    core.create_namespaced_pod(
        ns, pod("pull", "true", container={"image": "sandbox.invalid/pull-error:1"})
    )
    core.create_namespaced_pod(
        ns, pod("sched", "true", container={"image": "sandbox.invalid/unschedulable"})
    )
    core.create_namespaced_pod(ns, pod("badname", "true", container={"image": "Bad Image!"}))
    core.create_namespaced_pod(
        ns,
        pod(
            "nosecret",
            "echo $V",
            container={
                "env": [{"name": "V", "valueFrom": {"secretKeyRef": {"name": "later", "key": "v"}}}]
            },
        ),
    )

    def waiting_reason(name: str, wanted: str) -> str:
        deadline = time.monotonic() + 10
        reason = ""
        while time.monotonic() < deadline:
            status = core.read_namespaced_pod(name, ns).status
            states = status.container_statuses or []
            reason = states[0].state.waiting.reason if states and states[0].state.waiting else ""
            if reason == wanted:
                break
            time.sleep(0.05)
        assert status.phase == "Pending"
        return reason

    assert waiting_reason("pull", "ImagePullBackOff") == "ImagePullBackOff"
    assert waiting_reason("badname", "InvalidImageName") == "InvalidImageName"
    assert waiting_reason("nosecret", "CreateContainerConfigError") == "CreateContainerConfigError"
    sched = core.read_namespaced_pod("sched", ns).status
    scheduled = next(c for c in sched.conditions if c.type == "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    # The kubelet retries: once the secret exists the container starts.
    core.create_namespaced_secret(ns, {"metadata": {"name": "later"}, "stringData": {"v": "now"}})
    assert shared_sandbox.wait_for_pod(ns, "nosecret")["status"]["phase"] == "Succeeded"
    assert core.read_namespaced_pod_log("nosecret", ns) == "now\n"


def test_owned_secret_goes_with_its_pod(
    core: client.CoreV1Api, ns: str, shared_sandbox: Sandbox
) -> None:
    created = core.create_namespaced_pod(ns, pod("p", "sleep 30"))
    core.create_namespaced_secret(
        ns,
        {
            "metadata": {
                "name": "p",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": created.metadata.uid}
                ],
            },
            "stringData": {"a": "b"},
        },
    )
    core.delete_namespaced_pod("p", ns, grace_period_seconds=0)
    deadline = time.monotonic() + 5
    while core.list_namespaced_secret(ns).items and time.monotonic() < deadline:
        time.sleep(0.02)
    assert core.list_namespaced_secret(ns).items == []


def test_no_pod_process_outlives_the_sandbox(tmp_path: Any) -> None:
    marker = tmp_path / "child.pid"
    sb = Sandbox(workdir=tmp_path / "wd").start()
    try:
        sb.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "p", "namespace": "default"},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "c",
                                "image": "x",
                                "command": ["sh", "-c", f"sleep 60 & echo $! > {marker}; sleep 60"],
                            }
                        ],
                    },
                }
            ]
        )
        sb.wait_for_pod("default", "p", phases=["Running"])
        deadline = time.monotonic() + 5
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = sb.pod_pids()
        assert pids
    finally:
        sb.stop()
    child = int(marker.read_text())
    for pid in [*pids, child]:
        assert not _alive(pid) or _zombie(pid), f"process {pid} outlived the sandbox"


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def test_projected_volume_items_modes_and_a_service_account_token(
    core: client.CoreV1Api, ns: str, shared_sandbox: Sandbox
) -> None:
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"k": "secret"}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"k": "config"}})
    script = (
        "cat /p/dir/secret.txt /p/config.txt /p/name; echo; "
        "stat -c %a /p/dir/secret.txt /p/config.txt; cat /p/token"
    )
    body = pod(
        "p",
        script,
        container={"volumeMounts": [{"name": "all", "mountPath": "/p", "readOnly": True}]},
        volumes=[
            {
                "name": "all",
                "projected": {
                    "defaultMode": 0o440,
                    "sources": [
                        {
                            "secret": {
                                "name": "s",
                                "items": [{"key": "k", "path": "dir/secret.txt", "mode": 0o400}],
                            }
                        },
                        {"configMap": {"name": "c", "items": [{"key": "k", "path": "config.txt"}]}},
                        {
                            "downwardAPI": {
                                "items": [
                                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}
                                ]
                            }
                        },
                        {"serviceAccountToken": {"path": "token"}},
                    ],
                },
            }
        ],
    )
    core.create_namespaced_pod(ns, body)
    done = shared_sandbox.wait_for_pod(ns, "p")
    assert done["status"]["phase"] == "Succeeded", shared_sandbox.logs(ns, "p")
    lines = core.read_namespaced_pod_log("p", ns).splitlines()
    assert lines[:3] == ["secretconfigp", "400", "440"]
    user = shared_sandbox.tokens.authenticate(f"Bearer {lines[3]}")
    assert user is not None
    assert user.name == f"system:serviceaccount:{ns}:default"
