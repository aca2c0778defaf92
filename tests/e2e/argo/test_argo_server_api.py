"""What an operator sees in the Argo UI, through the REST API of the real argo-server.

The UI is a front end over argo-server's API (the same API the ``argo`` CLI uses in server
mode); its browser build cannot be made on these machines, so what it shows is proven here, on
the endpoints it calls, for lifecycles that really ran on the real controller (pinned v4.1.4):

* ``GET /api/v1/workflows/{ns}/{name}``: one node per job, its display name naming
  ``namespace/job``, under the ``wave`` node of its wave; a failed job's node carries the exit
  code and the bridge's result (reason, message); the waves after it have no node at all;
* ``GET /api/v1/workflows/{ns}/{name}/log?podName=…&logOptions.container=main``: a job's node
  logs that job's own lines, as its bridge streamed them;
* ``GET /api/v1/workflows/{ns}?listOptions.labelSelector=…``: the list filtered by the tenant
  and operation labels the template takes from its parameters (``workflowMetadata.labelsFrom``);
* ``GET /api/v1/workflow-templates/{ns}``, ``POST /api/v1/workflows/{ns}/submit`` (the UI's
  Submit) and ``POST /api/v1/workflows/{ns}`` (a Workflow of one's own, which Strict template
  referencing refuses to run);
* and argo-server's ``client`` auth mode: each caller's ServiceAccount token, judged by the
  API server's RBAC (a 403 for an account without rights).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli.commands.status import argo_pod_name
from tests.e2e.argo.test_argo_lifecycle import add_team
from tests.fixtures.argo_cluster import NAMESPACE, ArgoCluster
from tests.fixtures.argo_server import ArgoServer, ArgoServerError, insecure_tls
from tools.jobs import job

REPO = Path(__file__).resolve().parents[3]
INSTALL_GUIDE = REPO / "docs" / "install.md"

SCHEMA_LINES = ["applying migration 007 for tenant {tenant}", "schema at version 7"]
INDEX_LINES = ["reindexing products for tenant {tenant}",
               "error: mapping conflict on field price (long vs text)"]  # fmt: skip
NOTIFY_LINES = ["billing notified for tenant {tenant}"]


def _script(lines: list[str], *, exit_code: int = 0) -> str:
    # Tenant id from the bridge's environment, every line on stdout (one stream, one order).
    echoed = "; ".join(f'echo "{line.format(tenant="$LIFECYCLE_TENANT_ENV_ID")}"'
                       for line in lines)  # fmt: skip
    return f"{echoed}; exit {exit_code}"


@dataclass(frozen=True)
class Run:
    """A lifecycle that ran: wave -1 succeeded, wave 0 had a failed abort job (and a
    succeeding continue job), so wave 1 never started."""

    name: str
    tenant: str
    operation: str
    batch: str
    jobs: Mapping[str, int]  # namespace/job -> wave
    failed: str
    not_run: str
    lines: Mapping[str, list[str]]  # namespace/job -> the lines it printed


@pytest.fixture(scope="module")
def failed_run(argo_install: ArgoCluster) -> Run:
    cluster = argo_install
    tag = uuid.uuid4().hex[:6]
    catalog, search, billing = (f"ui-{tag}-{t}" for t in ("catalog", "search", "billing"))
    for team in (catalog, search, billing):
        add_team(cluster, team)
    operation, tenant, batch = f"e2e-{tag}.upsert", f"t-{tag}", f"b-{tag}"
    cluster.apply([
        job(catalog, "schema", operation=operation, wave=-1, script=_script(SCHEMA_LINES)),
        job(search, "index", operation=operation, wave=0, backoff_limit=1,
            script=_script(INDEX_LINES, exit_code=3)),
        job(billing, "notify", operation=operation, wave=0, on_failure="continue",
            script=_script(NOTIFY_LINES)),
        job(catalog, "warm", operation=operation, wave=1, script="echo warm"),
    ])  # fmt: skip
    name = cluster.submit(operation=operation, tenant=tenant, batch=batch)
    workflow = cluster.wait(name)
    assert workflow["status"]["phase"] == "Failed", cluster.argo("get", name)

    def lines(template: list[str]) -> list[str]:
        return [line.format(tenant=tenant) for line in template]

    return Run(
        name=name, tenant=tenant, operation=operation, batch=batch,
        jobs={f"{catalog}/schema": -1, f"{search}/index": 0, f"{billing}/notify": 0,
              f"{catalog}/warm": 1},
        failed=f"{search}/index", not_run=f"{catalog}/warm",
        lines={f"{catalog}/schema": lines(SCHEMA_LINES), f"{search}/index": lines(INDEX_LINES),
               f"{billing}/notify": lines(NOTIFY_LINES)},
    )  # fmt: skip


def _inputs(node: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(p["name"]): str(p.get("value"))
        for p in (node.get("inputs") or {}).get("parameters") or []
    }


def _job_pods(workflow: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """namespace/job -> its Pod nodes, as the API returned them."""
    found: dict[str, list[dict[str, Any]]] = {}
    for node in workflow["status"]["nodes"].values():
        if node.get("type") == "Pod" and "job" in _inputs(node):
            found.setdefault(_inputs(node)["job"], []).append(node)
    return found


def test_the_workflow_has_one_node_per_job_named_namespace_job_under_its_wave(
    argo_server: ArgoServer, failed_run: Run
) -> None:
    workflow = argo_server.workflow(failed_run.name)
    nodes = workflow["status"]["nodes"]
    ran = {key: wave for key, wave in failed_run.jobs.items() if key != failed_run.not_run}
    pods = _job_pods(workflow)
    assert sorted(pods) == sorted(ran)
    for key, wave in ran.items():
        (node,) = pods[key]  # one node (one bridge run) per job
        assert key in node["displayName"], node["displayName"]
        assert node["templateName"] == "bridge"
        # Under the `wave` node of its own wave, itself under a `waves-pN` level.
        parent = nodes[node["boundaryID"]]
        assert (parent["displayName"], _inputs(parent).get("wave")) == ("wave", str(wave))
        assert nodes[parent["boundaryID"]]["templateName"].startswith("waves-p"), parent
    # Every job of a wave hangs from that wave's one node.
    index, notify = (k for k in ran if ran[k] == 0)
    assert pods[index][0]["boundaryID"] == pods[notify][0]["boundaryID"]


def test_the_log_endpoint_returns_each_jobs_own_lines(
    argo_server: ArgoServer, argo_install: ArgoCluster, failed_run: Run
) -> None:
    workflow = argo_server.workflow(failed_run.name)
    existing = {p["metadata"]["name"] for p in argo_install.pods(NAMESPACE)}
    for key, node in ((k, nodes[0]) for k, nodes in _job_pods(workflow).items()):
        pod = argo_pod_name(workflow, node)  # the name tenantctl status prints
        assert pod in existing, f"{pod} is not a pod of {failed_run.name}: {sorted(existing)}"
        lines = argo_server.log(failed_run.name, pod)
        mine = [line for line in lines if not line.startswith(("bridge: ", "time="))]
        expected = failed_run.lines[key]
        if key == failed_run.failed:
            expected = expected * 2  # backoffLimit 1: two attempts, both logged
        assert [line for line in mine if line in expected] == expected, lines
        job_name = key.split("/")[1]
        assert any(line.startswith(f"bridge: created pod lc-{job_name}-") for line in lines)
        others = {line for k, v in failed_run.lines.items() if k != key for line in v}
        assert not others & set(lines), f"{key}'s log holds another job's lines: {lines}"


def test_a_failed_jobs_node_carries_the_reason_and_the_later_wave_never_ran(
    argo_server: ArgoServer, failed_run: Run
) -> None:
    workflow = argo_server.workflow(failed_run.name)
    (node,) = _job_pods(workflow)[failed_run.failed]
    assert node["phase"] == "Failed"
    assert node["message"] == "main: Error (exit code 3)"
    assert node["outputs"]["exitCode"] == "3"
    (result,) = [p for p in node["outputs"]["parameters"] if p["name"] == "result"]
    data = json.loads(result["value"])
    assert (data["status"], data["exitCode"]) == ("failed", 3)
    assert data["reason"] == "BackoffLimitExceeded"
    assert "failed 2 time(s) (backoffLimit 1)" in data["message"], data
    # The bridge's own last lines say the same in its log.
    log = argo_server.log(failed_run.name, argo_pod_name(workflow, node))
    assert any(line.startswith("bridge: failed: BackoffLimitExceeded: ") for line in log), log

    # Wave 1 is in the plan, but nothing ran for it: no node names its job or its wave.
    (plan,) = [p for p in workflow["status"]["outputs"]["parameters"] if p["name"] == "plan"]
    planned = {w["wave"]: [f"{j['namespace']}/{j['name']}" for j in w["jobs"]]
               for w in json.loads(plan["value"])["waves"]}  # fmt: skip
    assert planned[1] == [failed_run.not_run]
    nodes = workflow["status"]["nodes"].values()
    assert not [n for n in nodes if _inputs(n).get("job") == failed_run.not_run]
    assert not [n for n in nodes if n["displayName"] == "wave" and _inputs(n)["wave"] == "1"]
    assert workflow["status"]["phase"] == "Failed"
    assert workflow["status"]["message"].startswith("child '")


def test_the_list_filters_by_tenant_and_by_operation(
    argo_server: ArgoServer, argo_install: ArgoCluster, failed_run: Run
) -> None:
    # Another workflow of the same tenant, with another operation (an empty plan: quick).
    other_operation = f"e2e-{uuid.uuid4().hex[:6]}.nothing"
    other = argo_install.submit(operation=other_operation, tenant=failed_run.tenant)
    argo_install.wait(other)

    def names(selector: str) -> set[str]:
        return {w["metadata"]["name"] for w in argo_server.workflows(selector)}

    tenant = f"tenant-lifecycle.dev/tenant={failed_run.tenant}"
    operation = f"tenant-lifecycle.dev/operation={failed_run.operation}"
    assert names(tenant) == {failed_run.name, other}
    assert names(operation) == {failed_run.name}
    assert names(f"tenant-lifecycle.dev/operation={other_operation}") == {other}
    assert names(f"{tenant},{operation}") == {failed_run.name}
    assert names(f"tenant-lifecycle.dev/batch={failed_run.batch}") == {failed_run.name}
    assert names("tenant-lifecycle.dev/tenant=t-nobody-has-this") == set()


def test_the_template_is_listed_and_the_uis_submit_runs_a_workflow_from_it(
    argo_server: ArgoServer, argo_install: ArgoCluster
) -> None:
    assert "tenant-lifecycle" in {t["metadata"]["name"] for t in argo_server.templates()}
    tag = uuid.uuid4().hex[:6]
    parameters = {"operation": f"e2e-{tag}.nothing", "tenant-env-id": f"t-ui-{tag}",
                  "batch-operation-id": f"b-ui-{tag}"}  # fmt: skip
    # As the account deploy/base ships for submitters (tenant-lifecycle-orchestrator).
    submitted = argo_server.submit(parameters, as_="submitter")
    spec = submitted["spec"]
    assert spec["workflowTemplateRef"] == {"name": "tenant-lifecycle"}
    assert set(spec) == {"workflowTemplateRef", "arguments"}, spec
    done = argo_install.wait(submitted["metadata"]["name"])
    assert done["status"]["phase"] == "Succeeded", done["status"]
    labels = argo_server.workflow(submitted["metadata"]["name"])["metadata"]["labels"]
    assert labels["tenant-lifecycle.dev/tenant"] == f"t-ui-{tag}"
    assert labels["tenant-lifecycle.dev/operation"] == f"e2e-{tag}.nothing"
    assert labels["workflows.argoproj.io/creator"].endswith("tenant-lifecycle-orchestrator")


def test_a_workflow_that_does_not_reference_the_template_is_refused(
    argo_server: ArgoServer, argo_install: ArgoCluster
) -> None:
    inline = {
        "metadata": {"generateName": "inline-"},
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main",
                           "container": {"image": "busybox:1.36", "command": ["true"]}}],
        },
    }  # fmt: skip
    # argo-server accepts it (RBAC lets this account create Workflows); the controller, under
    # templateReferencing: Strict, refuses to run it, and the UI shows why.
    created = argo_server.create(inline, as_="submitter")
    name = created["metadata"]["name"]
    argo_install.wait(name, timeout=60)
    status = argo_server.workflow(name)["status"]
    assert status["phase"] == "Error", status
    assert status["message"] == (
        "workflows must use workflowTemplateRef to be executed when the controller is in "
        "reference mode"
    )
    assert not status.get("nodes"), "nothing of it ran"


def test_argo_server_lets_the_api_servers_rbac_judge_each_callers_token(
    argo_server: ArgoServer, failed_run: Run
) -> None:
    # An account bound to nothing: refused, naming what it may not do.
    with pytest.raises(ArgoServerError) as listed:
        argo_server.workflows("tenant-lifecycle.dev/tenant=x", as_="nobody")
    assert listed.value.status == 403
    assert "not allowed to list workflows" in listed.value.message
    with pytest.raises(ArgoServerError) as got:
        argo_server.workflow(failed_run.name, as_="nobody")
    assert got.value.status == 403
    assert "cannot get resource" in got.value.message
    # The read-only operator reads everything above, and cannot submit.
    with pytest.raises(ArgoServerError) as submitted:
        argo_server.submit({"operation": "x.y", "tenant-env-id": "t", "batch-operation-id": "b"},
                           as_="operator")  # fmt: skip
    assert submitted.value.status == 403
    assert 'cannot create resource "workflows"' in submitted.value.message
    # No token at all: client auth mode has nothing to act as.
    request = urllib.request.Request(f"{argo_server.url}/api/v1/workflows/{NAMESPACE}")
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(request, timeout=30, context=insecure_tls())
    with anonymous.value:
        assert anonymous.value.code == 401


def test_tenantctl_status_points_at_the_failed_jobs_node_log_and_ui_link(
    argo_server: ArgoServer, argo_install: ArgoCluster, failed_run: Run
) -> None:
    tenantctl = str(Path(sys.executable).with_name("tenantctl"))
    env = {**os.environ, "KUBECONFIG": str(argo_install.plane.kubeconfig),
           "TENANTCTL_ARGO_UI_URL": argo_server.url}  # fmt: skip
    done = subprocess.run([tenantctl, "status", failed_run.batch], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"failed:    {failed_run.failed} (wave 0): BackoffLimitExceeded, exit code 3" in lines
    (logs,) = [line.split(": ", 1)[1].strip() for line in lines if line.startswith("its log:")]
    # The exact command, run with the real CLI, prints that job's own lines.
    argv = logs.split()
    assert argv[:4] == ["argo", "-n", NAMESPACE, "logs"], logs
    printed = argo_install.argo(*argv[3:], "--no-color")
    for line in failed_run.lines[failed_run.failed]:
        assert printed.count(line) == 2, printed
    # The UI link selects the failed job's node, which the API knows under that id.
    (link,) = [line.split(": ", 1)[1].strip() for line in lines if line.startswith("in the UI:")]
    url = urllib.parse.urlsplit(link)
    assert url.path == f"/workflows/{NAMESPACE}/{failed_run.name}"
    query = urllib.parse.parse_qs(url.query)
    node_id = query["nodeId"][0]
    assert query["sidePanel"] == [f"logs:{node_id}:main"]
    node = argo_server.workflow(failed_run.name)["status"]["nodes"][node_id]
    assert _inputs(node)["job"] == failed_run.failed
    assert f"not run:   {failed_run.not_run} (wave 1, WaveAborted)" in lines


def test_the_operator_role_install_md_shows_is_the_one_deploy_base_ships() -> None:
    text = INSTALL_GUIDE.read_text()
    section = text[text.index("## 11. argo-server and the UI") :]
    section = section[: section.index("\n## ", 1)]
    blocks = section.split("```yaml\n")[1:]
    documents = [d for b in blocks for d in yaml.safe_load_all(b.split("```")[0]) if d]
    (role,) = [d for d in documents if d["kind"] == "Role"]
    (shipped,) = yaml.safe_load_all((REPO / "deploy" / "base" / "rbac-operator.yaml").read_text())
    assert role["metadata"]["name"] == shipped["metadata"]["name"] == "tenant-lifecycle-operator"
    assert role["metadata"]["namespace"] == shipped["metadata"]["namespace"]
    assert role["rules"] == shipped["rules"]
