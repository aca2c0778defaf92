"""Discovery on both backends: three namespaces (one not opted in), jobs of every kind.

Discovery sees every opted-in namespace of its cluster, so each backend here is the module's
own: a sandbox, or a real control plane of its own (API and controllers; no pod needs to run).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from bridge.contract import ContractSettings
from bridge.discovery import discover
from bridge.errors import ContractError, ForbiddenError
from sandbox import Sandbox
from testbed import ControlPlane
from tests.fixtures.cluster import Backend, RealBackend, SandboxBackend
from tests.integration.bridge.conftest import PREFIX, BridgeEnv, admin_kube


@pytest.fixture(scope="module")
def discovery_backend(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    workdir = tmp_path_factory.mktemp(f"discovery-{backend}")
    if backend == "real":
        with ControlPlane(workdir=workdir, node_agent=False) as plane:
            yield RealBackend(plane)
        return
    with Sandbox(rbac=False, workdir=workdir) as sb:
        yield SandboxBackend(sb)


@pytest.fixture(scope="module")
def discovery_env(
    discovery_backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeEnv]:
    """A cluster of its own: discovery sees every opted-in namespace, so no other test's."""
    kube = admin_kube(discovery_backend)
    env = BridgeEnv(
        backend=discovery_backend,
        kube=kube,
        namespace="team-a",
        tmp=tmp_path_factory.mktemp("discovery"),
        kubeconfig=discovery_backend.kubeconfig(),
    )
    env.add_namespace("team-a")
    try:
        yield env
    finally:
        kube.close()


@pytest.fixture(scope="module")
def fleet(discovery_env: BridgeEnv) -> dict[str, str]:
    """Three namespaces and eleven Jobs; returns the namespace names."""
    bridge_env = discovery_env
    a = bridge_env.namespace
    b = bridge_env.add_namespace(f"{a}-b")
    c = bridge_env.add_namespace(f"{a}-c", opted_in=False)
    add = bridge_env.add_job
    wave = f"{PREFIX}/wave"
    apps = f"{PREFIX}/applications"
    add("schema", namespace=a)  # wave 0
    add("search-index", namespace=a, annotations={wave: "1", apps: "search"})  # filtered out
    add("teardown", namespace=a, operations="lifecycle.decommission")  # another operation
    add("plain", namespace=a, operations=None, label=False)  # not a participant at all
    add("bad-other-op", namespace=a, operations="lifecycle.backup", annotations={wave: "soon"})
    add("migrate", namespace=b, annotations={f"{PREFIX}/on-failure": "continue"})  # wave 0
    add("catalog-cache", namespace=b, annotations={wave: "2", apps: "catalog,billing"})
    add("reindex", namespace=b, annotations={wave: "1"})
    add("broken", namespace=b, annotations={wave: "first"})  # invalid wave
    add("running", namespace=b, suspend=False)  # not suspended
    add("outside", namespace=c)  # namespace not opted in
    return {"a": a, "b": b, "c": c}


def _plan_jobs(plan: dict[str, Any]) -> list[tuple[int, list[str]]]:
    return [
        (wave["wave"], [f"{j['namespace']}/{j['name']}" for j in wave["jobs"]])
        for wave in plan["waves"]
    ]


def test_invalid_participants_fail_discovery_naming_them(
    discovery_env: BridgeEnv, fleet: dict[str, str]
) -> None:
    output = discovery_env.tmp / "plan.json"
    done = discovery_env.cli_in_process(
        "discover", "--operation", "lifecycle.upsert", "--output", str(output)
    )
    assert done.returncode == 1, done.stderr
    assert f"Job {fleet['b']}/broken" in done.stderr
    assert f"Job {fleet['b']}/running" in done.stderr
    assert "spec.suspend" in done.stderr
    assert "bad-other-op" not in done.stderr  # invalid, but not for this operation
    assert "--skip-invalid" in done.stderr
    assert "Traceback" not in done.stderr
    assert not output.exists()


