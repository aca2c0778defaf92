"""Programs the benchmarks run as their own processes (so wall time and peak RSS are theirs).

    python -m bench.workers list --kubeconfig K [--label-selector S] [--operation OP]
    python -m bench.workers stamp OUTFILE            # stdin lines -> "<arrival ns> <line>"
    python -m bench.workers pull-ack --project P --subscription S --expect N
    python -m bench.workers measure --out FILE -- ARGV...   # wall + the child's own peak RSS

Kept free of heavy imports at module level: ``stamp`` must start in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def list_jobs(args: argparse.Namespace) -> int:
    """The baselines of the discovery benchmark, with the plain official client.

    Pages of ``limit`` Jobs across all namespaces, read raw (``_preload_content=False`` + one
    ``json.loads`` per page, no model objects) -- the cheapest way the official client can list.
    With ``--label-selector`` this is the floor: one paginated, label-selected LIST. Without it,
    the naive way: every Job, filtered on the annotation here in the client.
    """
    from kubernetes import client, config

    config.load_kube_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    api: Any = client.BatchV1Api()
    token: str | None = None
    items = matched = pages = 0
    started = time.monotonic()
    while True:
        kwargs: dict[str, Any] = {"limit": args.limit, "_preload_content": False}
        if args.label_selector:
            kwargs["label_selector"] = args.label_selector
        if token:
            kwargs["_continue"] = token
        response = api.list_job_for_all_namespaces(**kwargs)
        page = json.loads(response.data)
        pages += 1
        for job in page.get("items") or []:
            items += 1
            annotations = (job.get("metadata") or {}).get("annotations") or {}
            ops = annotations.get(args.annotation, "")
            if args.operation and args.operation in {o.strip() for o in ops.split(",")}:
                matched += 1
        token = (page.get("metadata") or {}).get("continue") or None
        if not token:
            break
    api.api_client.close()
    print(
        json.dumps(
            {
                "items": items,
                "matched": matched,
                "pages": pages,
                "seconds": round(time.monotonic() - started, 3),
            }
        )
    )
    return 0


def stamp(args: argparse.Namespace) -> int:
    """Timestamp every line of stdin on arrival (ns since the epoch) into OUTFILE."""
    read = sys.stdin.buffer.readline
    now = time.time_ns
    with open(args.outfile, "wb") as out:
        while True:
            line = read()
            if not line:
                break
            out.write(b"%d " % now() + line)
    return 0


def pull_ack(args: argparse.Namespace) -> int:
    """The events baseline: a raw synchronous pull-and-ack loop, nothing else."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    path = f"projects/{args.project}/subscriptions/{args.subscription}"
    got = 0
    ids: set[str] = set()
    first: float | None = None
    started = time.monotonic()
    deadline = started + args.timeout
    try:
        while got < args.expect and time.monotonic() < deadline:
            try:
                response = subscriber.pull(
                    request={"subscription": path, "max_messages": args.batch}, timeout=5.0
                )
            except (gexc.DeadlineExceeded, gexc.RetryError):
                continue
            received = list(response.received_messages)
            if not received:
                continue
            if first is None:
                first = time.monotonic()
            subscriber.acknowledge(
                request={"subscription": path, "ack_ids": [r.ack_id for r in received]}
            )
            for r in received:
                ids.add(r.message.attributes.get("ce-id", r.message.message_id))
            got += len(received)
    finally:
        subscriber.close()
    last = time.monotonic()
    print(
        json.dumps(
            {
                "received": got,
                "unique": len(ids),
                "firstToLastSeconds": round(last - (first or last), 3),
                "totalSeconds": round(last - started, 3),
            }
        )
    )
    return 0


def measure(args: argparse.Namespace) -> int:
    """Run ARGV (stdio inherited) and write its wall time and *own* peak RSS to ``--out``.

    Why a launcher: Linux records in a child's ``ru_maxrss`` the high-water RSS of the memory it
    replaced at ``exec`` -- with ``vfork`` (what ``subprocess`` uses) that is the *parent's*. A
    child of the benchmark process (which holds the sandbox and its 60,000 Jobs) would report
    the benchmark's RSS. This launcher is small, so what its child inherits is noise (~10 MB,
    below any figure measured).
    """
    import os
    import signal
    import subprocess

    started = time.monotonic()
    child = subprocess.Popen(args.argv)

    def forward(signum: int, frame: Any) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            _, status, usage = os.wait4(child.pid, 0)
            break
        except InterruptedError:
            continue
    wall = time.monotonic() - started
    child.returncode = code = os.waitstatus_to_exitcode(status)
    with open(args.out, "w") as out:
        json.dump(
            {
                "exit": code,
                "wall": wall,
                "maxRssKB": usage.ru_maxrss,
                "cpu": usage.ru_utime + usage.ru_stime,
            },
            out,
        )
    return code if code >= 0 else 128 - code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--label-selector", default="")
    p.add_argument("--operation", default="")
    p.add_argument("--annotation", default="tenant-lifecycle.dev/operations")
    p.add_argument("--limit", type=int, default=500)
    p.set_defaults(func=list_jobs)
    s = sub.add_parser("stamp")
    s.add_argument("outfile")
    s.set_defaults(func=stamp)
    q = sub.add_parser("pull-ack")
    q.add_argument("--project", required=True)
    q.add_argument("--subscription", required=True)
    q.add_argument("--expect", type=int, required=True)
    q.add_argument("--batch", type=int, default=1000)
    q.add_argument("--timeout", type=float, default=300.0)
    q.set_defaults(func=pull_ack)
    m = sub.add_parser("measure")
    m.add_argument("--out", required=True)
    m.add_argument("argv", nargs=argparse.REMAINDER)
    m.set_defaults(func=measure)
    args = parser.parse_args(argv)
    if args.command == "measure" and args.argv[:1] == ["--"]:
        args.argv = args.argv[1:]
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
