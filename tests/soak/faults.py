"""The soak's fault injector: one fault of a random kind at a time, from a seeded RNG.

Kinds (each counted only when it actually hit something):

=================  ============================================================================
``api-errors``     the next 1-4 API requests fail with 429, 500 or 503 (Retry-After 0-1 s)
``api-down``       every API request gets 503, open streams drop, for 0.3-1.5 s
``watch-cut``      the next watch stream is dropped (as a broken connection, no final chunk)
``log-cut``        the next log stream is dropped mid-line after a few bytes
``pod-kill``       a running lifecycle pod's processes are killed (node loss)
``pod-evict``      a running lifecycle pod is evicted
``consumer-restart``  ``tenantctl listen`` gets SIGTERM and is started again
``bridge-kill``    a ``python -m bridge run`` process gets SIGKILL; the local engine reruns it
                   (as Argo's retryStrategy would) and the rerun resumes the pod
=================  ============================================================================
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox import Sandbox

KINDS = (
    "api-errors",
    "api-down",
    "watch-cut",
    "log-cut",
    "pod-kill",
    "pod-evict",
    "consumer-restart",
    "bridge-kill",
)
MANAGED = "tenant-lifecycle.dev/managed-by"


@dataclass
class FaultLog:
    counts: Counter[str] = field(default_factory=Counter)
    misses: Counter[str] = field(default_factory=Counter)  # no target at that moment
    entries: list[dict[str, object]] = field(default_factory=list)

    def hit(self, kind: str, **detail: object) -> None:
        self.counts[kind] += 1
        self.entries.append({"kind": kind, "t": time.time(), **detail})


def running_pods(sb: Sandbox) -> list[tuple[str, str]]:
    """(namespace, name) of every bridge pod whose containers are running now."""
    pods = []
    for (ns, name), pod in sb.store.candidates("pods", None):
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED) != "bridge":
            continue
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        pods.append((ns, name))
    return pods


class FaultInjector:
    """Injects ``per_kind`` faults of every kind, spread over the run, on its own thread.

    ``restart_consumer`` and ``kill_bridge`` come from the harness (they own the processes) and
    return a detail dict, or None when there was nothing to hit.
    """

    def __init__(
        self,
        sb: Sandbox,
        *,
        seed: int,
        budgets: Mapping[str, int],
        interval: float,
        restart_consumer: Callable[[], dict[str, object] | None],
        kill_bridge: Callable[[random.Random], dict[str, object] | None],
        progress: Callable[[], float] | None = None,
        ready: Callable[[str], bool] | None = None,
        target_wait: float = 2.0,
    ) -> None:
        self.sb = sb
        self.rng = random.Random(seed)
        self.budgets = dict(budgets)
        self.interval = interval
        # The share of the load done by now (0..1): each kind keeps step with it, so no kind
        # bunches up (a storm of consumer restarts would leave no consumer to restart).
        self.progress = progress or (lambda: 1.0)
        # Whether a kind may be injected now (e.g. consumer restarts only late in a short run).
        self.ready = ready or (lambda kind: True)
        self.log = FaultLog()
        # A pod or bridge to hit exists only while a job runs: wait this long for one.
        self.target_wait = target_wait
        # A consumer restart drains running operations (seconds): it runs on its own thread so
        # the other faults go on meanwhile; one at a time.
        self._restart: threading.Thread | None = None
        self._log_lock = threading.Lock()
        self._restart_consumer = restart_consumer
        self._kill_bridge = kill_bridge
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def remaining(self) -> dict[str, int]:
        return {k: n - self.log.counts[k] for k, n in self.budgets.items()}

    def done(self) -> bool:
        return all(n <= 0 for n in self.remaining().values())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="soak-faults", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(120)
        if self._restart is not None:
            self._restart.join(120)
        self.sb.faults.clear()

    def allowance(self, kind: str, done: float) -> int:
        """How many faults of ``kind`` may have been injected when ``done`` of the load is."""
        return math.ceil(self.budgets[kind] * min(1.0, done)) + 1

    def _restarting(self) -> bool:
        return self._restart is not None and self._restart.is_alive()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set() and not self.done():
                done = self.progress()
                left = [
                    k
                    for k, n in self.remaining().items()
                    if n > 0
                    and self.log.counts[k] < self.allowance(k, done)
                    and self.ready(k)
                    and not (k == "consumer-restart" and self._restarting())
                ]
                if not left:
                    self._stop.wait(0.1)
                    continue
                # Weighted by what is left: every kind is spread over the whole run.
                remaining = self.remaining()
                kind = self.rng.choices(left, weights=[remaining[k] for k in left])[0]
                self.inject(kind)
                # Jitter around the interval, so faults do not beat in step with the jobs.
                self._stop.wait(self.interval * self.rng.uniform(0.5, 1.5))
        except BaseException as exc:  # reported by the harness, never a silent thread death
            self.error = exc

    def inject(self, kind: str) -> bool:
        rng, faults = self.rng, self.sb.faults
        detail: dict[str, object] | None
        if kind == "api-errors":
            detail = {
                "n": rng.randint(1, 4),
                "status": rng.choice([429, 500, 503]),
                "retry_after": rng.choice([0, 1]),
            }
            faults.fail_next(**detail)  # type: ignore[arg-type]
        elif kind == "api-down":
            detail = {"seconds": round(rng.uniform(0.3, 1.5), 2)}
            faults.unavailable(float(detail["seconds"]))  # type: ignore[arg-type]
        elif kind == "watch-cut":
            faults.cut_streams(after_seconds=0, kind="watch", times=1)
            detail = {}
        elif kind == "log-cut":
            detail = {"after_bytes": rng.randint(5, 120)}
            faults.cut_streams(after_bytes=int(detail["after_bytes"]), kind="log", times=1)  # type: ignore[call-overload]
        elif kind in ("pod-kill", "pod-evict"):
            pods = self._wait_for(lambda: running_pods(self.sb))
            if not pods:
                self._miss(kind)
                return False
            ns, name = rng.choice(sorted(pods))
            try:
                (faults.kill_pod if kind == "pod-kill" else faults.evict_pod)(ns, name)
            except KeyError:  # gone meanwhile
                self._miss(kind)
                return False
            detail = {"pod": f"{ns}/{name}"}
        elif kind == "consumer-restart":
            self._restart = threading.Thread(
                target=self._restart_in_background, name="soak-restart", daemon=True
            )
            self._restart.start()
            return True  # counted when it is done
        elif kind == "bridge-kill":
            detail = self._wait_for(lambda: self._kill_bridge(rng))
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        if detail is None:
            self._miss(kind)
            return False
        with self._log_lock:
            self.log.hit(kind, **detail)
        return True

    def _wait_for(self, find: Callable[[], Any]) -> Any:
        """``find()`` until it returns something, for up to ``target_wait`` seconds."""
        deadline = time.monotonic() + self.target_wait
        while True:
            found = find()
            if found or time.monotonic() >= deadline or self._stop.is_set():
                return found or None
            time.sleep(0.05)

    def _miss(self, kind: str) -> None:
        with self._log_lock:
            self.log.misses[kind] += 1

    def _restart_in_background(self) -> None:
        try:
            detail = self._restart_consumer()
        except BaseException as exc:  # reported by the harness
            self.error = exc
            return
        if detail is None:
            self._miss("consumer-restart")
        else:
            with self._log_lock:
                self.log.hit("consumer-restart", **detail)
