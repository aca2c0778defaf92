"""Fidelity with the official ``kubernetes`` client: CRUD, selectors, pagination, watch, patch."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from sandbox import Sandbox


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(workdir=tmp_path_factory.mktemp("sandbox-client")) as sb:
        yield sb


@pytest.fixture
def api(shared_sandbox: Sandbox) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    cfg.host = shared_sandbox.url
    cfg.api_key = {"authorization": f"Bearer {shared_sandbox.admin_token}"}
    with client.ApiClient(cfg) as api_client:
        yield api_client


@pytest.fixture
def namespace(api: client.ApiClient, request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("_", "-")[:50].lower().strip("-")
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def _status(exc: ApiException) -> dict[str, object]:
    body = json.loads(exc.body)
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    return body


def test_core_objects_get_uid_resource_version_and_timestamps(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    )
    assert created.metadata.uid
    assert int(created.metadata.resource_version) > 0
    assert created.metadata.creation_timestamp is not None
    generated = core.create_namespaced_secret(
        namespace, {"metadata": {"generateName": "cred-"}, "stringData": {"k": "v"}}
    )
    assert generated.metadata.name.startswith("cred-")
    assert len(generated.metadata.name) == len("cred-") + 5
    assert generated.data == {"k": "dg=="}
    assert generated.type == "Opaque"
    sa = core.create_namespaced_service_account(namespace, {"metadata": {"name": "runner"}})
    assert core.read_namespaced_service_account("runner", namespace).metadata.uid == sa.metadata.uid
    names = {s.metadata.name for s in core.list_namespaced_service_account(namespace).items}
    assert names == {"default", "runner"}
    core.delete_namespaced_config_map("settings", namespace)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("settings", namespace)
    assert err.value.status == 404
    body = _status(err.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'configmaps "settings" not found'


def test_conflicts_are_409_with_the_real_reasons(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}})
    assert err.value.status == 409
    assert _status(err.value)["reason"] == "AlreadyExists"
    core.patch_namespaced_config_map("c", namespace, {"data": {"x": "y"}})
    stale = {"metadata": {"name": "c", "resourceVersion": cm.metadata.resource_version}}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("c", namespace, stale)
    assert err.value.status == 409
    assert _status(err.value)["reason"] == "Conflict"


def test_invalid_objects_are_422_naming_the_field(api: client.ApiClient, namespace: str) -> None:
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api).create_namespaced_pod(
            namespace, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
        )
    assert err.value.status == 422
    body = _status(err.value)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.containers[0].image"


def test_missing_namespace_is_404(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api).create_namespaced_config_map("nowhere", {"metadata": {"name": "c"}})
    assert err.value.status == 404
    assert _status(err.value)["message"] == 'namespaces "nowhere" not found'


def test_jobs_are_stored_with_server_defaults(api: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(api)
    job = {
        "metadata": {"name": "schema", "labels": {"tenant-lifecycle.dev/enabled": "true"}},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "x", "command": ["true"]}],
                }
            },
        },
    }
    created = batch.create_namespaced_job(namespace, job)
    assert created.spec.backoff_limit == 6
    assert created.spec.suspend is True
    labels = created.spec.template.metadata.labels
    assert labels["batch.kubernetes.io/controller-uid"] == created.metadata.uid
    listed = batch.list_namespaced_job(
        namespace, label_selector="tenant-lifecycle.dev/enabled=true"
    )
    assert [j.metadata.name for j in listed.items] == ["schema"]
    all_jobs = batch.list_job_for_all_namespaces(label_selector="tenant-lifecycle.dev/enabled")
    assert "schema" in [j.metadata.name for j in all_jobs.items]
    batch.delete_namespaced_job("schema", namespace)
    assert batch.list_namespaced_job(namespace).items == []


def test_label_selectors_equality_and_set_based(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for name, labels in {
        "a": {"team": "x", "tier": "db"},
        "b": {"team": "y", "tier": "web"},
        "c": {"team": "x"},
    }.items():
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": labels}})

    def names(selector: str) -> list[str]:
        items = core.list_namespaced_config_map(namespace, label_selector=selector).items
        return sorted(i.metadata.name for i in items)

    assert names("team=x") == ["a", "c"]
    assert names("team==x,tier=db") == ["a"]
    assert names("team!=x") == ["b"]
    assert names("tier in (db, web)") == ["a", "b"]
    assert names("tier notin (db)") == ["b", "c"]
    assert names("tier") == ["a", "b"]
    assert names("!tier") == ["c"]


def test_pagination_limit_2_over_5_gives_3_pages(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for i in range(5):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"cm-{i}"}})
    pages: list[list[str]] = []
    token = None
    while True:
        page = core.list_namespaced_config_map(namespace, limit=2, _continue=token)
        pages.append([i.metadata.name for i in page.items])
        token = page.metadata._continue
        if not token:
            break
        # A change after the first page does not show up: the list is one consistent snapshot.
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"late-{len(pages)}"}})
    assert pages == [["cm-0", "cm-1"], ["cm-2", "cm-3"], ["cm-4"]]


def test_expired_continue_token_is_410(
    api: client.ApiClient, namespace: str, shared_sandbox: Sandbox
) -> None:
    core = client.CoreV1Api(api)
    for i in range(3):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"cm-{i}"}})
    first = core.list_namespaced_config_map(namespace, limit=1)
    shared_sandbox.faults.compact()
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(namespace, limit=1, _continue=first.metadata._continue)
    assert err.value.status == 410
    assert _status(err.value)["reason"] == "Expired"


def test_watch_resumes_from_a_resource_version(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "one"}})
    listing = core.list_namespaced_config_map(namespace)
    since = listing.metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "two"}})
    core.patch_namespaced_config_map("two", namespace, {"metadata": {"labels": {"x": "y"}}})
    core.delete_namespaced_config_map("one", namespace)
    seen = [
        (event["type"], event["object"].metadata.name)
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, namespace, resource_version=since, timeout_seconds=1
        )
    ]
    assert seen == [("ADDED", "two"), ("MODIFIED", "two"), ("DELETED", "one")]


def test_watch_from_a_compacted_version_gets_410(
    api: client.ApiClient, namespace: str, shared_sandbox: Sandbox
) -> None:
    core = client.CoreV1Api(api)
    old = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "x"}})
    shared_sandbox.faults.compact()
    resp = core.list_namespaced_config_map(
        namespace, watch=True, resource_version=old, timeout_seconds=1, _preload_content=False
    )
    try:
        lines = [json.loads(line) for line in resp.read().splitlines() if line]
    finally:
        resp.release_conn()
    assert lines[0]["type"] == "ERROR"
    assert lines[0]["object"]["code"] == 410
    assert lines[0]["object"]["reason"] == "Expired"


def test_custom_objects_workflows_and_templates(api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(api)
    wf = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "lc-batch-1", "labels": {"tenant-lifecycle.dev/tenant": "t1"}},
        "spec": {"workflowTemplateRef": {"name": "tenant-lifecycle"}},
    }
    created = custom.create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "workflows", wf
    )
    assert created["metadata"]["uid"]
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "workflows", wf
        )
    assert err.value.status == 409
    custom.patch_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        namespace,
        "workflows",
        "lc-batch-1",
        {"status": {"phase": "Running"}},
    )
    got = custom.get_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "workflows", "lc-batch-1"
    )
    assert got["status"]["phase"] == "Running"
    listed = custom.list_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        namespace,
        "workflows",
        label_selector="tenant-lifecycle.dev/tenant=t1",
    )
    assert [i["metadata"]["name"] for i in listed["items"]] == ["lc-batch-1"]
    custom.create_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        namespace,
        "workflowtemplates",
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "tenant-lifecycle"},
            "spec": {"templates": []},
        },
    )
    custom.delete_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "workflowtemplates", "tenant-lifecycle"
    )
    custom.delete_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "workflows", "lc-batch-1"
    )
    remaining = custom.list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "workflows"
    )
    assert remaining["items"] == []


def test_rbac_kinds_crud(api: client.ApiClient, namespace: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_cluster_role(
        {
            "metadata": {"name": f"{namespace}-bridge"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        }
    )
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "rb"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
        },
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": f"{namespace}-crb"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{namespace}-bridge",
            },
            "subjects": [{"kind": "User", "name": "someone"}],
        },
    )
    assert rbac.read_namespaced_role("r", namespace).rules[0].verbs == ["list"]
    assert [b.metadata.name for b in rbac.list_namespaced_role_binding(namespace).items] == ["rb"]
    assert rbac.read_cluster_role(f"{namespace}-bridge").metadata.uid
    rbac.delete_cluster_role_binding(f"{namespace}-crb")
    rbac.delete_cluster_role(f"{namespace}-bridge")
    rbac.delete_namespaced_role_binding("rb", namespace)
    rbac.delete_namespaced_role("r", namespace)
    assert rbac.list_namespaced_role(namespace).items == []


def test_patch_kinds_merge_json_and_strategic(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}}
    )
    core.patch_namespaced_config_map(
        "c", namespace, {"metadata": {"labels": {"a": None, "c": "3"}}}
    )
    core.patch_namespaced_config_map(
        "c", namespace, [{"op": "add", "path": "/data/j", "value": "json-patch"}]
    )
    got = core.read_namespaced_config_map("c", namespace)
    assert got.metadata.labels == {"b": "2", "c": "3"}
    assert got.data == {"k": "v", "j": "json-patch"}
    unchanged = core.patch_namespaced_config_map("c", namespace, {"data": {"k": "v"}})
    assert unchanged.metadata.resource_version == got.metadata.resource_version


def test_field_selectors_on_name_namespace_and_phase(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for name in ("a", "b"):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})
    items = core.list_namespaced_config_map(namespace, field_selector="metadata.name=b").items
    assert [i.metadata.name for i in items] == ["b"]
    everywhere = core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={namespace},metadata.name!=a"
    ).items
    assert [i.metadata.name for i in everywhere] == ["b"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(namespace, field_selector="data.k=v")
    assert err.value.status == 400
