"""The pinned Argo Workflows module: its CRDs and JSON schema, from the Go module cache.

``testbed/argo/go.mod`` pins ``github.com/argoproj/argo-workflows/v4``; ``go mod download``
brings that exact version (checked against the checksum database) into the module cache outside
the tree, and the module carries the CRDs (``manifests/base/crds/full``) and the JSON schema
(``api/jsonschema/schema.json``) the project validates against and installs. Nothing is read
from outside the repository but the Go module cache.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from .build import BuildError, download

ARGO_MODULE = "github.com/argoproj/argo-workflows/v4"
EVENTS_MODULE = "github.com/argoproj/argo-events"
PIN_FILE = Path(__file__).resolve().parent / "argo" / "go.mod"


def pinned_version(module: str = ARGO_MODULE, go_mod: Path = PIN_FILE) -> str:
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod.read_text(),
                      re.MULTILINE)  # fmt: skip
    if found is None:
        raise BuildError(f"{go_mod}: no pinned version of {module}")
    return found.group(1)


@functools.cache
def module_dir(module: str = ARGO_MODULE) -> Path:
    """The pinned module's directory in the Go module cache (downloaded when missing)."""
    version = pinned_version(module)
    info = download(module, version, cwd=PIN_FILE.parent, why="the Argo CRDs and schemas")
    return Path(info["Dir"])


def crd_files() -> list[Path]:
    """The full Argo Workflows CRDs, one file per kind."""
    crds = module_dir() / "manifests" / "base" / "crds" / "full"
    return sorted(p for p in crds.glob("argoproj.io_*.yaml"))


def schema_root(directory: Path) -> Path:
    """``directory`` laid out as ``argo-workflows/`` (schema.json and the full CRDs) and
    ``argo-events/`` (schema.json), as links into the module cache; returns ``directory``."""
    workflows, events = directory / "argo-workflows", directory / "argo-events"
    for folder in (workflows, events):
        folder.mkdir(parents=True, exist_ok=True)
    links = {
        workflows / "schema.json": module_dir() / "api" / "jsonschema" / "schema.json",
        events / "schema.json": module_dir(EVENTS_MODULE) / "api" / "jsonschema" / "schema.json",
        **{workflows / crd.name: crd for crd in crd_files()},
    }
    for link, target in links.items():
        if not target.is_file():
            raise BuildError(f"the pinned Argo module has no {target}")
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return directory
