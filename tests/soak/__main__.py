"""``python -m tests.soak``: the full soak (``make chaos``), its size set by flags.

    python -m tests.soak --requests 500 --tenants 50 --faults-per-kind 200 --seed 1 \\
        --report soak-report.json

Exit 0 when every invariant held, 1 when one broke (the report says which), 2 on bad flags.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from .harness import SoakConfig, run_soak


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=500, help="valid lifecycle requests")
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--faults-per-kind", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--window", type=int, default=8, help="requests in flight at most")
    parser.add_argument("--max-concurrent", type=int, default=4, help="operations at once")
    parser.add_argument("--fault-interval", type=float, default=0.3, help="seconds between faults")
    parser.add_argument(
        "--consumer-restarts",
        type=int,
        help="consumer restarts instead of --faults-per-kind (each takes seconds)",
    )
    parser.add_argument(
        "--consumer-restart-after",
        type=float,
        default=0.0,
        help="restart the consumer only once this share of the requests has a result",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        help="tenantctl listen --drain-seconds: a restarted consumer's operations may finish",
    )
    parser.add_argument(
        "--collision-rate",
        type=float,
        default=0.1,
        help="share of requests sent to a tenant that is busy",
    )
    parser.add_argument("--job-lines", type=int, default=15, help="lines each job prints")
    parser.add_argument("--line-delay", type=float, default=0.1, help="seconds between lines")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--emulator-host", help="use this Pub/Sub emulator instead of starting one")
    parser.add_argument("--workdir", type=Path, help="keep the run's files here")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.tenants < 1 or args.faults_per_kind < 0:
        parser.error("--requests and --tenants must be at least 1, --faults-per-kind at least 0")
    config = SoakConfig(
        requests=args.requests,
        tenants=args.tenants,
        faults_per_kind=args.faults_per_kind,
        seed=args.seed,
        window=args.window,
        max_concurrent=args.max_concurrent,
        fault_interval=args.fault_interval,
        fault_counts=(
            {"consumer-restart": args.consumer_restarts}
            if args.consumer_restarts is not None
            else {}
        ),
        collision_rate=args.collision_rate,
        drain_seconds=args.drain_seconds,
        job_lines=args.job_lines,
        line_delay=args.line_delay,
        consumer_restart_after=args.consumer_restart_after,
        timeout=args.timeout,
        emulator_host=args.emulator_host,
        workdir=args.workdir,
        keep_workdir=args.workdir is not None,
    )
    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C: listen, bridges and the emulator stop.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    report = run_soak(config)
    report["command"] = "python -m tests.soak " + " ".join(sys.argv[1:] if argv is None else argv)
    text = json.dumps(report, indent=2, sort_keys=True)
    if args.report:
        args.report.write_text(text + "\n")
    summary = {
        "ok": report["ok"],
        "durationSeconds": report["durationSeconds"],
        "requests": report["requests"],
        "faults": report["faults"]["injected"],
        "outcomes": report["outcomes"],
        "invariants": {i["name"]: i["ok"] for i in report["invariants"]},
    }
    print(json.dumps(summary, indent=2))
    for invariant in report["invariants"]:
        for problem in invariant["problems"][:10]:
            print(f"  {invariant['name']}: {problem}", file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
