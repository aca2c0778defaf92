"""Smoke test of the benchmark suite: every benchmark runs in ``--quick`` mode and writes its
results file with figures, baselines, ratios and PASS/MISS verdicts.

Speed is never asserted here (that is what ``make bench`` reports); only that the suite runs
and records what docs/performance.md is built from. The four benchmarks run as two
``python -m bench`` processes side by side to stay within the test budget; the Pub/Sub emulator
is the session's (``BENCH_PUBSUB_EMULATOR_HOST``), not a second JVM. Discovery runs on both
backends, the sandbox and the test bed's real kube-apiserver (``discovery-real.json``); the test
bed's binary is built (or found in its cache) before the clock starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import BuildError, ensure_binary

ROOT = Path(__file__).resolve().parents[3]
GROUPS = (("discovery", "bridge"), ("events", "fanout"))
MACHINE_KEYS = {"cores", "memoryMB", "cpuModel", "python"}


def _results(directory: Path, name: str) -> dict:
    path = directory / f"{name}.json"
    assert path.exists(), f"{name}: no results file in {sorted(directory.iterdir())}"
    return json.loads(path.read_text())


@pytest.mark.real  # discovery's quick run covers the real kube-apiserver too
def test_every_benchmark_runs_quick_and_records_figures_and_ratios(
    pubsub_emulator, tmp_path
) -> None:
    try:
        ensure_binary()  # a cold Go build takes minutes: not inside the benchmark's timeout
    except BuildError as exc:
        pytest.fail(f"the test bed's binary could not be built: {exc}", pytrace=False)
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
        codes = [p.wait(timeout=300) for p in processes]
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
    assert discovery["backend"] == "sandbox"
    # The same rows on the real kube-apiserver, in the same run, naming their backend.
    real = _results(tmp_path, "discovery-real")
    assert real["backend"] == real["parameters"]["backend"] == "real", real["parameters"]
    assert real["mode"] == "quick"
    assert "== discovery-real:" in output
    assert real["parameters"]["jobs"] == discovery["parameters"]["jobs"]
    assert real["baselines"]["jobs_in_apiserver"] == real["parameters"]["jobs"]
    assert real["figures"]["ours_jobs_planned"] == real["parameters"]["jobsForOperation"]
    assert real["baselines"]["naive_jobs_listed"] == real["parameters"]["jobs"]
    assert real["baselines"]["floor_jobs_listed"] == real["parameters"]["lifecycleJobs"]
    # Server side figures were read (CPU from /proc, bytes and requests from /metrics).
    assert real["figures"]["ours_server_cpu_s"] > 0, real["figures"]
    assert real["figures"]["ours_requests"] >= 2, real["figures"]
    assert real["figures"]["ours_bytes_received_mb"] > 0, real["figures"]
    names = {t["name"] for t in real["targets"]}
    assert {"(a)/(c) wall", "peak RSS of (a)"} <= names, names
    for target in real["targets"]:
        assert target["verdict"] in ("PASS", "MISS"), target
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
