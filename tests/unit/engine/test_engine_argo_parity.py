"""One plan, two engines, one result: the jobs of the local engine's result event are the jobs
the tracker builds from the equivalent Argo Workflow (same bridge results, same plan)."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.argo.outcome import build_result
from orchestrator.engine import EngineSettings, LocalEngine, RunRequest

from .fakes import FakeBridgeLauncher, FakeJob, FakePlanSource, plan_of

UPSERT = "lifecycle.upsert"


def argo_workflow(plan: Any, job_results: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    """What Argo holds after running ``plan``: a discovery node with the plan output and one
    bridge node per job that ran, with the bridge's result as its output."""
    plan_json = {
        "operation": plan.operation,
        "tenantEnvId": "t1",
        "waves": [
            {
                "wave": wave.wave,
                "jobs": [
                    {
                        "namespace": job.namespace,
                        "name": job.name,
                        "wave": job.wave,
                        "onFailure": job.on_failure,
                        "deletePolicy": job.delete_policy,
                        "display": job.key,
                    }
                    for job in wave.jobs
                ],
            }
            for wave in plan.waves
        ],
        "rejected": [],
    }
    nodes: dict[str, Any] = {
        "d": {
            "displayName": "discover",
            "type": "Pod",
            "phase": "Succeeded",
            "outputs": {"parameters": [{"name": "plan", "value": json.dumps(plan_json)}]},
        }
    }
    for index, result in enumerate(job_results):
        bridge = {k: v for k, v in result.items() if k != "wave"}
        nodes[f"n{index}"] = {
            "displayName": f"bridge({result['namespace']}/{result['job']})",
            "type": "Pod",
            "phase": "Succeeded" if result["status"] == "succeeded" else "Failed",
            "inputs": {
                "parameters": [
                    {"name": "job", "value": f"{result['namespace']}/{result['job']}"},
                    {"name": "wave", "value": str(result["wave"])},
                ]
            },
            "outputs": {"parameters": [{"name": "result", "value": json.dumps(bridge)}]},
        }
    return {
        "metadata": {
            "name": "lc-b-7",
            "labels": {
                "tenant-lifecycle.dev/tenant": "t1",
                "tenant-lifecycle.dev/operation": UPSERT,
                "tenant-lifecycle.dev/batch": "b-7",
            },
        },
        "status": {"phase": phase, "nodes": nodes},
    }


def test_an_aborted_run_reports_the_same_jobs_on_both_engines() -> None:
    plan = plan_of(
        UPSERT,
        ("team-platform/tenant", -1, "abort"),
        ("team-a/schema", 0, "abort"),
        ("team-c/warmup", 1, "abort"),
    )
    launcher = FakeBridgeLauncher({"team-platform/tenant": FakeJob("failed", 3)})
    engine = LocalEngine(
        plan_source=FakePlanSource(plan),
        launcher=launcher,
        settings=EngineSettings(poll_seconds=0.01),
    )
    local = engine.run(RunRequest(UPSERT, "t1", batch_operation_id="b-7")).to_event_data()
    ran = [job for job in local["jobs"] if job["status"] != "skipped"]

    argo = build_result(argo_workflow(plan, ran, "Failed"))["data"]

    assert [j["status"] for j in local["jobs"]] == ["failed", "skipped", "skipped"]
    assert argo["status"] == local["status"] == "failed"
    assert argo["jobs"] == local["jobs"]
