"""The RBAC matrix: what each of our service accounts may and may not do, with the rendered
install (``kubectl kustomize deploy/team-example``) on both backends: the sandbox with RBAC on,
and the real kube-apiserver (RBAC and Node authorizers, real ServiceAccount tokens from the
TokenRequest API) with the install applied as docs/install.md says.

Namespaces: ``team-example`` (opted in, the bridge's ClusterRole bound there by the install),
``team-outside`` (a team namespace that never opted in), ``kube-system`` and the workflow
namespace ``tenant-lifecycle``. Every request is a raw HTTP call with the account's token, so
what is asserted is what the API server answers: a denial is 403 with the real server's Status
body (kind Status, reason Forbidden, the user, verb, resource and namespace in the message).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bridge.errors import ForbiddenError
from bridge.kube import JOBS, SECRETS, Kube
from sandbox import Sandbox
from tests.fixtures.cluster import Backend, RealBackend, SandboxBackend

from .helpers import (
    MANAGED_NS,
    NOT_OPTED_NS,
    PREFIX,
    SYSTEM_NS,
    WF_NS,
    load_install,
)

BRIDGE = "tenant-lifecycle-bridge"
DISCOVERY = "tenant-lifecycle-discovery"
ORCHESTRATOR = "tenant-lifecycle-orchestrator"

ARGO = "/apis/argoproj.io/v1alpha1"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}


def core(ns: str, plural: str, name: str = "", sub: str = "") -> str:
    path = f"/api/v1/namespaces/{ns}/{plural}"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def batch(ns: str, name: str = "") -> str:
    return f"/apis/batch/v1/namespaces/{ns}/jobs" + (f"/{name}" if name else "")


def argo(ns: str, plural: str = "workflows", name: str = "") -> str:
    return f"{ARGO}/namespaces/{ns}/{plural}" + (f"/{name}" if name else "")


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
        },
    }


def _secret(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": {}}


def _job(ns: str, name: str = "hello") -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {f"{PREFIX}/enabled": "true"},
            "annotations": {f"{PREFIX}/operations": "lifecycle.upsert"},
        },
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {"spec": _pod("x")["spec"]},
        },
    }


def _workflow(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"workflowTemplateRef": {"name": "tenant-lifecycle"}},
    }


def _rolebinding(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{"kind": "ServiceAccount", "name": BRIDGE, "namespace": WF_NS}],
    }


UNSUSPEND = {"spec": {"suspend": False}}
OPT_IN = {"metadata": {"labels": {f"{PREFIX}/enabled": "true"}}}


@dataclass(frozen=True)
class Case:
    account: str
    method: str
    path: str
    resource: str  # "pods", "pods/log", ... as the message names it
    namespace: str  # "" for cluster scope
    body: dict[str, Any] | None = None
    verb: str = ""  # defaults from the method (GET on a collection is list)

    @property
    def expected_verb(self) -> str:
        if self.verb:
            return self.verb
        return VERBS[self.method]

    @property
    def id(self) -> str:
        where = self.namespace or "cluster"
        short = self.account.removeprefix("tenant-lifecycle-")
        return f"{short}-{self.expected_verb}-{self.resource.replace('/', '.')}-{where}"


def deny(  # noqa: PLR0917 - one row of the table
    account: str,
    method: str,
    path: str,
    resource: str,
    namespace: str,
    body: dict[str, Any] | None = None,
    verb: str = "",
) -> Case:
    return Case(account, method, path, resource, namespace, body, verb)


B, D, O = BRIDGE, DISCOVERY, ORCHESTRATOR  # noqa: E741 - short names keep rows on one line
M, X, K, W = MANAGED_NS, NOT_OPTED_NS, SYSTEM_NS, WF_NS

DENIED: list[Case] = [
    # The bridge, in the namespace it manages: no reading Secrets, no touching Jobs, no
    # escalation, no changing its own opt-in.
    deny(B, "GET", core(M, "secrets", "team-credentials"), "secrets", M),
    deny(B, "GET", core(M, "secrets"), "secrets", M, verb="list"),
    deny(
        B, "PUT", core(M, "secrets", "team-credentials"), "secrets", M, _secret("team-credentials")
    ),
    # An empty merge patch changes nothing and answers with the whole Secret: a read.
    deny(B, "PATCH", core(M, "secrets", "team-credentials"), "secrets", M, {}),
    deny(B, "POST", batch(M), "jobs", M, _job(M, "evil")),
    deny(B, "PATCH", batch(M, "hello"), "jobs", M, UNSUSPEND),
    deny(B, "DELETE", batch(M, "hello"), "jobs", M),
    deny(B, "GET", batch(M), "jobs", M, verb="list"),
    deny(B, "PATCH", core(M, "pods", "anything"), "pods", M, {"metadata": {"labels": {"a": "b"}}}),
    deny(B, "GET", core(M, "configmaps"), "configmaps", M, verb="list"),
    deny(B, "POST", f"{RBAC}/namespaces/{M}/rolebindings", "rolebindings", M, _rolebinding("x")),
    deny(B, "POST", core(M, "serviceaccounts"), "serviceaccounts", M, {"metadata": {"name": "x"}}),
    # A request on one Namespace object is authorized *in* that namespace (as RequestInfo does).
    deny(B, "PATCH", f"/api/v1/namespaces/{M}", "namespaces", M, {"metadata": {"labels": {}}}),
    deny(B, "GET", "/api/v1/namespaces", "namespaces", "", verb="list"),
    # ... in a namespace that never opted in: nothing at all.
    deny(B, "POST", core(X, "pods"), "pods", X, _pod("evil")),
    deny(B, "GET", core(X, "pods"), "pods", X, verb="list"),
    deny(B, "GET", batch(X, "hello"), "jobs", X),
    deny(B, "POST", core(X, "secrets"), "secrets", X, _secret("evil")),
    deny(B, "GET", core(X, "pods", "anything", "log"), "pods/log", X),
    deny(B, "DELETE", core(X, "pods", "anything"), "pods", X),
    # ... in system namespaces and cluster-wide.
    deny(B, "POST", core(K, "pods"), "pods", K, _pod("evil")),
    deny(B, "GET", core(K, "secrets", "team-credentials"), "secrets", K),
    deny(B, "GET", core(K, "pods"), "pods", K, verb="list"),
    deny(B, "GET", core(W, "pods"), "pods", W, verb="list"),
    deny(B, "GET", core(W, "secrets", "team-credentials"), "secrets", W),
    deny(B, "POST", argo(W), "workflows", W, _workflow("evil")),
    deny(B, "GET", "/api/v1/pods", "pods", "", verb="list"),
    deny(B, "GET", "/api/v1/secrets", "secrets", "", verb="list"),
    # Discovery reads Jobs and namespaces, and writes nothing anywhere.
    deny(D, "POST", core(M, "pods"), "pods", M, _pod("evil")),
    deny(D, "GET", core(M, "secrets", "team-credentials"), "secrets", M),
    deny(D, "GET", "/api/v1/secrets", "secrets", "", verb="list"),
    deny(D, "PATCH", batch(M, "hello"), "jobs", M, UNSUSPEND),
    deny(D, "POST", batch(M), "jobs", M, _job(M, "evil")),
    deny(D, "DELETE", batch(M, "hello"), "jobs", M),
    deny(D, "POST", "/api/v1/namespaces", "namespaces", "", {"metadata": {"name": "evil"}}),
    deny(D, "PATCH", f"/api/v1/namespaces/{X}", "namespaces", X, OPT_IN),
    deny(D, "GET", core(M, "pods"), "pods", M, verb="list"),
    deny(D, "GET", core(M, "pods", "anything", "log"), "pods/log", M),
    deny(D, "POST", argo(W), "workflows", W, _workflow("evil")),
    deny(D, "GET", core(K, "secrets", "team-credentials"), "secrets", K),
    deny(D, "POST", f"{RBAC}/namespaces/{M}/rolebindings", "rolebindings", M, _rolebinding("x")),
    deny(D, "POST", core(X, "pods"), "pods", X, _pod("evil")),
    # The orchestrator submits Workflows from the reviewed template, in its namespace only.
    deny(O, "DELETE", argo(W, name="lc-granted"), "workflows", W),
    deny(O, "POST", argo(W, "workflowtemplates"), "workflowtemplates", W, _workflow("evil")),
    deny(
        O,
        "PATCH",
        argo(W, "workflowtemplates", "tenant-lifecycle"),
        "workflowtemplates",
        W,
        {"spec": {"serviceAccountName": "default"}},
    ),
    deny(O, "POST", core(W, "pods"), "pods", W, _pod("evil")),
    deny(O, "GET", core(W, "secrets", "team-credentials"), "secrets", W),
    deny(O, "GET", batch(M), "jobs", M, verb="list"),
    deny(O, "POST", core(M, "pods"), "pods", M, _pod("evil")),
    deny(O, "GET", core(M, "secrets", "team-credentials"), "secrets", M),
    deny(O, "POST", argo(M), "workflows", M, _workflow("evil")),
    deny(O, "GET", "/api/v1/namespaces", "namespaces", "", verb="list"),
    deny(O, "GET", core(K, "secrets", "team-credentials"), "secrets", K),
    deny(O, "POST", argo(K), "workflows", K, _workflow("evil")),
    deny(O, "GET", f"{ARGO}/workflows", "workflows", "", verb="list"),
    deny(O, "POST", f"{RBAC}/namespaces/{W}/rolebindings", "rolebindings", W, _rolebinding("x")),
    deny(O, "PATCH", batch(X, "hello"), "jobs", X, UNSUSPEND),
]

GRANTED: list[tuple[str, str, str, dict[str, Any] | None, int]] = [
    # (account, method, path, body, expected status) -- in the order they run.
    (B, "GET", f"/api/v1/namespaces/{M}", None, 200),
    (B, "GET", f"/api/v1/namespaces/{X}", None, 200),  # to see that it is NOT opted in
    (B, "GET", batch(M, "hello"), None, 200),
    (B, "POST", core(M, "secrets"), _secret("lc-granted-1"), 201),
    (B, "POST", core(M, "pods"), _pod("lc-granted-1"), 201),
    (B, "GET", core(M, "pods", "lc-granted-1"), None, 200),
    (B, "GET", core(M, "pods"), None, 200),
    (B, "GET", core(M, "pods", "lc-granted-1", "log"), None, 200),
    (B, "DELETE", core(M, "pods", "lc-granted-1"), None, 200),
    (B, "DELETE", core(M, "secrets", "lc-granted-1"), None, 200),
    (D, "GET", "/api/v1/namespaces", None, 200),
    (D, "GET", "/apis/batch/v1/jobs", None, 200),
    (D, "GET", batch(M, "hello"), None, 200),
    (D, "GET", batch(X, "hello"), None, 200),  # reads, and then refuses: not opted in
    (O, "GET", argo(W, "workflowtemplates", "tenant-lifecycle"), None, 200),
    (O, "GET", argo(W, "workflowtemplates"), None, 200),
    (O, "POST", argo(W), _workflow("lc-granted"), 201),
    (O, "GET", argo(W, name="lc-granted"), None, 200),
    (O, "GET", argo(W), None, 200),
    (O, "PATCH", argo(W, name="lc-granted"), {"metadata": {"annotations": {"a": "b"}}}, 200),
]


def _seed(cluster: Backend) -> None:
    """A not-opted-in team and a Job and a Secret in every namespace."""
    outside = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": X}}
    cluster.apply([outside])
    cluster.apply([_job(ns) for ns in (M, X, K)])
    cluster.apply(
        [
            {**_secret("team-credentials"), "metadata": {"name": "team-credentials",
                                                         "namespace": ns},
             "data": {"password": "c2VjcmV0"}}
            for ns in (M, X, K, W)
        ]
    )  # fmt: skip


@pytest.fixture(scope="module", params=["sandbox", "real"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def cluster(backend: str, request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The rendered install, a not-opted-in team and a Job and a Secret in every namespace.

    Module-scoped (the same as the ``sandbox_rbac`` fixture, once): the matrix only reads, and
    the granted writes use names no denial case depends on.
    """
    if backend == "real":
        real: RealBackend = request.getfixturevalue("real_install")
        _seed(real)
        yield real
        return
    factory = request.getfixturevalue("tmp_path_factory")
    with Sandbox(rbac=True, workdir=factory.mktemp("security-rbac")) as sb:
        load_install(sb)
        box = SandboxBackend(sb)
        _seed(box)
        yield box


