"""What every benchmark shares: machine facts, measured subprocesses, targets, result files.

Rules the suite follows (issue 11):

* every figure is printed next to the baseline measured beside it, in the same run, on the same
  machine, and the ratio between them;
* measured programs run as their own processes, so wall time and peak RSS are theirs alone
  (``os.wait4`` gives the child's own ``ru_maxrss``);
* a target is printed as PASS or MISS next to its figure -- the suite never fails on speed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
PYTHON = sys.executable


# -- machine ------------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    """Cores, memory, CPU model, Python, and how busy the machine was (load average)."""
    cpu = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    load = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "memoryMB": round(mem_kb / 1024),
        "cpuModel": cpu or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadAverage1m": round(load[0], 2),
        "loadAverage5m": round(load[1], 2),
    }


# -- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


# -- results ------------------------------------------------------------------------------------


@dataclass
class Target:
    """One target of issue 11: ``figure op threshold``; ``op`` is "<=" or ">="."""

    name: str
    value: float | None
    op: str
    threshold: float
    unit: str = ""

    @property
    def met(self) -> bool:
        if self.value is None:
            return False
        return self.value <= self.threshold if self.op == "<=" else self.value >= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "op": self.op,
            "threshold": self.threshold,
            "unit": self.unit,
            "verdict": "PASS" if self.met else "MISS",
        }


@dataclass
class Report:
    """The figures of one benchmark, printed and written to ``<results>/<name>.json``."""

    name: str
    title: str
    quick: bool
    parameters: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def target(
        self, name: str, value: float | None, op: str, threshold: float, unit: str = ""
    ) -> None:
        self.targets.append(Target(name, value, op, threshold, unit))

    def to_json(self, machine: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "title": self.title,
            "mode": "quick" if self.quick else "full",
            "ranAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "durationSeconds": round(time.time() - self.started, 1),
            "machine": dict(machine),
            "parameters": self.parameters,
            "figures": self.figures,
            "baselines": self.baselines,
            "ratios": self.ratios,
            "targets": [t.to_json() for t in self.targets],
            "notes": self.notes,
        }

    def write(self, directory: Path, machine: Mapping[str, Any]) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(machine), indent=2, sort_keys=False) + "\n")
        tmp.replace(path)
        return path

    def print(self, out: IO[str] = sys.stdout) -> None:
        w = out.write
        w(f"\n== {self.name}: {self.title}{' (quick)' if self.quick else ''}\n")
        for section, data in (("figures", self.figures), ("baselines", self.baselines)):
            if data:
                w(f"  {section}:\n")
                for key, value in data.items():
                    w(f"    {key:<44} {_fmt(value)}\n")
        if self.ratios:
            w("  ratios:\n")
            for key, value in self.ratios.items():
                w(f"    {key:<44} {_fmt(value)}\n")
        if self.targets:
            w("  targets:\n")
            for t in self.targets:
                verdict = "PASS" if t.met else "MISS"
                figure = f"{_fmt(t.value)}{t.unit}"
                w(f"    {verdict}  {t.name:<40} {figure} {t.op} {t.threshold:g}{t.unit}\n")
        for note in self.notes:
            w(f"  note: {note}\n")
        out.flush()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


# -- measured subprocesses ----------------------------------------------------------------------


@dataclass
class Measured:
    """A finished child process: exit code, wall seconds, its own peak RSS, its output."""

    returncode: int
    wall: float
    max_rss_mb: float
    stdout: str = ""
    stderr: str = ""
    cpu: float = 0.0  # user + system seconds of the child and its waited-for descendants


class MeasuredLaunch:
    """A child started through ``bench.workers measure``: its wall time and its *own* peak RSS
    (see :func:`bench.workers.measure` for why a plain ``wait4`` would report ours)."""

    def __init__(self, argv: Sequence[str], **popen: Any) -> None:
        fd, name = tempfile.mkstemp(prefix="bench-measure-", suffix=".json")
        os.close(fd)
        self._out = Path(name)
        launcher = [PYTHON, "-m", "bench.workers", "measure", "--out", name, "--"]
        popen.setdefault("cwd", str(ROOT))
        popen.setdefault("env", child_env())
        self.started = time.monotonic()
        self.process = subprocess.Popen([*launcher, *argv], **popen)

    cpu: float = 0.0

    def wait(self, timeout: float | None = None) -> tuple[int, float, float]:
        """(exit code, wall seconds of the child itself, peak RSS MB of the child itself);
        its CPU seconds (user + system, with its waited-for descendants) land in ``cpu``."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.process)
            self.process.wait(timeout=10)
        try:
            data = json.loads(self._out.read_text() or "{}")
        except (OSError, ValueError):
            data = {}
        finally:
            self._out.unlink(missing_ok=True)
        wall = float(data.get("wall", time.monotonic() - self.started))
        self.cpu = float(data.get("cpu", 0.0))
        return (
            int(data.get("exit", self.process.returncode)),
            wall,
            data.get("maxRssKB", 0) / 1024.0,
        )


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> Measured:
    """Run ``argv`` to completion; stdout/stderr go through files (no reader threads here)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        launch = MeasuredLaunch(
            argv,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else child_env(),
            start_new_session=True,
        )
        code, wall, rss = launch.wait(timeout=timeout)
        out.seek(0)
        err.seek(0)
        return Measured(
            code,
            wall,
            rss,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            cpu=launch.cpu,
        )


def _kill_group(process: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def stop_process(process: subprocess.Popen[Any], *, grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL after ``grace``; always reaps it."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.wait(timeout=10)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.update(extra)
    return env


# -- the sandbox, instrumented ------------------------------------------------------------------


class ByteCounter:
    """Bytes the sandbox's HTTP handlers write to clients (status line, headers and body, before
    TLS). Counted server side, on every connection: a benchmark reads the counter's delta around
    one client run while nothing else talks to the sandbox."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.requests = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.total += n

    def request(self) -> None:
        with self._lock:
            self.requests += 1

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.total, self.requests