def test_skip_invalid_plans_exactly_the_expected_waves(
    discovery_env: BridgeEnv, fleet: dict[str, str]
) -> None:
    a, b = fleet["a"], fleet["b"]
    environment = discovery_env.tmp / "env.yaml"
    environment.write_text(yaml.safe_dump({"applications": ["catalog"]}))
    output = discovery_env.tmp / "plan.json"
    done = discovery_env.cli_in_process(
        "discover",
        "--operation",
        "lifecycle.upsert",
        "--tenant-env-id",
        "t-799a",
        "--environment",
        str(environment),
        "--output",
        str(output),
        "--skip-invalid",
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(output.read_text())
    assert plan["operation"] == "lifecycle.upsert"
    assert plan["tenantEnvId"] == "t-799a"
    assert _plan_jobs(plan) == [
        (0, [f"{a}/schema", f"{b}/migrate"]),
        (1, [f"{b}/reindex"]),
        (2, [f"{b}/catalog-cache"]),
    ]
    assert plan["waves"][0]["jobs"][1]["onFailure"] == "continue"
    assert sorted(r["name"] for r in plan["rejected"]) == ["broken", "running"]
    assert all(r["errors"] for r in plan["rejected"])
    assert [s["name"] for s in plan["skipped"]] == ["search-index"]
    assert "rejected" in done.stderr
    assert output.read_text() == json.dumps(plan, separators=(",", ":"), ensure_ascii=False)


def test_discovery_pages_through_jobs_with_label_selectors_only(
    discovery_env: BridgeEnv, fleet: dict[str, str]
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    original = discovery_env.kube.list

    def recording(resource: Any, **kwargs: Any) -> Any:
        calls.append((resource.plural, kwargs))
        return original(resource, **kwargs)

    discovery_env.kube.list = recording  # type: ignore[method-assign]
    found = discover(
        discovery_env.kube,
        operation="lifecycle.upsert",
        settings=ContractSettings(),
        skip_invalid=True,
        page_size=2,
    )
    assert set(found.namespaces) >= {fleet["a"], fleet["b"]}
    assert fleet["c"] not in found.namespaces
    selector = f"{PREFIX}/enabled=true"
    assert all(kwargs["label_selector"] == selector for _, kwargs in calls)
    # One cluster-wide LIST of the labelled Jobs, not one per namespace.
    assert [kwargs.get("namespace") for plural, kwargs in calls if plural == "jobs"] == [None]
    names = [j.name for j in found.plan.jobs()]
    assert names == ["schema", "migrate", "search-index", "reindex", "catalog-cache"]
    with pytest.raises(ContractError, match="broken"):
        discover(discovery_env.kube, operation="lifecycle.upsert", settings=ContractSettings())


def test_discovery_falls_back_to_per_namespace_lists_when_cluster_wide_is_forbidden(
    discovery_env: BridgeEnv, fleet: dict[str, str]
) -> None:
    # A discovery account bound per namespace (RoleBindings, no ClusterRole on Jobs) gets 403
    # on the cluster-wide LIST: the plan must be the same, from one LIST per namespace.
    expected = discover(
        discovery_env.kube,
        operation="lifecycle.upsert",
        settings=ContractSettings(),
        skip_invalid=True,
    )
    calls: list[str | None] = []
    original = discovery_env.kube.list

    def namespaced_only(resource: Any, **kwargs: Any) -> Any:
        if resource.plural == "jobs":
            calls.append(kwargs.get("namespace"))
            if kwargs.get("namespace") is None:
                raise ForbiddenError("jobs is forbidden at the cluster scope", status=403)
        return original(resource, **kwargs)

    discovery_env.kube.list = namespaced_only  # type: ignore[method-assign]
    found = discover(
        discovery_env.kube,
        operation="lifecycle.upsert",
        settings=ContractSettings(),
        skip_invalid=True,
    )
    assert found.plan.to_json() == expected.plan.to_json()
    assert calls[0] is None
    assert sorted(ns for ns in calls[1:] if ns) == sorted(found.namespaces)
