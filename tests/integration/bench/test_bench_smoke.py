"""Smoke test of the benchmark suite: every benchmark runs in ``--quick`` mode and writes its
results file with figures, baselines, ratios and PASS/MISS verdicts.

Speed is never asserted here (that is what ``make bench`` reports); only that the suite runs
and records what docs/performance.md is built from. The four benchmarks run as two
``python -m bench`` processes side by side to stay within the test budget; the Pub/Sub emulator
is the session's (``BENCH_PUBSUB_EMULATOR_HOST``), not a second JVM.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
GROUPS = (("discovery", "bridge"), ("events", "fanout"))
MACHINE_KEYS = {"cores", "memoryMB", "cpuModel", "python"}


def _results(directory: Path, name: str) -> dict:
    path = directory / f"{name}.json"
    assert path.exists(), f"{name}: no results file in {sorted(directory.iterdir())}"
    return json.loads(path.read_text())


def test_every_benchmark_runs_quick_and_records_figures_and_ratios(
    pubsub_emulator, tmp_path
) -> None:
    env = {**pubsub_emulator.env(), "BENCH_PUBSUB_EMULATOR_HOST": pubsub_emulator.host}
    logs = [tmp_path / f"group-{i}.log" for i in range(len(GROUPS))]
    processes = []
    for names, log in zip(GROUPS, logs, strict=True):
        with log.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench",
                        *names,
                        "--quick",
                        "--results-dir",
                        str(tmp_path),
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
    try:
        codes = [p.wait(timeout=240) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    output = "\n".join(log.read_text(errors="replace") for log in logs)
    # Exit 0: every benchmark ran (a benchmark that raises makes `python -m bench` exit 1).
    assert codes == [0, 0], output

    for names in GROUPS:
        for name in names:
            data = _results(tmp_path, name)
            assert data["benchmark"] == name
            assert data["mode"] == "quick"
            assert set(data["machine"]) >= MACHINE_KEYS, data["machine"]
            assert data["figures"], data
            assert data["baselines"], data
            assert data["ratios"], data
            assert any(isinstance(v, int | float) for v in data["ratios"].values()), data["ratios"]
            assert data["targets"], data
            for target in data["targets"]:
                assert target["verdict"] in ("PASS", "MISS"), target
            # printed beside the figures, with the verdicts
            assert f"== {name}:" in output
    assert output.count("PASS") + output.count("MISS") >= 4

    # The figures are the real thing, not placeholders: what each run did is in its file.
    discovery = _results(tmp_path, "discovery")
    assert discovery["figures"]["ours_jobs_planned"] == discovery["parameters"]["jobsForOperation"]
    assert discovery["baselines"]["naive_jobs_listed"] == discovery["parameters"]["jobs"]
    bridge = _results(tmp_path, "bridge")
    assert bridge["figures"]["runs_succeeded"] == bridge["parameters"]["runs"]
    assert bridge["figures"]["bridge_lines_received"] == (
        bridge["parameters"]["runs"] * bridge["parameters"]["linesPerRun"]
    )
    events = _results(tmp_path, "events")
    assert events["figures"]["workflows_stored"] == events["parameters"]["events"]
    assert events["figures"]["duplicate_creates"] == 0
    fanout = _results(tmp_path, "fanout")
    assert fanout["figures"]["jobs_succeeded"] == fanout["parameters"]["jobs"]
