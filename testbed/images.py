"""The node agent's image map: which local programs an image name stands for.

The node agent runs containers as local processes, so an image is a declaration, not a download:
its ``PATH`` (where the container's commands are found), its ``USER`` (what
``securityContext.runAsNonRoot`` is checked against, exactly as a kubelet checks an image's
config), and optionally an entrypoint and environment. An image that is not in the map cannot be
"pulled": the container waits in ``ErrImagePull`` / ``ImagePullBackOff`` as on a real node.

The defaults cover the images the project's Jobs, tests and demo use; the product image runs the
``tenant-lifecycle`` package from the interpreter this process runs in (the project's virtualenv).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PRODUCT_IMAGE = "ghcr.io/tenant-lifecycle/tenant-lifecycle"
PRODUCT_USER = 10001  # the Dockerfile's USER


def python_path() -> str:
    """``PATH`` with this interpreter's bin directory first (``python``, ``tenantctl``)."""
    return f"{Path(sys.executable).parent}:{SYSTEM_PATH}"


def python_layers() -> list[str]:
    """The host directories the Python images are made of: this virtualenv and the checkout its
    editable install points at. Bound at their own path in the container, so a checkout under
    /tmp (which containers see as their own private /tmp) still has its interpreter."""
    checkout = Path(__file__).resolve().parents[1]
    return sorted({str(Path(sys.prefix).resolve()), sys.prefix, str(checkout)})


def defaults() -> list[dict[str, Any]]:
    layers = python_layers()
    return [
        {"image": "busybox", "user": 0, "path": SYSTEM_PATH},
        {"image": "alpine", "user": 0, "path": SYSTEM_PATH},
        {"image": "debian", "user": 0, "path": SYSTEM_PATH},
        {"image": "python", "user": 0, "path": python_path(), "layers": layers},
        {"image": PRODUCT_IMAGE, "user": PRODUCT_USER, "path": python_path(), "layers": layers},
    ]


def write(path: Path, *, extra: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Write the map (defaults, then ``extra``; a later entry for the same image wins)."""
    entries: dict[str, dict[str, Any]] = {}
    for entry in [*defaults(), *extra]:
        entries[str(entry["image"])] = dict(entry)
    header = "# The node agent's image map, written by testbed/images.py for this run.\n"
    path.write_text(header + yaml.safe_dump({"images": list(entries.values())}, sort_keys=False))
    return path
