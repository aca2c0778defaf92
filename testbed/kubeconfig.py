"""Kubeconfig files for the test bed: the server, its CA and a client certificate, inline."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

from .pki import KeyPair

CONTEXT = "testbed"


def render(*, url: str, ca: Path, client: KeyPair, namespace: str = "default") -> str:
    def inline(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": url, "certificate-authority-data": inline(ca)}}
        ],
        "users": [
            {
                "name": CONTEXT,
                "user": {
                    "client-certificate-data": inline(client.cert),
                    "client-key-data": inline(client.key),
                },
            }
        ],
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


def write(path: Path, *, url: str, ca: Path, client: KeyPair, namespace: str = "default") -> Path:
    """Write a kubeconfig readable only by its owner (it holds a private key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(render(url=url, ca=ca, client=client, namespace=namespace))
    return path
