"""The lifecycle Job that the generated operator guide and the real-Argo tests apply.

One builder, so the guide's scenario and the tests that hold the guide to a real run describe
their Jobs the same way: a suspended ``batch/v1`` Job annotated for one operation and wave, one
container running ``sh -c script``. It lives with the tools (not in ``tests/``) because
``tools/operator_guide.py`` uses it, and the project never imports its tests.
"""

from __future__ import annotations

from typing import Any

#: Every job runs a shell script; busybox is small and has ``sh``.
IMAGE = "busybox:1.36"


def job(
    namespace: str,
    name: str,
    *,
    operation: str,
    wave: int,
    script: str,
    on_failure: str | None = None,
    backoff_limit: int = 0,
) -> dict[str, Any]:
    """A suspended Job that takes part in ``operation`` at ``wave`` and runs ``script``."""
    annotations = {
        "tenant-lifecycle.dev/operations": operation,
        "tenant-lifecycle.dev/wave": str(wave),
    }
    if on_failure:
        annotations["tenant-lifecycle.dev/on-failure"] = on_failure
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"tenant-lifecycle.dev/enabled": "true"},
            "annotations": annotations,
        },
        "spec": {
            "suspend": True,
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": IMAGE, "command": ["sh", "-c", script]}
                    ],
                }
            },
        },
    }
