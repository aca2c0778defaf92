"""Kubeconfig files pointing at a sandbox, for kubectl and ``config.load_kube_config``."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CONTEXT = "sandbox"


def render(url: str, token: str, *, namespace: str = "default") -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write(path: Path, url: str, token: str, *, namespace: str = "default") -> Path:
    """Write a kubeconfig readable only by its owner (it holds a bearer token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(render(url, token, namespace=namespace))
    return path
