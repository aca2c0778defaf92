"""Soak instrumentation: a copy of every ``python -m bridge run`` process's stdout.

The local engine inside ``tenantctl listen`` reads each bridge's stdout (the job's log) and
shows it nowhere, so the soak cannot otherwise check that logs reach the bridge's output. With
this directory on ``PYTHONPATH`` and ``SOAK_TEE_DIR`` set, a bridge process writes its argv to
``<pid>.argv`` and a copy of its stdout to ``<pid>.out`` there. Nothing else is changed: other
processes return at once.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def _bridge_argv() -> list[str] | None:
    try:
        with open("/proc/self/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    args = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    for i, arg in enumerate(args[:-2]):
        if arg == "-m" and args[i + 1] == "bridge" and args[i + 2] == "run":
            return args
    return None


class _Tee:
    def __init__(self, stream: Any, copy: Any) -> None:
        self._stream = stream
        self._copy = copy

    def write(self, text: str) -> int:
        self._copy.write(text)
        self._copy.flush()
        return int(self._stream.write(text))

    def flush(self) -> None:
        self._stream.flush()
        self._copy.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _install() -> None:
    directory = os.environ.get("SOAK_TEE_DIR")
    if not directory:
        return
    args = _bridge_argv()
    if args is None:
        return
    # pid + clock: pids are reused over a long soak.
    base = os.path.join(directory, f"{os.getpid()}-{time.time_ns()}")
    with open(base + ".argv.tmp", "w", encoding="utf-8") as handle:
        json.dump(args, handle)
    os.replace(base + ".argv.tmp", base + ".argv")  # whole or absent, however it dies
    copy = open(base + ".out", "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    sys.stdout = _Tee(sys.stdout, copy)


_install()
