"""The soak's lifecycle job: numbered log lines, and lock-based overlap detection.

Run by the sandbox as a pod container (``python -S job_program.py``; stdlib only). It records
``start``/``end`` to ``$SOAK_STATE/records.jsonl`` and detects, with ``flock`` (released by the
kernel however the process dies, SIGKILL included):

* ``overlap-run``: another process of the same batch and job holds the run lock (the job ran
  twice at the same time for one batch);
* ``overlap-tenant``: a job of *another* batch of the same tenant is running (two operations of
  one tenant at once).

Each line it prints is ``soak <batch> <job> attempt=<n> line <i>/<total>``.
"""

from __future__ import annotations

import fcntl
import json
import os
import time

STATE = os.environ["SOAK_STATE"]
LOCKS = os.path.join(STATE, "locks")
TENANT = os.environ["LIFECYCLE_TENANT_ENV_ID"]
BATCH = os.environ["LIFECYCLE_BATCH_OPERATION_ID"]
ATTEMPT = os.environ.get("LIFECYCLE_ATTEMPT", "?")
JOB = os.environ["SOAK_JOB"]
LINES = int(os.environ.get("SOAK_LINES", "10"))
DELAY = float(os.environ.get("SOAK_LINE_DELAY", "0.1"))


def record(event: str, **extra: object) -> None:
    entry = {
        "event": event,
        "tenant": TENANT,
        "batch": BATCH,
        "job": JOB,
        "attempt": ATTEMPT,
        "pid": os.getpid(),
        "t": time.time(),
        **extra,
    }
    with open(os.path.join(STATE, "records.jsonl"), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def main() -> None:
    os.makedirs(LOCKS, exist_ok=True)
    run_fd = os.open(os.path.join(LOCKS, f"run__{BATCH}__{JOB}"), os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(run_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        record("overlap-run")
    mine = f"tenant__{TENANT}__{BATCH}"
    tenant_fd = os.open(os.path.join(LOCKS, mine), os.O_CREAT | os.O_RDWR)
    fcntl.flock(tenant_fd, fcntl.LOCK_SH)  # jobs of one batch share it
    for name in os.listdir(LOCKS):
        if not name.startswith(f"tenant__{TENANT}__") or name == mine:
            continue
        probe = os.open(os.path.join(LOCKS, name), os.O_RDWR)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(probe, fcntl.LOCK_UN)
        except BlockingIOError:
            record("overlap-tenant", other=name.split("__")[2])
        finally:
            os.close(probe)
    record("start")
    for i in range(1, LINES + 1):
        print(f"soak {BATCH} {JOB} attempt={ATTEMPT} line {i}/{LINES}", flush=True)
        time.sleep(DELAY)
    record("end")


if __name__ == "__main__":
    main()
