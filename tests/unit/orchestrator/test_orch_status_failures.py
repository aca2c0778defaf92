"""``tenantctl status`` and ``tenantctl history`` tell the operator the failing job, its reason,
the exact ``argo logs`` / ``argo get`` commands for it and, when an Argo UI URL is configured,
the link to its node.

``argo_failed_workflow.json`` is a Workflow as the real v4.1.4 controller wrote it (trimmed to
the fields read here): wave -1 succeeded, in wave 0 ``team-search/search-index`` failed both
attempts (``backoffLimit: 1``) beside ``team-billing/billing-notify`` (``on-failure:
continue``), so wave 1's ``team-catalog/catalog-warm`` never ran. ``argo get`` printed the pod
names in :data:`ARGO_GET_PODS` for it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import bridge.kube
from bridge.errors import NotFoundError
from orchestrator.cli import main
from orchestrator.cli.commands.history import failure_lines
from orchestrator.cli.commands.status import argo_pod_name, status_document, ui_link
from orchestrator.history import HistoryRecord, open_store

WORKFLOW: dict[str, Any] = json.loads(
    (Path(__file__).with_name("argo_failed_workflow.json")).read_text()
)
NAME = "tenant-lifecycle-5mvp8"
BATCH = "b-20261126-0312"
FAILED_NODE = f"{NAME}-926918301"
# node id -> PODNAME, from `argo get` of this Workflow (the real CLI).
ARGO_GET_PODS = {
    f"{NAME}-3781524802": f"{NAME}-discover-3781524802",
    f"{NAME}-3400789712": f"{NAME}-bridge-3400789712",
    f"{NAME}-926918301": f"{NAME}-bridge-926918301",
    f"{NAME}-600122589": f"{NAME}-bridge-600122589",
    f"{NAME}-499824083": f"{NAME}-publish-result-499824083",
}
LOGS = f"argo -n tenant-lifecycle logs {NAME} {NAME}-bridge-926918301"
UI = "https://argo.example.com"


class FakeKube:
    """``status``'s reads: the Workflow is not named lc-<batch> (``argo submit`` generated its
    name), so status finds it by the batch label."""

    workflow: dict[str, Any] = WORKFLOW

    def __init__(self, **_: Any) -> None:
        pass

    def __enter__(self) -> FakeKube:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def get(self, resource: Any, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        raise NotFoundError(f"workflows {name!r} not found")

    def list(self, resource: Any, *, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        assert (resource.plural, namespace) == ("workflows", "tenant-lifecycle")
        assert label_selector == f"tenant-lifecycle.dev/batch={self.workflow_batch()}"
        return [self.workflow]

    def workflow_batch(self) -> str:
        return str(self.workflow["metadata"]["labels"]["tenant-lifecycle.dev/batch"])


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeKube]]:
    monkeypatch.setattr(bridge.kube, "Kube", FakeKube)
    for name in ("TENANTCTL_WORKFLOW_NAMESPACE", "TENANTCTL_ARGO_UI_URL"):
        monkeypatch.delenv(name, raising=False)
    yield FakeKube
    FakeKube.workflow = WORKFLOW


def _status(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["status", *args], env=env, terminal_width=200)


def test_status_names_the_failed_job_its_reason_and_the_argo_logs_command(
    kube: type[FakeKube],
) -> None:
    done = _status(BATCH)
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    at = lines.index("failed:    team-search/search-index (wave 0): BackoffLimitExceeded, "
                     "exit code 3")  # fmt: skip
    assert lines[at + 1].strip() == (
        "team-search/search-index failed 2 time(s) (backoffLimit 1); "
        "last: lc-search-index-a6a9145859-2 Error exit code 3"
    )
    assert lines[at + 2] == f"its log:   {LOGS}"
    assert "not run:   team-catalog/catalog-warm (wave 1, WaveAborted)" in lines
    assert f"all nodes: argo -n tenant-lifecycle get {NAME}" in lines
    # No UI URL configured: no link, nowhere.
    assert "http" not in done.output


def test_the_pod_in_the_command_is_the_one_argo_get_shows_for_each_node() -> None:
    nodes = WORKFLOW["status"]["nodes"]
    assert {i: argo_pod_name(WORKFLOW, nodes[i]) for i in ARGO_GET_PODS} == ARGO_GET_PODS


def _fnv32a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def test_pod_names_follow_argos_rules_for_long_names_odd_ids_and_v1() -> None:
    """The cases of Argo's own TestPodNameV2 (workflow/util/pod_name_v2_test.go)."""
    assert (_fnv32a(""), _fnv32a("a")) == (0x811C9DC5, 0xE40C292C)  # FNV-1a test vectors

    def pod(workflow: str, node_name: str, template: str, node_id: str, **ann: str) -> str:
        wf = {"metadata": {"name": workflow, "annotations": ann}}
        node = {"id": node_id, "name": node_name, "templateName": template}
        return argo_pod_name(wf, node)

    hashed = _fnv32a("nodename")
    assert pod("wfname", "nodename", "templatename", f"wfname-{hashed}") == (
        f"wfname-templatename-{hashed}"
    )
    long_wf, long_template = "w" * 120, "t" * 150
    expected = f"{(long_wf + '-' + long_template)[:242]}-{hashed}"
    assert pod(long_wf, "nodename", long_template, f"{long_wf}-{hashed}") == expected
    # An id that is not <workflow>-<hash>: the node name's hash.
    assert pod(long_wf, "nodename", long_template, "unrelated") == expected
    # No template (an inline step): <workflow>-<hash>.
    assert pod("wfname", "stp.inline", "", f"wfname-{_fnv32a('stp.inline')}") == (
        f"wfname-{_fnv32a('stp.inline')}"
    )
    # A widened 64-bit id after a collision keeps its whole hash; the prefix gives way.
    wide = f"{long_wf}-18446744073709551557"
    name = pod(long_wf, "nodename", long_template, wide)
    assert name.endswith("-18446744073709551557")
    assert len(name) <= 253
    # The Workflow's pod-name-format annotation v1: the pod is named by the node id.
    v1 = {"workflows.argoproj.io/pod-name-format": "v1"}
    assert pod("wfname", "nodename", "t", "wfname-1", **v1) == "wfname-1"


