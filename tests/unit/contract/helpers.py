"""Builders for lifecycle Job dicts used by the contract tests."""

from __future__ import annotations

import copy
from typing import Any

from bridge.contract import DEFAULT_PREFIX


def make_job(
    name: str = "schema",
    namespace: str | None = "team-a",
    *,
    operations: str | None = "lifecycle.upsert",
    label: str | None = "true",
    prefix: str = DEFAULT_PREFIX,
    annotations: dict[str, Any] | None = None,
    spec: dict[str, Any] | None = None,
    suspend: Any = True,
) -> dict[str, Any]:
    """A valid suspended lifecycle Job unless told otherwise."""
    meta: dict[str, Any] = {"name": name, "labels": {}, "annotations": {}}
    if namespace is not None:
        meta["namespace"] = namespace
    if label is not None:
        meta["labels"][f"{prefix}/enabled"] = label
    if operations is not None:
        meta["annotations"][f"{prefix}/operations"] = operations
    meta["annotations"].update(annotations or {})
    job_spec: dict[str, Any] = {
        "backoffLimit": 2,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
            }
        },
    }
    if suspend is not None:
        job_spec["suspend"] = suspend
    job_spec.update(copy.deepcopy(spec or {}))
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec}
