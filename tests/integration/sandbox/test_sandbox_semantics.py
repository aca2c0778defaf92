"""Server semantics beyond CRUD: namespace termination, CRDs, propagation, finalizers, watch."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from sandbox import Sandbox


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(workdir=tmp_path_factory.mktemp("sandbox-semantics")) as sb:
        yield sb


@pytest.fixture
def api(shared_sandbox: Sandbox) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    cfg.host = shared_sandbox.url
    cfg.api_key = {"authorization": f"Bearer {shared_sandbox.admin_token}"}
    with client.ApiClient(cfg) as api_client:
        yield api_client


@pytest.fixture
def ns(api: client.ApiClient, request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("_", "-")[:50].lower().strip("-")
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def _until(check: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    return check()


def _sleeper(name: str, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, **meta},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "x", "command": ["sleep", "30"]}],
        },
    }


def test_namespace_termination_removes_its_content(
    api: client.ApiClient, ns: str, shared_sandbox: Sandbox
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, _sleeper("p"))
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    shared_sandbox.wait_for_pod(ns, "p", phases=["Running"])
    resp = core.delete_namespace(ns, _preload_content=False)
    terminating = json.loads(resp.data)
    assert terminating["kind"] == "Namespace"
    assert terminating["status"]["phase"] == "Terminating"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "late"}})
    assert err.value.status == 403
    assert "is being terminated" in json.loads(err.value.body)["message"]

    def gone() -> bool:
        return ns not in {n.metadata.name for n in core.list_namespace().items}

    assert _until(gone)
    assert core.list_namespaced_pod(ns).items == []


def test_custom_resource_definitions_are_served(api: client.ApiClient, ns: str) -> None:
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(
        {
            "metadata": {"name": "tenants.example.dev"},
            "spec": {
                "group": "example.dev",
                "names": {"plural": "tenants", "singular": "tenant", "kind": "Tenant"},
                "scope": "Namespaced",
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object"}},
                    }
                ],
            },
        }
    )
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        "example.dev",
        "v1",
        ns,
        "tenants",
        {"apiVersion": "example.dev/v1", "kind": "Tenant", "metadata": {"name": "t1"}},
    )
    got = custom.get_namespaced_custom_object("example.dev", "v1", ns, "tenants", "t1")
    assert got["kind"] == "Tenant"
    ext.delete_custom_resource_definition("tenants.example.dev")
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object("example.dev", "v1", ns, "tenants", "t1")
    assert err.value.status == 404


def test_job_deletion_orphans_by_default_and_background_collects(
    api: client.ApiClient, ns: str
) -> None:
    batch = client.BatchV1Api(api)
    core = client.CoreV1Api(api)
    for name in ("keep", "drop"):
        job = batch.create_namespaced_job(
            ns,
            {
                "metadata": {"name": name},
                "spec": {
                    "suspend": True,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "x", "command": ["true"]}],
                        }
                    },
                },
            },
        )
        owner = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": name,
            "uid": job.metadata.uid,
            "controller": True,
        }
        core.create_namespaced_config_map(
            ns, {"metadata": {"name": f"{name}-dep", "ownerReferences": [owner]}}
        )
    batch.delete_namespaced_job("keep", ns)
    batch.delete_namespaced_job("drop", ns, propagation_policy="Background")

    def settled() -> bool:
        names = {c.metadata.name for c in core.list_namespaced_config_map(ns).items}
        return names == {"keep-dep"}

    assert _until(settled)
    kept = core.read_namespaced_config_map("keep-dep", ns)
    assert not kept.metadata.owner_references


def test_finalizers_hold_deletion_until_removed(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": "held", "finalizers": ["example.dev/cleanup"]}}
    )
    core.delete_namespaced_config_map("held", ns)
    held = core.read_namespaced_config_map("held", ns)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("held", ns)
    assert err.value.status == 404


def test_watch_initial_state_and_selector_transitions(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "a", "labels": {"x": "1"}}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "b"}})
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.patch_namespaced_config_map("b", ns, {"metadata": {"labels": {"x": "1"}}})
    core.patch_namespaced_config_map("a", ns, {"metadata": {"labels": {"x": None}}})
    initial = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map, ns, label_selector="x=1", timeout_seconds=1
        )
    ]
    assert initial == [("ADDED", "b")]
    transitions = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map,
            ns,
            label_selector="x=1",
            resource_version=start,
            timeout_seconds=1,
        )
    ]
    assert transitions == [("ADDED", "b"), ("DELETED", "a")]


def test_pod_watch_reports_phases_and_states_in_order(
    api: client.ApiClient, ns: str, shared_sandbox: Sandbox
) -> None:
    core = client.CoreV1Api(api)
    start = core.list_namespaced_pod(ns).metadata.resource_version
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "p"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "c", "image": "x", "command": ["sh", "-c", "sleep 0.2; exit 0"]}
                ],
            },
        },
    )
    shared_sandbox.wait_for_pod(ns, "p")
    phases: list[str] = []
    states: list[str] = []
    versions: list[int] = []
    for event in watch.Watch().stream(
        core.list_namespaced_pod, ns, resource_version=start, timeout_seconds=1
    ):
        pod = event["raw_object"]
        versions.append(int(pod["metadata"]["resourceVersion"]))
        phase = pod["status"]["phase"]
        if not phases or phases[-1] != phase:
            phases.append(phase)
        for cs in pod["status"].get("containerStatuses") or []:
            state = next(iter(cs["state"]))
            if not states or states[-1] != state:
                states.append(state)
    assert phases == ["Pending", "Running", "Succeeded"]
    # Each event carries the state of its own version: nothing is rewritten after the fact.
    assert states == ["waiting", "running", "terminated"]
    assert versions == sorted(set(versions))


def test_dry_run_persists_nothing(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(ns, {"metadata": {"name": "d"}}, dry_run="All")
    assert created.metadata.uid
    assert core.list_namespaced_config_map(ns).items == []


def test_subresources_refuse_other_verbs(
    api: client.ApiClient, ns: str, shared_sandbox: Sandbox
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, _sleeper("p"))
    request = urllib.request.Request(
        f"{shared_sandbox.url}/api/v1/namespaces/{ns}/pods/p/status",
        method="DELETE",
        headers={"Authorization": f"Bearer {shared_sandbox.admin_token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)
    err.value.close()
    assert err.value.code == 405
    assert core.read_namespaced_pod("p", ns).metadata.name == "p"
    core.delete_namespaced_pod("p", ns, grace_period_seconds=0)


def test_watch_list_protocol_ends_initial_events_with_a_bookmark(
    api: client.ApiClient, ns: str, shared_sandbox: Sandbox
) -> None:
    client.CoreV1Api(api).create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    request = urllib.request.Request(
        f"{shared_sandbox.url}/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=1"
        "&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan",
        headers={"Authorization": f"Bearer {shared_sandbox.admin_token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        events = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    annotations = events[1]["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


def test_a_pod_with_a_finalizer_goes_when_the_finalizer_is_removed(
    api: client.ApiClient, ns: str, shared_sandbox: Sandbox
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, _sleeper("p", finalizers=["example.dev/keep"]))
    shared_sandbox.wait_for_pod(ns, "p", phases=["Running"])
    core.delete_namespaced_pod("p", ns, grace_period_seconds=0)
    held = core.read_namespaced_pod("p", ns)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_pod("p", ns, {"metadata": {"finalizers": None}})
    assert _until(lambda: not core.list_namespaced_pod(ns).items)
