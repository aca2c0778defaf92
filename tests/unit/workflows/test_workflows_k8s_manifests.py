"""The plain Kubernetes install manifests: strict schema, kustomize builds, least privilege."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from workflows import install
from workflows.settings import WorkflowSettings

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
# The oldest Kubernetes minor the manifests are meant for; strict = unknown fields rejected.
K8S_VERSION = "1.29"
KUSTOMIZATIONS = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


@functools.cache
def _kustomize(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIR`` (offline), parsed; built once per directory."""
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _deploy_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                name = doc["metadata"]["name"]
                docs.append((f"{path.relative_to(REPO)}:{doc['kind']}/{name}", doc))
    return docs


DEPLOY_DOCS = _deploy_documents()


def _strict_errors(doc: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path))}: {exc.message}"]
    return []


@pytest.mark.parametrize(("label", "doc"), DEPLOY_DOCS, ids=[label for label, _ in DEPLOY_DOCS])
def test_install_manifest_passes_kubernetes_validate_strict(
    label: str, doc: dict[str, Any]
) -> None:
    assert _strict_errors(doc) == []


def test_every_expected_kind_is_shipped() -> None:
    kinds = {doc["kind"] for _, doc in DEPLOY_DOCS}
    assert kinds >= {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
    }


def test_misspelled_field_in_a_plain_manifest_is_caught() -> None:
    quota = next(doc for _, doc in DEPLOY_DOCS if doc["kind"] == "ResourceQuota")
    broken = {**quota, "spec": {"hrad": quota["spec"]["hard"]}}
    errors = _strict_errors(broken)
    assert errors
    assert "hrad" in errors[0]


def test_unknown_field_in_an_rbac_rule_is_caught() -> None:
    role = install.bridge_rbac(WorkflowSettings())[0]
    role["rules"][0]["verb"] = role["rules"][0].pop("verbs")
    assert _strict_errors(role)


@pytest.mark.parametrize(
    "directory", KUSTOMIZATIONS, ids=[str(p.relative_to(REPO)) for p in KUSTOMIZATIONS]
)
def test_kustomization_builds_offline_into_valid_objects(
    directory: Path, argo_schemas: Any
) -> None:
    built = _kustomize(directory)
    assert built
    for doc in built:
        if doc["apiVersion"].startswith("argoproj.io/"):
            assert argo_schemas.errors(doc["kind"], doc) == []
        else:
            assert _strict_errors(doc) == [], doc["metadata"]["name"]


def test_expected_kustomizations_exist() -> None:
    names = {str(p.relative_to(DEPLOY)) for p in KUSTOMIZATIONS}
    assert names == {"base", "events", "team-example", "argo"}


def _rules(name: str) -> list[dict[str, Any]]:
    return next(
        doc["rules"] for _, doc in DEPLOY_DOCS if doc["metadata"]["name"] == name and "rules" in doc
    )


def _grants(rules: list[dict[str, Any]], resource: str) -> set[str]:
    return {verb for rule in rules if resource in rule["resources"] for verb in rule["verbs"]}


def test_bridge_role_never_reads_secrets() -> None:
    rules = _rules(install.BRIDGE_CLUSTER_ROLE)
    # Not even patch or update: both answer with the whole Secret.
    assert _grants(rules, "secrets") == {"create", "delete"}
    assert _grants(rules, "pods") == {"create", "get", "list", "watch", "delete"}
    assert _grants(rules, "pods/log") == {"get"}
    assert _grants(rules, "jobs") == {"get"}
    assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in rules)


def test_bridge_cluster_role_is_bound_only_per_namespace() -> None:
    cluster_bindings = [
        doc["roleRef"]["name"] for _, doc in DEPLOY_DOCS if doc["kind"] == "ClusterRoleBinding"
    ]
    assert install.BRIDGE_CLUSTER_ROLE not in cluster_bindings
    team_bindings = [
        doc
        for _, doc in DEPLOY_DOCS
        if doc["kind"] == "RoleBinding" and doc["roleRef"]["name"] == install.BRIDGE_CLUSTER_ROLE
    ]
    assert [b["metadata"]["namespace"] for b in team_bindings] == ["team-example"]


def test_discovery_role_is_read_only() -> None:
    verbs = {v for rule in _rules(install.DISCOVERY_CLUSTER_ROLE) for v in rule["verbs"]}
    assert verbs <= {"get", "list", "watch"}


def test_example_team_namespace_is_opted_in_and_fenced() -> None:
    ns = next(
        doc
        for _, doc in DEPLOY_DOCS
        if doc["kind"] == "Namespace" and doc["metadata"]["name"] == "team-example"
    )
    assert ns["metadata"]["labels"]["tenant-lifecycle.dev/enabled"] == "true"
    policies = {
        doc["metadata"]["name"]: doc["spec"]
        for _, doc in DEPLOY_DOCS
        if doc["kind"] == "NetworkPolicy"
    }
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns_ports = {(p["protocol"], p["port"]) for p in policies["allow-dns"]["egress"][0]["ports"]}
    assert dns_ports == {("UDP", 53), ("TCP", 53)}


def test_template_referencing_strict_patch() -> None:
    (config_map,) = _kustomize(DEPLOY / "argo")
    assert config_map["metadata"]["name"] == "workflow-controller-configmap"
    restrictions = yaml.safe_load(config_map["data"]["workflowRestrictions"])
    assert restrictions == {"templateReferencing": "Strict"}
