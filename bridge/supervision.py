"""Supervising one pod by watching it (never polling) until it ends or the bridge gives up.

The pod ends by itself (finished, or deleted under us), or the bridge stops it: stuck beyond
the grace (ErrImagePull, ImagePullBackOff, CreateContainerConfigError, InvalidImageName,
Unschedulable), past ``activeDeadlineSeconds`` (across attempts), or cancelled
(SIGTERM/SIGINT). Meanwhile each container's log is followed to stdout (see
:mod:`bridge.logs`); a pod the bridge stops is deleted with its grace and watched until it is
gone, so its last log lines are drained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bridge import attempts as att
from bridge.kube import Kube
from bridge.logs import PodLogs
from bridge.podwatch import Cancellation, pod_updates
from bridge.run_pods import RunPods, pod_name
from bridge.settings import BridgeSettings

JSON = dict[str, Any]


@dataclass
class Stop:
    """Why supervision of a pod ended without the pod finishing by itself."""

    kind: str  # "stuck" | "deadline" | "cancelled" | "deleted"
    reason: str
    message: str


class PodSupervisor:
    """Watches one run's pods to their end; the runner owns the attempts around it."""

    def __init__(
        self,
        *,
        kube: Kube,
        pods: RunPods,
        settings: BridgeSettings,
        cancellation: Cancellation,
        cancelled: Callable[[], bool],
        emit: Callable[[str], None],
        emit_info: Callable[[str], None],
        clock: Callable[[], float],
    ) -> None:
        self.kube = kube
        self.pods = pods
        self.settings = settings
        self._cancellation = cancellation
        # The runner's check: asking it reports the cancel once.
        self._cancelled = cancelled
        self._emit = emit
        self._emit_info = emit_info
        self._clock = clock

    def supervise(self, pod: JSON, *, deadline_at: float | None) -> tuple[JSON, Stop | None]:
        """Watch the pod to its end, streaming its logs meanwhile.

        Returns (finished pod, None), or (last seen pod, why we stopped it) -- in which case the
        pod has been deleted with its grace and its last log lines drained.
        """
        name = pod_name(pod)
        pump = PodLogs(
            self.kube,
            pod,
            emit=self._emit,
            reconnect_delay=self.settings.log_reconnect_delay,
        )
        latest: JSON = pod
        stuck_since: float | None = None
        grace = self.settings.stuck_grace_seconds
        stop: Stop | None = None

        def wake_at() -> float:
            wake = self._clock() + self.settings.watch_timeout_seconds
            if stuck_since is not None:
                wake = min(wake, stuck_since + grace)
            if deadline_at is not None:
                wake = min(wake, deadline_at)
            return wake

        try:
            for current in self._pod_updates(name, until=wake_at):
                pump.update(current)
                if current is None:
                    stop = Stop("deleted", "PodDeleted", f"pod {name} was deleted")
                    break
                latest = current
                if att.is_finished(current):
                    break
                now = self._clock()
                if self._cancelled():
                    stop = Stop("cancelled", "Cancelled", "cancelled by SIGTERM/SIGINT")
                    break
                if deadline_at is not None and now >= deadline_at:
                    stop = Stop("deadline", "DeadlineExceeded", "activeDeadlineSeconds exceeded")
                    break
                stuck = att.stuck_reason(current)
                if stuck is None:
                    stuck_since = None
                elif stuck_since is None:
                    stuck_since = now
                    grace = (
                        self.settings.unschedulable_grace_seconds
                        if stuck[0] == "Unschedulable"
                        else self.settings.stuck_grace_seconds
                    )
                    self._emit_info(f"pod {name}: {stuck[0]}: {stuck[1]} (giving it {grace:g}s)")
                elif now - stuck_since >= grace:
                    stop = Stop("stuck", stuck[0], f"pod {name} is stuck: {stuck[1]}")
                    break
            if stop is not None and stop.kind != "deleted":
                self._stop_pod(latest, pump)
        finally:
            pump.drain(self.settings.log_drain_timeout)
        return latest, stop

    def _pod_updates(
        self, name: str, *, until: Callable[[], float], ignore_cancel: bool = False
    ) -> Iterator[JSON | None]:
        return pod_updates(
            self.kube,
            self.pods.namespace,
            name,
            until=until,
            clock=self._clock,
            cancellation=self._cancellation,
            ignore_cancel=ignore_cancel,
            retry_delay=self.settings.log_reconnect_delay,
        )

    def _stop_pod(self, pod: Mapping[str, Any], pump: PodLogs) -> None:
        """Delete a pod we give up on with its grace, and watch it go so its last log lines can
        be drained."""
        name = pod_name(pod)
        grace = self.pods.delete_grace(pod)
        self._emit_info(f"deleting pod {name} (grace {grace}s)")
        self.pods.delete(name, grace=grace)
        limit = self._clock() + grace + 5
        for current in self._pod_updates(name, until=lambda: limit, ignore_cancel=True):
            pump.update(current)
            if current is None or att.is_finished(current) or self._clock() >= limit:
                break
        pump.update(None)
