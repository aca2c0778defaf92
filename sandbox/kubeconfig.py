"""Kubeconfig files pointing at a sandbox, for kubectl and ``config.load_kube_config``.

With a CA (the sandbox's HTTPS listener) the file carries certificate-authority-data: kubectl
sends a kubeconfig's token only to TLS servers.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

CONTEXT = "sandbox"


def render(url: str, token: str, *, namespace: str = "default", ca_pem: bytes | None = None) -> str:
    cluster: dict[str, Any] = {"server": url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
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


def write(
    path: Path,
    url: str,
    token: str,
    *,
    namespace: str = "default",
    ca_pem: bytes | None = None,
) -> Path:
    """Write a kubeconfig readable only by its owner (it holds a bearer token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(render(url, token, namespace=namespace, ca_pem=ca_pem))
    return path
