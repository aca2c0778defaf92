"""Each fault knob and what a client sees, from Python and over the admin HTTP endpoint."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from sandbox import Sandbox


@pytest.fixture
def core(sandbox: Sandbox) -> Iterator[client.CoreV1Api]:
    cfg = client.Configuration()
    cfg.host = sandbox.url
    cfg.api_key = {"authorization": f"Bearer {sandbox.admin_token}"}
    cfg.retries = False
    with client.ApiClient(cfg) as api:
        yield client.CoreV1Api(api)


def _pod(name: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "x", "command": ["sh", "-c", script]}],
        },
    }


def _drain(resp: Any, into: list[bytes]) -> None:
    try:
        for chunk in resp.stream(1024):
            into.append(chunk)
    finally:
        resp.release_conn()


def test_fail_next_429_with_retry_after_then_recovers(
    core: client.CoreV1Api, sandbox: Sandbox
) -> None:
    sandbox.faults.fail_next(2, status=429, retry_after=3, method="GET", path=r"/configmaps$")
    core.create_namespaced_config_map("default", {"metadata": {"name": "unaffected"}})
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            core.list_namespaced_config_map("default")
        assert err.value.status == 429
        assert err.value.headers["Retry-After"] == "3"
        body = json.loads(err.value.body)
        assert body["reason"] == "TooManyRequests"
        assert body["details"]["retryAfterSeconds"] == 3
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == [
        "unaffected"
    ]


@pytest.mark.parametrize(
    ("status", "reason"), [(500, "InternalError"), (503, "ServiceUnavailable")]
)
def test_fail_next_server_errors(
    core: client.CoreV1Api, sandbox: Sandbox, status: int, reason: str
) -> None:
    sandbox.faults.fail_next(1, status=status, retry_after=None)
    with pytest.raises(ApiException) as err:
        core.list_namespace()
    assert err.value.status == status
    assert json.loads(err.value.body)["reason"] == reason
    assert core.list_namespace().items


def test_latency_makes_a_short_client_timeout_expire(
    core: client.CoreV1Api, sandbox: Sandbox
) -> None:
    sandbox.faults.latency(1.0, path="/namespaces")
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        core.list_namespace(_request_timeout=0.2)
    sandbox.faults.clear()
    assert core.list_namespace(_request_timeout=5).items


def test_cut_log_streams_after_bytes(core: client.CoreV1Api, sandbox: Sandbox) -> None:
    sandbox.apply([_pod("p", "for i in 1 2 3 4 5 6; do echo line-$i; sleep 0.1; done")])
    sandbox.wait_for_pod("default", "p", phases=["Running", "Succeeded"])
    sandbox.faults.cut_streams(after_bytes=10, kind="log", times=1)
    sandbox.faults.cut_streams(after_bytes=3, kind="watch", times=1)  # another kind: no effect
    resp = core.read_namespaced_pod_log("p", "default", follow=True, _preload_content=False)
    received: list[bytes] = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        _drain(resp, received)
    # Exactly 10 bytes arrive, then the connection drops mid-line.
    assert b"".join(received) == b"line-1\nlin"
    # times=1: the next follow is not cut and reads to the end.
    sandbox.wait_for_pod("default", "p")
    assert core.read_namespaced_pod_log("p", "default", follow=True).endswith("line-6\n")


def test_cut_watch_streams_after_seconds(core: client.CoreV1Api, sandbox: Sandbox) -> None:
    sandbox.faults.cut_streams(after_seconds=0.3, kind="watch")
    resp = core.list_namespaced_config_map(
        "default", watch=True, timeout_seconds=30, _preload_content=False
    )
    with pytest.raises(urllib3.exceptions.ProtocolError):
        _drain(resp, [])


def test_unavailable_answers_503_then_recovers(core: client.CoreV1Api, sandbox: Sandbox) -> None:
    sandbox.faults.unavailable(0.5)
    with pytest.raises(ApiException) as err:
        core.list_namespace()
    assert err.value.status == 503
    assert "Retry-After" in err.value.headers
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            core.list_namespace()
            break
        except ApiException:
            time.sleep(0.1)
    assert core.list_namespace().items


def test_evict_pod_fails_it_with_a_disruption_condition(sandbox: Sandbox) -> None:
    sandbox.apply([_pod("p", "sleep 30")])
    sandbox.wait_for_pod("default", "p", phases=["Running"])
    sandbox.faults.evict_pod("default", "p")
    pod = sandbox.wait_for_pod("default", "p")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["reason"] == "Evicted"
    conditions = {c["type"]: c for c in pod["status"]["conditions"]}
    assert conditions["DisruptionTarget"]["status"] == "True"


def test_kill_pod_kills_its_process_as_a_node_failure(sandbox: Sandbox) -> None:
    sandbox.apply([_pod("p", "sleep 30")])
    sandbox.wait_for_pod("default", "p", phases=["Running"])
    sandbox.faults.kill_pod("default", "p")
    pod = sandbox.wait_for_pod("default", "p")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 137
    assert terminated["reason"] == "ContainerStatusUnknown"
    conditions = {c["type"]: c for c in pod["status"]["conditions"]}
    assert conditions["DisruptionTarget"]["reason"] == "DeletionByPodGC"


def _admin(sb: Sandbox, method: str, body: dict[str, Any] | None, token: str) -> int:
    request = urllib.request.Request(
        f"{sb.url}/_sandbox/faults",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def test_admin_endpoint_drives_the_same_knobs(sandbox_rbac: Sandbox) -> None:
    sb = sandbox_rbac
    cfg = client.Configuration()
    cfg.host = sb.url
    cfg.api_key = {"authorization": f"Bearer {sb.admin_token}"}
    # urllib3 would otherwise retry a 503 that carries Retry-After by itself.
    cfg.retries = False
    with client.ApiClient(cfg) as api:
        core = client.CoreV1Api(api)
        stranger = sb.issue_token(user="mallory")
        assert _admin(sb, "POST", {"action": "fail_next", "n": 1, "status": 503}, stranger) == 403
        assert _admin(sb, "POST", {"action": "explode"}, sb.admin_token) == 400
        assert (
            _admin(
                sb,
                "POST",
                {"action": "fail_next", "n": 5, "status": 503, "path": "/namespaces$"},
                sb.admin_token,
            )
            == 200
        )
        with pytest.raises(ApiException) as err:
            core.list_namespace()
        assert err.value.status == 503
        assert _admin(sb, "DELETE", None, sb.admin_token) == 200
        assert core.list_namespace().items


def test_watch_client_survives_a_cut_and_resumes(core: client.CoreV1Api, sandbox: Sandbox) -> None:
    since = core.list_namespaced_config_map("default").metadata.resource_version
    for name in ("a", "b"):
        core.create_namespaced_config_map("default", {"metadata": {"name": name}})
    sandbox.faults.cut_streams(after_bytes=1, kind="watch", times=1)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        list(
            watch.Watch().stream(
                core.list_namespaced_config_map,
                "default",
                resource_version=since,
                timeout_seconds=5,
            )
        )
    names = [
        e["object"].metadata.name
        for e in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=since, timeout_seconds=1
        )
    ]
    assert names == ["a", "b"]
