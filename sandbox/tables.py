"""Server-side printing: ``meta.k8s.io/v1`` Table responses for ``kubectl get``.

kubectl asks for ``as=Table`` and prints the server's columns. The sandbox offers NAME, a few
per-kind columns (the ones kubectl users expect to see) and AGE.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

Obj = dict[str, Any]


def _age(meta: Obj) -> str:
    stamp = meta.get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    seconds = max(0, int(time.time() - created))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def pod_status_text(pod: Obj) -> str:
    """The STATUS column kubectl shows for a pod."""
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    for init in status.get("initContainerStatuses") or []:
        state = init.get("state") or {}
        if "terminated" in state and state["terminated"].get("exitCode", 0) == 0:
            continue
        if "terminated" in state:
            return f"Init:{state['terminated'].get('reason') or 'Error'}"
        if "waiting" in state and state["waiting"].get("reason") not in (None, "PodInitializing"):
            return f"Init:{state['waiting']['reason']}"
        total = len(status.get("initContainerStatuses") or [])
        done = sum(
            1
            for s in status.get("initContainerStatuses") or []
            if (s.get("state") or {}).get("terminated", {}).get("exitCode") == 0
        )
        return f"Init:{done}/{total}"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    return str(reason)


def _columns(kind: str) -> list[tuple[str, str]]:
    extra = {
        "Pod": [("Ready", "string"), ("Status", "string"), ("Restarts", "string")],
        "Namespace": [("Status", "string")],
        "Job": [("Status", "string"), ("Completions", "string")],
        "Secret": [("Type", "string"), ("Data", "string")],
        "ConfigMap": [("Data", "string")],
        "ServiceAccount": [("Secrets", "string")],
        "Workflow": [("Status", "string")],
        "Event": [
            ("Type", "string"),
            ("Reason", "string"),
            ("Object", "string"),
            ("Message", "string"),
        ],
    }.get(kind, [])
    return [("Name", "string"), *extra, ("Age", "string")]


def _cells(kind: str, obj: Obj) -> list[Any]:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    extra: list[Any] = []
    if kind == "Pod":
        statuses = status.get("containerStatuses") or []
        ready = sum(1 for c in statuses if c.get("ready"))
        total = len(spec.get("containers") or [])
        restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
        extra = [f"{ready}/{total}", pod_status_text(obj), str(restarts)]
    elif kind == "Namespace":
        extra = [status.get("phase", "Active")]
    elif kind == "Job":
        state = "Suspended" if spec.get("suspend") else "Running"
        for cond in status.get("conditions") or []:
            if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
                state = cond["type"]
        extra = [state, f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}"]
    elif kind == "Secret":
        extra = [obj.get("type", "Opaque"), str(len(obj.get("data") or {}))]
    elif kind == "ConfigMap":
        extra = [str(len(obj.get("data") or {}) + len(obj.get("binaryData") or {}))]
    elif kind == "ServiceAccount":
        extra = [str(len(obj.get("secrets") or []))]
    elif kind == "Workflow":
        extra = [status.get("phase", "")]
    elif kind == "Event":
        involved = obj.get("involvedObject") or {}
        extra = [
            obj.get("type", ""),
            obj.get("reason", ""),
            f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
            obj.get("message", ""),
        ]
    return [meta.get("name", ""), *extra, _age(meta)]


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def table(kind: str, items: list[Obj], *, list_meta: Obj, include: str = "Metadata") -> Obj:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": [
            {
                "name": name,
                "type": ctype,
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": 0,
            }
            for name, ctype in _columns(kind)
        ],
        "rows": [
            {"cells": _cells(kind, obj), "object": _row_object(obj, include)} for obj in items
        ],
    }


def wants_table(accept: str) -> bool:
    return "as=Table" in accept
