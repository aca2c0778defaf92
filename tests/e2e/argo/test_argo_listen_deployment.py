"""``tenantctl listen`` as the Deployment from deploy/base, in a pod on the real cluster: a
request published to the Pub/Sub emulator becomes a Workflow that the real controller runs, and
the result event comes back on the results topic."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from orchestrator.pubsub import emulator_host
from tests.e2e.argo.test_argo_lifecycle import _wait_for, add_team
from tests.fixtures.argo_cluster import NAMESPACE, ArgoCluster
from tools.jobs import job

DEPLOYMENT = "tenant-lifecycle-listen"
# The first test also pays for the session's Argo install (a minute or two on 2 cores).
pytestmark = pytest.mark.timeout(600)


def _history_volume(tmp_path: Path) -> dict[str, Any]:
    # What an operator's storage provides: a PersistentVolume the claim binds to (the test
    # bed has no dynamic provisioner), here a directory of the node.
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"listen-history-{uuid.uuid4().hex[:6]}"},
        "spec": {
            "capacity": {"storage": "5Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(tmp_path / "history"), "type": "DirectoryOrCreate"},
            "claimRef": {"namespace": NAMESPACE, "name": "tenant-lifecycle-listen-history"},
        },
    }


def test_listen_in_its_pod_turns_a_published_request_into_a_finished_workflow_and_a_result(
    argo_install: ArgoCluster, tmp_path: Path
) -> None:
    cluster = argo_install
    tag = uuid.uuid4().hex[:6]
    requests, subscription = f"requests-{tag}", f"requests-{tag}-listen"
    from orchestrator.pubsub import ensure_topology

    with emulator_host(cluster.emulator.host):
        ensure_topology(cluster.emulator.project, topics=[requests],
                        subscriptions={subscription: requests})  # fmt: skip
    # docs/install.md section 10: the listener's settings beyond the shared ConfigMap come from
    # the optional Secret tenant-lifecycle-listen (here: the emulator and this test's topics).
    cluster.kubectl("-n", NAMESPACE, "delete", "secret", DEPLOYMENT, "--ignore-not-found")
    cluster.kubectl(
        "-n", NAMESPACE, "create", "secret", "generic", DEPLOYMENT,
        f"--from-literal=PUBSUB_EMULATOR_HOST={cluster.emulator.host}",
        f"--from-literal=TENANTCTL_SUBSCRIPTION={subscription}",
        f"--from-literal=TENANTCTL_REQUEST_TOPIC={requests}",
    )  # fmt: skip
    cluster.apply([_history_volume(tmp_path)])
    cluster.kubectl("-n", NAMESPACE, "rollout", "restart", f"deployment/{DEPLOYMENT}")
    cluster.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{DEPLOYMENT}",
                    "--timeout=180s", timeout=200)  # fmt: skip

    team = f"e2e-{tag}-listen"
    add_team(cluster, team)
    operation = f"e2e-{tag}.upsert"
    cluster.apply([job(team, "hello", operation=operation, wave=0, script="echo via listen")])
    batch = f"listen-{tag}"
    tenantctl = str(Path(sys.executable).with_name("tenantctl"))
    published = subprocess.run(
        [tenantctl, "publish", operation, "--tenant-env-id", "t-listen", "--batch-operation-id",
         batch, "--project", cluster.emulator.project, "--topic", requests],
        env=cluster.emulator.env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr

    from orchestrator.naming import workflow_name

    name = workflow_name(batch)
    _wait_for(
        lambda: json.loads(cluster.kubectl("-n", NAMESPACE, "get", "workflows", "-o", "json"))
        ["items"] and name in cluster.kubectl("-n", NAMESPACE, "get", "workflows", "-o", "name"),
        "the listener to submit the Workflow", timeout=120,
    )  # fmt: skip
    workflow = cluster.wait(name)
    assert workflow["status"]["phase"] == "Succeeded", cluster.argo("get", name)
    events = cluster.results(batch, timeout=90)
    assert events, "no result event came back"
    assert events[0]["type"] == "dev.tenant-lifecycle.operation.succeeded"
    assert [j["job"] for j in events[0]["data"]["jobs"]] == ["hello"]
    # The listener recorded the request in its history on the claimed volume.
    time.sleep(1)
    assert (tmp_path / "history" / "history.db").is_file()
