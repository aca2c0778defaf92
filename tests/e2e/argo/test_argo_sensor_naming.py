"""The Argo Events path and ``tenantctl`` name a request's Workflow alike, on the real controller.

No Sensor controller runs here (it needs an EventBus server these machines do not have), so the
Workflow the rendered Sensor would submit is made by argo-events' own trigger code
(``testbed/sensorcheck``: template parameters, the inline resource, resource parameters) from a
real request CloudEvent, then created on the real apiserver as the Sensor would create it. The
same request delivered three times through the Sensor path and once through ``tenantctl run`` is
one Workflow, which the real controller runs to the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from orchestrator.events import request_event
from orchestrator.naming import workflow_name
from tests.e2e.argo.test_argo_lifecycle import add_team
from tests.fixtures.argo_cluster import NAMESPACE, ArgoCluster
from tools.jobs import job

REPO = Path(__file__).resolve().parents[3]
PROGRAM = REPO / "testbed" / "sensorcheck"
SENSOR = REPO / "workflows" / "rendered" / "events" / "sensor.yaml"
pytestmark = pytest.mark.timeout(1500)  # a cold build of sensorcheck takes minutes


@pytest.fixture(scope="module")
def sensorcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("go is not on PATH: this test builds testbed/sensorcheck")
    binary = tmp_path_factory.mktemp("sensorcheck") / "sensorcheck"
    build = subprocess.run(
        [go, "build", "-trimpath", "-mod=readonly", "-o", str(binary), "."],
        cwd=PROGRAM, capture_output=True, text=True, timeout=1400, check=False,
    )  # fmt: skip
    assert build.returncode == 0, f"go build in {PROGRAM} failed:\n{build.stderr}"
    return binary


def sensor_workflow(binary: Path, event: dict[str, Any]) -> dict[str, Any]:
    line = json.dumps({"id": event["id"], "event": event}, ensure_ascii=False) + "\n"
    done = subprocess.run(
        [str(binary), "-sensor", str(SENSOR), "-resource"],
        input=line, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "error" not in result, result
    workflow: dict[str, Any] = result["workflow"]
    return workflow


def test_a_request_delivered_through_the_sensor_and_tenantctl_makes_one_workflow(
    argo_install: ArgoCluster, sensorcheck: Path
) -> None:
    cluster = argo_install
    tag = uuid.uuid4().hex[:6]
    team = f"e2e-{tag}-sensor"
    add_team(cluster, team)
    operation = f"e2e-{tag}.upsert"
    cluster.apply([job(team, "hello", operation=operation, wave=0, script="echo sensor")])
    # An id that is not a DNS label: upper case, '_' and '.', as other producers send them.
    batch = f"Batch_{tag}.From-Events"
    event = request_event(operation, tenant_env_id="t-sensor", batch_operation_id=batch)

    workflow = sensor_workflow(sensorcheck, event)
    assert workflow["metadata"]["name"] == workflow_name(batch)
    manifest = json.dumps(workflow)
    outcomes = []
    for _ in range(3):  # the Sensor's trigger, once per delivery
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(cluster.plane.kubeconfig), "create", "-f", "-"],
            input=manifest, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        outcomes.append((done.returncode, done.stderr.strip()))
    assert outcomes[0][0] == 0, outcomes[0]
    for code, err in outcomes[1:]:
        assert code != 0, "a redelivery created a second Workflow"
        assert "already exists" in err.lower(), err

    # The orchestrator's path for the same request finds the Sensor's Workflow: no second run.
    tenantctl = str(Path(sys.executable).with_name("tenantctl"))
    done = subprocess.run(
        [tenantctl, "run", operation, "--engine", "argo", "--tenant-env-id", "t-sensor",
         "--batch-operation-id", batch],
        env={**os.environ, "KUBECONFIG": str(cluster.plane.kubeconfig)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = json.loads(cluster.kubectl("-n", NAMESPACE, "get", "workflows", "-o", "json"))
    same = [
        w["metadata"]["name"] for w in listed["items"]
        if {"name": "batch-operation-id", "value": batch}
        in w["spec"].get("arguments", {}).get("parameters", [])
    ]  # fmt: skip
    assert same == [workflow_name(batch)]
    finished = cluster.wait(workflow_name(batch))
    assert finished["status"]["phase"] == "Succeeded", cluster.argo("get", workflow_name(batch))
