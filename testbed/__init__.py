"""The real Kubernetes control plane of the test bed: etcd, kube-apiserver,
kube-controller-manager and the project's node agent, built from pinned Go modules.

Where the sandbox (``sandbox/``) is the project's own stand-in for the API server, this room runs
the real programs; a claim about Kubernetes behaviour is proven here. Like the sandbox it imports
nothing from the product, so it can never share a bug with the client under test.
"""

from __future__ import annotations

from .build import BuildError, ensure_binary
from .controlplane import ControlPlane, ControlPlaneError

__all__ = ["BuildError", "ControlPlane", "ControlPlaneError", "ensure_binary"]
