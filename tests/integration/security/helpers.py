"""Shared pieces of the security tests: the rendered install, tokens, a marker search (raw API
calls are `Backend.call` in tests/fixtures/cluster.py).

The rendered manifests come from ``kubectl kustomize deploy/team-example`` (the base install plus
one managed team namespace), exactly what an operator applies; the sandbox serves every RBAC kind
and ignores the policy kinds it does not enforce (docs/sandbox.md).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from sandbox import Sandbox

REPO = Path(__file__).resolve().parents[3]
PREFIX = "tenant-lifecycle.dev"
WF_NS = "tenant-lifecycle"
MANAGED_NS = "team-example"  # opted in, the bridge's ClusterRole bound by the rendered install
NOT_OPTED_NS = "team-outside"  # a team namespace that never opted in
SYSTEM_NS = "kube-system"
# Kinds the sandbox does not serve: policy it does not enforce, and workloads (the sweeper's
# CronJob, the tenantctl listen Deployment with its volume claim and disruption budget).
UNENFORCED = {
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "CronJob",
    "Deployment",
    "PersistentVolumeClaim",
    "PodDisruptionBudget",
}


def rendered_install() -> list[dict[str, Any]]:
    """The install an operator applies: ``kubectl kustomize deploy/team-example``."""
    built = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "deploy" / "team-example")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [d for d in yaml.safe_load_all(built.stdout) if d]


def load_install(sb: Sandbox) -> list[dict[str, Any]]:
    """Apply the rendered install to ``sb`` (namespaces first); the objects applied."""
    objects = rendered_install()
    served = [o for o in objects if sb.registry.by_kind(o["apiVersion"], o["kind"])]
    unserved = {o["kind"] for o in objects} - {o["kind"] for o in served}
    assert unserved <= UNENFORCED, f"RBAC-relevant kinds the sandbox does not serve: {unserved}"
    sb.apply(sorted(served, key=lambda o: o["kind"] != "Namespace"))
    return served


def token_for(sb: Sandbox, account: str) -> str:
    return sb.issue_token(f"system:serviceaccount:{WF_NS}:{account}")


def find_marker(marker: str, haystacks: Mapping[str, Any]) -> list[str]:
    """The names of the haystacks (any JSON-able value or text) that contain ``marker``."""
    found = []
    for name, value in haystacks.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if marker in text:
            found.append(name)
    return found


def objects_named(objs: Iterable[dict[str, Any]], kind: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs if o["kind"] == kind)
