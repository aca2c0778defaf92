"""What ``tenantctl demo`` runs beside its story: SeaweedFS for the migration step, the tenant
state on the demo's "node" (where the example Jobs keep it, and reading it back), the sandbox's
log kept out of the story, and Ctrl-C turned into a cancel.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import LifecycleError
from sandbox.emulators import EmulatorCancelledError, EmulatorError, PubSubEmulator, SeaweedFS

# The example Jobs keep tenant state under this hostPath; the demo points it at a temp dir.
EXAMPLE_STATE_PATH = "/var/lib/tenant-lifecycle-demo"
DEMO_BUCKET = "tenant-lifecycle-demo"
WEED_START_TIMEOUT = 30.0
WEED_STOP_GRACE = 2.0


class DemoError(LifecycleError):
    """A step of the demo did not do what it should have."""


def start_weed(binary: str, root: Path) -> SeaweedFS:
    """``weed server -s3`` under ``root`` with one fresh identity, started (not yet ready)."""

    weed = SeaweedFS(
        root,
        access_key="DEMO" + secrets.token_hex(8).upper(),
        secret_key=secrets.token_urlsafe(24),
        identity="demo",
        binary=binary,
        start_timeout=WEED_START_TIMEOUT,
        stop_grace=WEED_STOP_GRACE,
    )
    return weed.start()


def weed_bridge_env(weed: SeaweedFS) -> dict[str, str]:
    """``BRIDGE_STORAGE_*`` for the bridges: static keys (SeaweedFS has no STS)."""
    return {
        "BRIDGE_STORAGE_BUCKET": DEMO_BUCKET,
        "BRIDGE_STORAGE_ENDPOINT_URL": weed.endpoint_url,
        "BRIDGE_STORAGE_REGION": "us-east-1",
        "BRIDGE_STORAGE_CREDENTIALS": "static",
        "BRIDGE_STORAGE_ACCESS_KEY_ID": weed.access_key,
        "BRIDGE_STORAGE_SECRET_ACCESS_KEY": weed.secret_key,
    }


def wait_ready(
    helper: SeaweedFS | PubSubEmulator, *, cancel: threading.Event, hint: str | None = None
) -> None:
    """Wait for a helper; Ctrl-C interrupts the demo, a failure is a :class:`DemoError`."""

    try:
        helper.wait_ready(cancel=cancel)
    except EmulatorCancelledError as exc:
        raise DemoInterruptedError from exc
    except EmulatorError as exc:
        raise DemoError(str(exc), hint=hint) from exc


# --------------------------------------------------------------------------------------------
# The story
# --------------------------------------------------------------------------------------------


def point_state_at(objects: list[dict[str, Any]], state_dir: Path) -> int:
    """Rewrite the example Jobs' state hostPath to ``state_dir``; returns how many volumes."""
    changed = 0
    for obj in objects:
        if obj.get("kind") != "Job":
            continue
        pod_spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        for volume in pod_spec.get("volumes") or []:
            host = volume.get("hostPath")
            if isinstance(host, dict) and host.get("path") == EXAMPLE_STATE_PATH:
                host["path"] = str(state_dir)
                changed += 1
    return changed


def tree(root: Path) -> list[str]:
    """Files under ``root``, relative, sorted (what the jobs left behind)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def digest(root: Path) -> dict[str, str]:
    return {
        rel: hashlib.sha256((root / rel).read_bytes()).hexdigest()
        for rel in tree(root)
        if not rel.startswith(".")
    }


@contextlib.contextmanager
def sandbox_log_to(path: Path) -> Iterator[None]:
    """The in-process sandbox's own log goes to a file, not into the story."""
    logger = logging.getLogger("sandbox")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = previous
        handler.close()


class DemoInterruptedError(Exception):
    """Ctrl-C or SIGTERM: stop the story, clean up, exit 130."""


@contextlib.contextmanager
def signals_cancel(cancel: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``cancel``: the running operation terminates its bridges (each
    deletes its pod), the story stops at the next step, and cleanup runs."""

    def handler(signum: int, frame: Any) -> None:
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class Step:
    title: str
    outcome: str = "skipped"
    detail: str = ""
    seconds: float = 0.0


EMULATOR_START_TIMEOUT = 45.0


EMULATOR_STOP_GRACE = 5.0


PUBSUB_PROJECT = "tenant-lifecycle-demo"
STORAGE_HINT = "run tenantctl demo --no-storage to skip the migration step"
