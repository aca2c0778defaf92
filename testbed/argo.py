"""The pinned Argo Workflows module: its CRDs and JSON schema, and its programs built from it.

``testbed/argo/go.mod`` pins ``github.com/argoproj/argo-workflows/v4``; ``go mod download``
brings that exact version (checked against the checksum database) into the module cache outside
the tree, and the module carries the CRDs (``manifests/base/crds/full``), the JSON schema
(``api/jsonschema/schema.json``) and the install manifests (``manifests/cluster-install``).
Nothing is read from outside the repository but the Go module cache.

:func:`ensure_binaries` builds ``workflow-controller``, ``argoexec`` and the ``argo`` CLI (which
is also argo-server) from that module into the build cache, and :func:`image_map` maps Argo's
image names to them, so the node agent runs Argo's own Deployments from its release manifests
as pods (:func:`install`) — the controller, argo-server and every workflow pod's executor are
the real programs.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .build import BuildError, Progress, cache_dir, download, go_build
from .controlplane import ControlPlane
from .images import SYSTEM_PATH

ARGO_MODULE = "github.com/argoproj/argo-workflows/v4"
EVENTS_MODULE = "github.com/argoproj/argo-events"
PIN_FILE = Path(__file__).resolve().parent / "argo" / "go.mod"
# The page argo-server serves in place of the UI the module does not ship (see its comment).
UI_PLACEHOLDER = PIN_FILE.parent / "ui" / "index.html"
PROGRAMS = ("workflow-controller", "argoexec", "argo")
REBUILD = "make testbed"
# Symlinks of the upstream repository that the published module zip lacks: path -> link text.
_SYMLINKS = {"workflow/executor/osspecific/signal_linux.go": "signal_darwin.go"}
# Argo's images, as its release manifests and the controller's default executor name them.
IMAGES = {
    # image repository: (program, USER of Argo's Dockerfile for that image)
    "quay.io/argoproj/workflow-controller": ("workflow-controller", 8737),
    "quay.io/argoproj/argocli": ("argo", 8737),
    # The default executor image has no USER: it runs as root (argoexec-nonroot is the other).
    "quay.io/argoproj/argoexec": ("argoexec", 0),
}


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


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in (PIN_FILE, PIN_FILE.with_name("go.sum"), UI_PLACEHOLDER):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def binaries_dir() -> Path:
    """Where the built programs live: keyed by the pinned version and the build's inputs."""
    return cache_dir() / f"argo-{pinned_version()}-{_source_hash()}" / "bin"


def ensure_binaries(*, progress: Progress | None = None) -> Path:
    """The directory holding ``workflow-controller``, ``argoexec`` and ``argo``, built first
    when the cache has none for these pins (a cold build takes several minutes on 2 cores)."""
    target = binaries_dir()
    if all((target / name).is_file() for name in PROGRAMS):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all((target / name).is_file() for name in PROGRAMS):
            _build(target, progress=progress or (lambda _line: None))
    return target