def test_the_matrix_is_large_enough_and_covers_every_account_and_namespace() -> None:
    assert len(DENIED) >= 30
    assert len({c.id for c in DENIED}) == len(DENIED), "duplicate cases"
    for account in (B, D, O):
        namespaces = {c.namespace for c in DENIED if c.account == account}
        assert namespaces == {M, X, K, W, ""}, (account, namespaces)


@pytest.mark.parametrize("case", DENIED, ids=lambda c: c.id)
def test_denied(cluster: Backend, case: Case) -> None:
    reply = cluster.call(cluster.token_for(WF_NS, case.account), case.method, case.path, case.body)
    assert reply.status == 403, reply
    body = reply.body
    assert (body["kind"], body["apiVersion"], body["status"]) == ("Status", "v1", "Failure")
    assert (body["reason"], body["code"]) == ("Forbidden", 403)
    user = f"system:serviceaccount:{WF_NS}:{case.account}"
    message = body["message"]
    assert f'User "{user}" cannot {case.expected_verb} resource "{case.resource}"' in message
    if case.namespace:
        assert f'in the namespace "{case.namespace}"' in message
    else:
        assert "at the cluster scope" in message
    assert body["details"]["kind"] == case.resource.split("/")[0]


def _wait_until_started(cluster: Backend, namespace: str, pod: str) -> None:
    """A pod's log exists once its container started: before that the API server answers 400.

    Both backends are faithful here: the sandbox's node, like a real one, keeps a new pod
    ``ContainerCreating`` for a moment, longer on a loaded machine (CI once read it too early).
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = cluster.get("v1", "Pod", pod, namespace) or {}
        statuses = found.get("status", {}).get("containerStatuses") or []
        if statuses and not statuses[0].get("state", {}).get("waiting"):
            return
        time.sleep(0.2)
    raise AssertionError(f"pod {namespace}/{pod} did not start within 60 s: {found}")


def test_granted(cluster: Backend) -> None:
    # One test, in order: the grants build on each other (create, then read, then delete).
    for account, method, path, body, status in GRANTED:
        if path.endswith("/log"):
            _wait_until_started(cluster, M, path.split("/")[-2])
        reply = cluster.call(cluster.token_for(WF_NS, account), method, path, body)
        assert reply.status == status, (account, method, path, reply)


def test_denied_nothing_was_written(cluster: Backend) -> None:
    """After the matrix, no object a denied request would have made exists."""
    for ns in (M, X, K, W):
        for path in (
            core(ns, "pods"),
            core(ns, "secrets"),
            batch(ns),
            f"{RBAC}/namespaces/{ns}/rolebindings",
        ):
            names = cluster.names(path)
            assert "evil" not in names, (path, names)
            assert "x" not in names, (path, names)
    assert cluster.get("v1", "Namespace", "evil") is None
    assert cluster.names(argo(W)) in (["lc-granted"], [])
    job = cluster.get("batch/v1", "Job", "hello", M)
    assert job is not None
    assert job["spec"]["suspend"] is True
    outside = cluster.get("v1", "Namespace", X)
    assert outside is not None
    assert f"{PREFIX}/enabled" not in (outside["metadata"].get("labels") or {})


def test_the_adapter_reports_denials_as_forbidden_without_retrying(cluster: Backend) -> None:
    """What the product code sees: ForbiddenError with status 403 and the server's message."""
    token = cluster.token_for(WF_NS, BRIDGE)
    with Kube(host=cluster.url, token=token, ca_file=cluster.ca_file) as kube:
        with pytest.raises(ForbiddenError) as denied:
            kube.get(SECRETS, "team-credentials", namespace=M)
        assert denied.value.status == 403
        assert "cannot get resource" in str(denied.value)
        with pytest.raises(ForbiddenError):
            kube.get(JOBS, "hello", namespace=X)