class _CountingWriter:
    def __init__(self, inner: Any, counter: ByteCounter) -> None:
        self._inner = inner
        self._counter = counter

    def write(self, data: Any) -> Any:
        self._counter.add(len(data))
        return self._inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


_COUNTER: ByteCounter | None = None


def install_byte_counter() -> ByteCounter:
    """Wrap the sandbox handler's writer once per process (the sandbox's files stay untouched:
    this patches the class in the benchmark's own process only)."""
    global _COUNTER  # noqa: PLW0603 - one counter per benchmark process, by design
    if _COUNTER is not None:
        return _COUNTER
    from sandbox import server

    counter = ByteCounter()
    original_setup = server.Handler.setup
    original_dispatch = server.Handler._dispatch

    def setup(self: Any) -> None:
        original_setup(self)
        self.wfile = _CountingWriter(self.wfile, counter)

    def dispatch(self: Any) -> None:
        counter.request()
        original_dispatch(self)

    server.Handler.setup = setup  # type: ignore[method-assign]
    server.Handler._dispatch = dispatch  # type: ignore[method-assign]
    _COUNTER = counter
    return counter


class PodClock:
    """Wall-clock moments of pod transitions, from the sandbox's own writes (millisecond
    precision, where the API's ``startedAt``/``finishedAt`` have one-second precision)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.created: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.terminated: dict[str, float] = {}
        self.changed = threading.Condition(self._lock)

    def hook(self, rtype: Any, namespace: str, obj: Any) -> None:
        if getattr(rtype, "key", "") != "pods" or obj is None:
            return
        now = time.time()
        key = f"{namespace}/{obj['metadata']['name']}"
        statuses = (obj.get("status") or {}).get("containerStatuses") or []
        with self._lock:
            self.created.setdefault(key, now)
            states = [s.get("state") or {} for s in statuses]
            if (
                states
                and key not in self.running
                and any("running" in s or "terminated" in s for s in states)
            ):
                self.running[key] = now
            if states and key not in self.terminated and all("terminated" in s for s in states):
                self.terminated[key] = now
            self.changed.notify_all()

    def run_seconds(self, key: str) -> float | None:
        with self._lock:
            if key in self.running and key in self.terminated:
                return self.terminated[key] - self.running[key]
        return None

    def start_seconds(self, key: str) -> float | None:
        with self._lock:
            if key in self.running and key in self.created:
                return self.running[key] - self.created[key]
        return None

    def wait_running(self, key: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while key not in self.running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.05))
            return True


class ErrorLog(logging.Handler):
    """Collects what the sandbox logs at ERROR (its "internal error" tracebacks) instead of
    printing them between the figures; the benchmark reports how many and which."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        self.messages.append(f"{record.getMessage()}{detail}"[:300])


def sandbox_errors_note(errors: ErrorLog) -> str | None:
    if not errors.messages:
        return None
    kinds = sorted({m.split(": ", 2)[-1] for m in errors.messages})
    return (
        f"the sandbox logged {len(errors.messages)} internal error(s) (answered 500 or dropped "
        f"the connection), e.g. {errors.messages[0]!r}; kinds: {kinds[:3]}"
    )


@contextlib.contextmanager
def sandbox(workdir: Path, *, record_events: bool = False) -> Iterator[Any]:
    """A started sandbox (RBAC off) with a :class:`PodClock` at ``sb.bench_clock`` and its
    logged errors at ``sb.bench_errors``."""
    from sandbox import Sandbox

    install_byte_counter()
    errors = ErrorLog()
    sandbox_log = logging.getLogger("sandbox")
    sandbox_log.addHandler(errors)
    sandbox_log.propagate = False
    sb = Sandbox(rbac=False, workdir=workdir, record_events=record_events)
    sb.bench_errors = errors  # type: ignore[attr-defined]
    clock = PodClock()
    sb.api.on_write.append(clock.hook)
    sb.start()
    sb.bench_clock = clock  # type: ignore[attr-defined]
    try:
        yield sb
    finally:
        sb.stop()
        sandbox_log.removeHandler(errors)
        sandbox_log.propagate = True


def byte_counter() -> ByteCounter:
    return install_byte_counter()


# -- the Pub/Sub emulator -----------------------------------------------------------------------


@contextlib.contextmanager
def pubsub_emulator(host: str | None = None) -> Iterator[str]:
    """``PUBSUB_EMULATOR_HOST`` of a running emulator: ``host`` when given (reuse), else one
    started here (``sandbox.emulators.PubSubEmulator``: a JVM, a few seconds) and stopped after."""
    if host:
        yield host
        return
    from sandbox.emulators import PubSubEmulator

    with PubSubEmulator(project="bench", start_timeout=90.0) as emulator:
        yield emulator.host


# -- small helpers ------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def mb(n_bytes: float) -> float:
    return round(n_bytes / 1e6, 2)