def _build(target: Path, *, progress: Progress) -> None:
    version = pinned_version()
    work = target.parent
    # `argo` embeds the UI from ui/dist/app, which the published module does not contain, and
    # `go build -overlay` may not add files under the module cache: build from a copy of the
    # pinned module (outside the tree, in the build cache) with the placeholder page added, by
    # a go.mod that replaces the module with that copy. Every other dependency is the pinned one.
    source = work / "src"
    shutil.rmtree(source, ignore_errors=True)
    progress(f"copying {ARGO_MODULE}@{version} from the module cache to {source}")
    shutil.copytree(module_dir(), source, ignore=shutil.ignore_patterns("docs", "examples", "test"))
    for path in [source, *source.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    # Upstream's signal_linux.go is a symlink to signal_darwin.go, and module zips drop
    # symlinks: the published module cannot build argoexec for Linux without it. Restore it
    # as the link would read, from the module's own file.
    for link, target_name in _SYMLINKS.items():
        shutil.copyfile((source / link).with_name(target_name), source / link)
    page = source / "ui" / "dist" / "app"
    page.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(UI_PLACEHOLDER, page / "index.html")
    build_mod = work / "build.mod"
    build_mod.write_text(PIN_FILE.read_text() + f"\nreplace {ARGO_MODULE} => {source}\n")
    shutil.copyfile(PIN_FILE.with_name("go.sum"), work / "build.sum")
    partial = Path(tempfile.mkdtemp(prefix="bin-", dir=work))
    flags = [f"-X {ARGO_MODULE}.{key}={value}" for key, value in _version_flags(version).items()]
    progress(
        f"building Argo Workflows {version} (workflow-controller, argoexec, argo) from the pinned "
        "module: a cold build takes 5-15 minutes on 2 cores, later runs reuse it"
    )
    try:
        go_build(
            ["-modfile", str(build_mod), "-ldflags", " ".join(["-s", "-w", *flags]),
             "-o", f"{partial}/", *(f"{ARGO_MODULE}/cmd/{name}" for name in PROGRAMS)],
            cwd=PIN_FILE.parent,
            what=f"Argo Workflows {version}",
            progress=progress,
        )  # fmt: skip
        missing = [name for name in PROGRAMS if not (partial / name).is_file()]
        if missing:
            raise BuildError(f"`go build` wrote no {', '.join(missing)}; rerun: {REBUILD}")
        shutil.rmtree(target, ignore_errors=True)
        partial.chmod(0o755)
        partial.replace(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(source, ignore_errors=True)


def _version_flags(version: str) -> dict[str, str]:
    # What `argo version` reports, and the tag of the executor image the controller asks for
    # (`quay.io/argoproj/argoexec:<version>`), as a release build sets them.
    return {"version": version, "gitTag": version, "gitTreeState": "clean"}


def image_map(binaries: Path) -> list[dict[str, Any]]:
    """Node-agent image entries: Argo's images at the pinned tag run the built programs.

    The programs' directory is also a layer of each image, bound at its own path: a build cache
    under /tmp (``TESTBED_CACHE_DIR=/tmp/...``) is otherwise hidden by the container's private
    /tmp, and the controller's pod would fail with "executable file not found".
    """
    version = pinned_version()
    return [
        {
            "image": f"{repository}:{version}",
            "user": user,
            "path": f"{binaries}:{SYSTEM_PATH}",
            "entrypoint": [program],
            "layers": [str(binaries.resolve())],
        }
        for repository, (program, user) in IMAGES.items()
    ]


# The controller's documented DEFAULT_REQUEUE_TIME (10 s by default): how soon it looks at a
# Workflow again. Every step of a lifecycle waits for it, so the test bed shortens it, as an
# operator may; what the controller does is unchanged, only how soon.
REQUEUE_TIME = "2s"


def install_manifest(
    plane: ControlPlane, path: Path, *, requeue: str | None = REQUEUE_TIME
) -> Path:
    """Argo's ``install.yaml`` for the pinned version, written to ``path``: the module's
    ``manifests/cluster-install`` built with kustomize and its images set to the pinned tag, as
    Argo's release makes it; ``requeue`` sets the controller's ``DEFAULT_REQUEUE_TIME``."""
    version = pinned_version()
    built = plane.kubectl("kustomize", str(module_dir() / "manifests" / "cluster-install"))
    for repository in IMAGES:
        built = built.replace(f"image: {repository}:latest", f"image: {repository}:{version}")
    documents = [d for d in yaml.safe_load_all(built) if d]
    if requeue:
        for document in documents:
            if document["kind"] == "Deployment" and document["metadata"]["name"] == (
                "workflow-controller"
            ):
                container = document["spec"]["template"]["spec"]["containers"][0]
                container.setdefault("env", []).append(
                    {"name": "DEFAULT_REQUEUE_TIME", "value": requeue}
                )
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def install(plane: ControlPlane, *, progress: Progress | None = None, timeout: int = 180) -> None:
    """Install Argo Workflows on ``plane`` as a cluster operator would: the release manifests
    (CRDs, RBAC, ConfigMap, the workflow-controller and argo-server Deployments) applied
    server-side, then wait until both Deployments are available. ``plane`` must have been
    started with :func:`image_map` in its node agent's map."""
    say = progress or (lambda _line: None)
    manifest = install_manifest(plane, plane.root / "argo-install.yaml")
    say(f"installing Argo Workflows {pinned_version()} (namespace argo)")
    # Argo's install guide: `kubectl create namespace argo`, then apply install.yaml.
    plane.kubectl(
        "apply", "-f", "-", stdin="apiVersion: v1\nkind: Namespace\nmetadata: {name: argo}\n"
    )
    # The CRDs are 2.7 MB each: too large for a client-side apply's last-applied annotation.
    plane.kubectl("apply", "--server-side", "-f", str(manifest), timeout=120)
    for deployment in ("workflow-controller", "argo-server"):
        plane.kubectl(
            "-n", "argo", "rollout", "status", f"deployment/{deployment}",
            f"--timeout={timeout}s", timeout=timeout + 10,
        )  # fmt: skip
    say("Argo Workflows is running: workflow-controller and argo-server in namespace argo")
