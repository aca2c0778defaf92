"""Reading a Workflow's nodes: :func:`workflow_nodes` is the one way in, because Argo's controller
keeps them in ``status.nodes`` only while the Workflow is small (offloaded or compressed
otherwise, see there).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

# Result ``reason`` when the nodes cannot be read (see workflow_nodes).
NODES_OFFLOADED: Final = "NodeStatusOffloaded"
NODES_UNREADABLE: Final = "NodeStatusUnreadable"
# The controller keeps a Workflow, compressed nodes included, under its MAX_WORKFLOW_SIZE (1 MiB
# by default), and node JSON compresses about 10-20x. A bound far above that keeps a forged
# status.compressedNodes (a gzip bomb) from exhausting the tracker's memory.
MAX_NODES_JSON_BYTES: Final = 256 * 1024 * 1024
_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_OFFLOAD_FIX: Final = (
    "raise the workflow-controller's MAX_WORKFLOW_SIZE so the compressed node status fits in "
    "the Workflow (status.compressedNodes, which the tracker reads), and do not enable node "
    "status offloading (persistence.nodeStatusOffLoad, ALWAYS_OFFLOAD_NODE_STATUS) for the "
    "controller of this namespace"
)


# --------------------------------------------------------------------------------------------
# reading a Workflow's nodes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowNodes:
    """A Workflow's node map, or why it cannot be read.

    ``reason``/``message`` are set when the nodes exist but are out of reach; ``nodes`` is then
    empty. Callers build the result anyway and carry the reason on it: raising instead would
    leave the Workflow unpublished for ever (the tracker retries errors, and this one does not
    heal), so nobody would hear of the operation at all.
    """

    nodes: Mapping[str, Any]
    reason: str | None = None
    message: str | None = None

    @property
    def readable(self) -> bool:
        return self.reason is None


def workflow_nodes(workflow: Mapping[str, Any]) -> WorkflowNodes:
    """The nodes of ``workflow`` from wherever Argo's controller put them.

    Above ``MAX_WORKFLOW_SIZE`` (1 MiB by default) the controller moves ``status.nodes`` into
    ``status.compressedNodes``: base64 (standard, padded) of the gzip of the nodes map's JSON
    (argo-workflows ``workflow/packer``, ``util/file``; zstd or brotli only when its
    ``WORKFLOW_COMPRESSION_ALGORITHM`` says so). If even that is too large and node status
    offloading is on -- or it is set to always offload -- the nodes go to Argo's persistence
    database and only ``status.offloadNodeStatusVersion`` is left, which the Kubernetes API does
    not resolve: that is reported as :data:`NODES_OFFLOADED`.
    """
    status = workflow.get("status") or {}
    nodes = status.get("nodes")
    if isinstance(nodes, Mapping) and nodes:
        return WorkflowNodes(nodes)
    compressed = status.get("compressedNodes")
    if isinstance(compressed, str) and compressed:
        return _decompressed(workflow, compressed)
    if status.get("offloadNodeStatusVersion"):
        return WorkflowNodes(
            {},
            NODES_OFFLOADED,
            f"workflow {_display_name(workflow)}: its node status was offloaded to Argo's "
            "persistence database (status.offloadNodeStatusVersion is set, status.nodes is "
            "empty), which the tracker cannot read, so the jobs' results are unknown. "
            f"Fix: {_OFFLOAD_FIX}.",
        )
    return WorkflowNodes({})


def _decompressed(workflow: Mapping[str, Any], compressed: str) -> WorkflowNodes:
    def unreadable(why: str, fix: str) -> WorkflowNodes:
        return WorkflowNodes(
            {},
            NODES_UNREADABLE,
            f"workflow {_display_name(workflow)}: status.compressedNodes {why}, so the jobs' "
            f"results are unknown. Fix: {fix}.",
        )

    try:
        packed = base64.b64decode(compressed, validate=True)
    except (binascii.Error, ValueError):
        return unreadable("is not base64", "check the workflow-controller's version and logs")
    if not packed.startswith(_GZIP_MAGIC):
        # The standard library has no zstd or brotli before Python 3.14; Argo writes them only
        # when told to (and brotli without a magic number, hence "or brotli").
        what = "zstd" if packed.startswith(_ZSTD_MAGIC) else "not gzip (brotli?)"
        return unreadable(
            f"is {what}; the tracker reads gzip only",
            "unset WORKFLOW_COMPRESSION_ALGORITHM on the workflow-controller (gzip, its default)",
        )
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as stream:
            text = stream.read(MAX_NODES_JSON_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        return unreadable(f"is not valid gzip ({exc})", "check the workflow-controller's logs")
    if len(text) > MAX_NODES_JSON_BYTES:
        return unreadable(
            f"expands to more than {MAX_NODES_JSON_BYTES // (1024 * 1024)} MiB",
            "split the operation into Workflows with fewer jobs",
        )
    try:
        nodes = json.loads(text)
    except ValueError as exc:
        return unreadable(f"is not a JSON node map ({exc})", "check the workflow-controller's logs")
    if not isinstance(nodes, dict):
        return unreadable("is not a JSON node map", "check the workflow-controller's logs")
    return WorkflowNodes(nodes)


def _display_name(workflow: Mapping[str, Any]) -> str:
    metadata = workflow.get("metadata") or {}
    name = str(metadata.get("name") or "?")
    return f"{metadata['namespace']}/{name}" if metadata.get("namespace") else name