def test_a_configured_ui_url_links_the_workflow_and_the_failed_jobs_log_panel(
    kube: type[FakeKube],
) -> None:
    by_env = _status(BATCH, env={"TENANTCTL_ARGO_UI_URL": UI + "/"})
    by_flag = _status(BATCH, "--argo-ui-url", UI)
    assert by_env.output == by_flag.output
    lines = by_flag.output.splitlines()
    page = f"{UI}/workflows/tenant-lifecycle/{NAME}"
    link = f"{page}?nodeId={FAILED_NODE}&sidePanel=logs:{FAILED_NODE}:main"
    assert lines[lines.index(f"its log:   {LOGS}") + 1] == f"in the UI: {link}"
    assert lines[-1] == f"Argo UI:   {page}"
    assert ui_link(UI, "tenant-lifecycle", NAME) == page


def test_the_json_document_carries_the_same_pointers(kube: type[FakeKube]) -> None:
    done = _status(BATCH, "-o", "json", "--argo-ui-url", UI)
    assert done.exit_code == 0, done.output
    argo = json.loads(done.output)["argo"]
    assert argo["get"] == f"argo -n tenant-lifecycle get {NAME}"
    assert argo["url"] == f"{UI}/workflows/tenant-lifecycle/{NAME}"
    (failed,) = argo["failedJobs"]
    assert failed == {
        "job": "team-search/search-index",
        "wave": 0,
        "status": "failed",
        "exitCode": 3,
        "reason": "BackoffLimitExceeded",
        "message": "team-search/search-index failed 2 time(s) (backoffLimit 1); "
        "last: lc-search-index-a6a9145859-2 Error exit code 3",
        "node": FAILED_NODE,
        "pod": f"{NAME}-bridge-926918301",
        "logs": LOGS,
        "url": f"{UI}/workflows/tenant-lifecycle/{NAME}?nodeId={FAILED_NODE}"
        f"&sidePanel=logs:{FAILED_NODE}:main",
    }
    assert argo["notRun"] == [
        {"job": "team-catalog/catalog-warm", "wave": 1, "reason": "WaveAborted"}
    ]
    assert argo["failedSteps"] == []


def test_a_failed_discovery_is_named_with_its_log_command(kube: type[FakeKube]) -> None:
    workflow = copy.deepcopy(WORKFLOW)
    nodes = workflow["status"]["nodes"]
    discover = nodes[f"{NAME}-3781524802"]
    discover.update(phase="Failed", message="main: Error (exit code 1)")
    for node_id in [i for i, n in nodes.items() if n.get("templateName") == "bridge"]:
        del nodes[node_id]
    for node in nodes.values():
        for p in (node.get("outputs") or {}).get("parameters") or []:
            if p["name"] == "plan":
                p["value"] = ""
    kube.workflow = workflow
    lines = _status(BATCH).output.splitlines()
    at = lines.index("failed:    step discover: main: Error (exit code 1)")
    assert lines[at + 1] == (
        f"its log:   argo -n tenant-lifecycle logs {NAME} {NAME}-discover-3781524802"
    )


