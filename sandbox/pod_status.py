"""The status a pod worker reports: phase, conditions, container statuses, as a kubelet does.

Container threads and the worker change it concurrently; :meth:`PodStatus.snapshot` returns a
deep copy under the lock, because objects in the store must never change after they are written
(a watcher would otherwise see a later state under an earlier resourceVersion).
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from .clock import rfc3339

Obj = dict[str, Any]

_CONDITION_ORDER = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
    "DisruptionTarget",
)


class PodStatus:
    def __init__(self, spec: Obj) -> None:
        self.spec = spec
        self.lock = threading.RLock()
        self.phase = "Pending"
        self.conditions: dict[str, Obj] = {}
        self.statuses: dict[str, Obj] = {}
        self.init_statuses: dict[str, Obj] = {}
        self.extra: Obj = {}  # podIP, startTime, reason, message...

    def condition(
        self, ctype: str, status: bool, reason: str | None = None, message: str | None = None
    ) -> None:
        cond: Obj = {
            "type": ctype,
            "status": "True" if status else "False",
            "lastProbeTime": None,
            "lastTransitionTime": rfc3339(),
        }
        old = self.conditions.get(ctype)
        if old and old["status"] == cond["status"]:
            cond["lastTransitionTime"] = old["lastTransitionTime"]
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        self.conditions[ctype] = cond

    def status_for(self, container: Obj, init: bool) -> Obj:
        table = self.init_statuses if init else self.statuses
        name = container["name"]
        if name not in table:
            with self.lock:
                table[name] = {
                    "name": name,
                    "image": container.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {
                        "waiting": {
                            "reason": "PodInitializing"
                            if init or self.spec.get("initContainers")
                            else "ContainerCreating"
                        }
                    },
                    "lastState": {},
                }
        return table[name]

    def waiting(self, container: Obj, init: bool, reason: str, message: str | None = None) -> None:
        status = self.status_for(container, init)
        waiting: Obj = {"reason": reason}
        if message:
            waiting["message"] = message
        status["state"] = {"waiting": waiting}
        status["ready"] = False
        status["started"] = False

    def not_ready_message(self) -> str:
        names = " ".join(c["name"] for c in self.spec.get("containers") or [])
        return f"containers with unready status: [{names}]"

    def snapshot(self) -> Obj:
        """The pod's ``status`` as a fresh deep copy."""
        with self.lock:
            status: Obj = {
                "phase": self.phase,
                "conditions": [
                    self.conditions[c] for c in _CONDITION_ORDER if c in self.conditions
                ],
                "qosClass": "BestEffort",
                **self.extra,
            }
            containers = [
                self.statuses[c["name"]]
                for c in self.spec.get("containers") or []
                if c["name"] in self.statuses
            ]
            inits = [
                self.init_statuses[c["name"]]
                for c in self.spec.get("initContainers") or []
                if c["name"] in self.init_statuses
            ]
            if containers:
                status["containerStatuses"] = containers
            if inits:
                status["initContainerStatuses"] = inits
            return copy.deepcopy(status)
