"""RBAC: bearer tokens, Role/ClusterRole rules through bindings, and the real 403 bodies."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox import Sandbox


def _api(sb: Sandbox, token: str) -> client.ApiClient:
    cfg = client.Configuration()
    cfg.host = sb.url
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)


@pytest.fixture
def team_setup(sandbox_rbac: Sandbox) -> Sandbox:
    sb = sandbox_rbac
    sb.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "platform"}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "bridge"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["pods", "pods/log"],
                        "verbs": ["get", "list", "watch", "create"],
                    },
                    {
                        "apiGroups": ["batch"],
                        "resources": ["jobs"],
                        "verbs": ["get"],
                        "resourceNames": ["schema"],
                    },
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "bridge", "namespace": "team-a"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "bridge",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "bridge", "namespace": "platform"}],
            },
        ]
    )
    return sb


def _forbidden(exc: ApiException) -> str:
    assert exc.status == 403
    body = json.loads(exc.body)
    assert body["kind"] == "Status"
    assert body["reason"] == "Forbidden"
    assert body["code"] == 403
    return str(body["message"])


def test_service_account_allowed_in_one_namespace_denied_in_another(team_setup: Sandbox) -> None:
    token = team_setup.issue_token(user="system:serviceaccount:platform:bridge")
    with _api(team_setup, token) as api:
        core = client.CoreV1Api(api)
        assert core.list_namespaced_pod("team-a").items == []
        with pytest.raises(ApiException) as err:
            core.list_namespaced_pod("team-b")
        assert _forbidden(err.value) == (
            'pods is forbidden: User "system:serviceaccount:platform:bridge" cannot list '
            'resource "pods" in API group "" in the namespace "team-b"'
        )


def test_a_verb_the_role_lacks_is_denied(team_setup: Sandbox) -> None:
    token = team_setup.issue_token(user="system:serviceaccount:platform:bridge")
    with _api(team_setup, token) as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_pod(
            "team-a",
            {
                "metadata": {"name": "p"},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "x", "command": ["true"]}],
                },
            },
        )
        with pytest.raises(ApiException) as err:
            core.delete_namespaced_pod("p", "team-a")
        assert _forbidden(err.value) == (
            'pods "p" is forbidden: User "system:serviceaccount:platform:bridge" cannot delete '
            'resource "pods" in API group "" in the namespace "team-a"'
        )
        with pytest.raises(ApiException) as err:
            core.list_namespaced_secret("team-a")
        assert 'cannot list resource "secrets"' in _forbidden(err.value)


def test_resource_names_and_subresources(team_setup: Sandbox) -> None:
    team_setup.apply(
        [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name, "namespace": "team-a"},
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
            for name in ("schema", "other")
        ]
    )
    token = team_setup.issue_token(user="system:serviceaccount:platform:bridge")
    with _api(team_setup, token) as api:
        batch = client.BatchV1Api(api)
        assert batch.read_namespaced_job("schema", "team-a").metadata.name == "schema"
        with pytest.raises(ApiException) as err:
            batch.read_namespaced_job("other", "team-a")
        assert 'jobs.batch "other" is forbidden' in _forbidden(err.value)
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).patch_namespaced_pod_status("x", "team-a", {"status": {}})
        assert 'cannot patch resource "pods/status"' in _forbidden(err.value)


def test_unknown_token_is_401_and_admin_bypasses(team_setup: Sandbox) -> None:
    with _api(team_setup, "not-a-token") as api, pytest.raises(ApiException) as err:
        client.CoreV1Api(api).list_namespace()
    assert err.value.status == 401
    with _api(team_setup, team_setup.admin_token) as api:
        names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    assert {"team-a", "team-b"} <= names


def test_group_subjects_and_cluster_role_bindings(team_setup: Sandbox) -> None:
    team_setup.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "ns-reader"},
                "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "ns-reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "ns-reader",
                },
                "subjects": [{"kind": "Group", "name": "system:serviceaccounts:platform"}],
            },
        ]
    )
    token = team_setup.issue_token(user="system:serviceaccount:platform:anyone")
    with _api(team_setup, token) as api:
        assert client.CoreV1Api(api).list_namespace().items
        review = client.AuthorizationV1Api(api).create_self_subject_access_review(
            {"spec": {"resourceAttributes": {"verb": "delete", "resource": "namespaces"}}}
        )
        assert review.status.allowed is False
    token = team_setup.issue_token(user="alice", groups=["auditors"])
    with _api(team_setup, token) as api, pytest.raises(ApiException) as err:
        client.CoreV1Api(api).list_namespace()
    assert _forbidden(err.value) == (
        'namespaces is forbidden: User "alice" cannot list resource "namespaces" in API group "" '
        "at the cluster scope"
    )


def test_token_request_api_issues_service_account_tokens(team_setup: Sandbox) -> None:
    team_setup.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "bridge", "namespace": "platform"},
            }
        ]
    )
    with _api(team_setup, team_setup.admin_token) as api:
        issued = client.CoreV1Api(api).create_namespaced_service_account_token(
            "bridge", "platform", {"spec": {"audiences": ["x"]}}
        )
    with _api(team_setup, issued.status.token) as api:
        assert client.CoreV1Api(api).list_namespaced_pod("team-a").items == []


def test_rbac_off_allows_everyone(sandbox: Sandbox) -> None:
    token = sandbox.issue_token(user="system:serviceaccount:x:y")
    with _api(sandbox, token) as api:
        assert client.CoreV1Api(api).list_namespaced_secret("default").items == []


def test_kubectl_auth_can_i_with_a_service_account_kubeconfig(
    team_setup: Sandbox, tmp_path: Path
) -> None:
    token = team_setup.issue_token(user="system:serviceaccount:platform:bridge")
    config = team_setup.kubeconfig_path(token)

    def can_i(*args: str) -> tuple[int, str]:
        done = subprocess.run(
            [
                "/usr/bin/kubectl",
                "--kubeconfig",
                str(config),
                "--cache-dir",
                str(tmp_path),
                "auth",
                "can-i",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.returncode, done.stdout.strip()

    assert can_i("list", "pods", "-n", "team-a") == (0, "yes")
    assert can_i("list", "pods", "-n", "team-b") == (1, "no")
    assert can_i("get", "pods", "--subresource=log", "-n", "team-a") == (0, "yes")
    code, listing = can_i("--list", "-n", "team-a")
    assert code == 0
    assert "pods/log" in listing


def test_anonymous_sees_only_public_info(sandbox_rbac: Sandbox) -> None:
    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(f"{sandbox_rbac.url}{path}", timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)

    assert status("/version") == 200
    assert status("/healthz") == 200
    assert status("/api/v1/namespaces") == 401