def test_a_succeeded_run_offers_the_commands_for_all_its_nodes_and_logs(
    kube: type[FakeKube],
) -> None:
    workflow = copy.deepcopy(WORKFLOW)
    workflow["status"].update(phase="Succeeded", message=None)
    nodes = workflow["status"]["nodes"]
    failed = nodes[FAILED_NODE]
    failed["phase"] = "Succeeded"
    result = next(p for p in failed["outputs"]["parameters"] if p["name"] == "result")
    result["value"] = json.dumps({**json.loads(result["value"]), "status": "succeeded",
                                  "exitCode": 0, "reason": "Completed"})  # fmt: skip
    kube.workflow = workflow
    doc = status_document(workflow)
    assert doc["argo"]["failedJobs"] == []
    lines = _status(BATCH).output.splitlines()
    assert not [line for line in lines if line.startswith(("failed:", "its log:"))]
    assert f"all logs:  argo -n tenant-lifecycle logs {NAME}" in lines


# --------------------------------------------------------------------------------------------
# tenantctl history
# --------------------------------------------------------------------------------------------

FAILED_JOB: dict[str, Any] = {
    "namespace": "team-search",
    "job": "search-index",
    "wave": 0,
    "status": "failed",
    "exitCode": 3,
    "reason": "BackoffLimitExceeded",
    "message": "team-search/search-index failed 2 time(s) (backoffLimit 1); last: "
    "lc-search-index-a6a9145859-2 Error exit code 3",
    "attempts": [
        {"attempt": 1, "pod": "lc-search-index-a6a9145859-1", "exitCode": 3},
        {"attempt": 2, "pod": "lc-search-index-a6a9145859-2", "exitCode": 3},
    ],
}
OK_JOB: dict[str, Any] = {
    "namespace": "team-catalog",
    "job": "catalog-schema",
    "status": "succeeded",
}


def _fill(url: str) -> None:
    store = open_store(url)
    try:
        runs: list[tuple[str, str, list[dict[str, Any]]]] = [
            ("b-argo", "lc-b-argo", [OK_JOB, FAILED_JOB]),  # submitted to Argo
            ("b-local", "b-local", [FAILED_JOB]),  # the local engine records the batch id
            ("b-ok", "lc-b-ok", [OK_JOB]),
        ]
        for minute, (batch, workflow, jobs) in enumerate(runs):
            at = datetime(2026, 11, 26, 3, 59 - minute, tzinfo=UTC)  # newest first
            store.record_request(batch, tenant="t-42", operation="lifecycle.upsert",
                                 requested_at=at)  # fmt: skip
            store.record_submitted(batch, workflow=workflow, at=at)
            store.record_started(batch, at=at)
            outcome = "succeeded" if jobs == [OK_JOB] else "failed"
            store.record_finished(batch, outcome, jobs, message="m", at=at)
    finally:
        store.close()


def test_history_names_each_failed_operations_job_reason_and_where_to_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TENANTCTL_WORKFLOW_NAMESPACE", raising=False)
    url = f"sqlite:///{tmp_path / 'history.db'}"
    _fill(url)
    done = CliRunner().invoke(main, ["history", "--store", url],
                              env={"TENANTCTL_ARGO_UI_URL": UI})  # fmt: skip
    assert done.exit_code == 0, done.output
    # The table on stdout is unchanged: one line per record.
    assert len(done.stdout.splitlines()) == 4
    hints = done.stderr
    argo = hints[hints.index("failed b-argo:") : hints.index("failed b-local:")]
    assert argo.splitlines() == [
        "failed b-argo: lifecycle.upsert for tenant t-42",
        "  team-search/search-index (wave 0): BackoffLimitExceeded, exit code 3",
        f"    {FAILED_JOB['message']}",
        "    last attempt's log: kubectl -n team-search logs lc-search-index-a6a9145859-2",
        "  its nodes and logs: tenantctl status b-argo; argo -n tenant-lifecycle get lc-b-argo",
        f"  Argo UI: {UI}/workflows/tenant-lifecycle/lc-b-argo",
        "",
    ]
    assert hints.index("failed b-argo:") < hints.index("failed b-local:")
    local = hints[hints.index("failed b-local:") :]
    assert "kubectl -n team-search logs lc-search-index-a6a9145859-2" in local
    assert "argo" not in local.replace("for tenant", "")  # a local run has no Workflow
    assert "b-ok" not in hints


def test_history_hints_without_a_ui_url_have_no_link() -> None:
    record = HistoryRecord(
        batch_id="b-1", tenant="t", operation="lifecycle.backup",
        requested_at=datetime(2026, 11, 26, tzinfo=UTC), outcome="failed",
        message="discovery failed", workflow="lc-b-1",
    )  # fmt: skip
    assert failure_lines([record], namespace="ns") == [
        "",
        "failed b-1: lifecycle.backup for tenant t",
        "  discovery failed",
        "  its nodes and logs: tenantctl status b-1; argo -n ns get lc-b-1",
    ]
