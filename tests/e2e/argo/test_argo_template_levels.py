"""The template's parallelism levels and its infrastructure retry, on the real Argo controller.

What ``workflows/emulator.py`` once interpreted, now run by Argo v4.1.4 itself:

* the ``parallelism`` parameter selects the highest level not above it among 1, 2, 4, 8, 16,
  32: the other levels' ``waves-p<N>`` steps are skipped ("when ... evaluated false"), and never
  more bridges of a wave run at once than the level (from the real nodes' startedAt/finishedAt);
* a bridge's own exit 75 (it could not reach the Kubernetes API) is retried by Argo through the
  template's ``retryStrategy.expression`` until it succeeds, the failed attempt's ``result``
  saying why (``test_argo_lifecycle.py`` shows the other side: a *job's* exit 75 is not
  retried); on the way, the Workflow's labels taken from the parameters (``labelsFrom``).

The bridge is made to fail with its infrastructure code only through what an operator has:
the optional Secret ``tenant-lifecycle-storage``, which the template envFrom's into the bridge
container alone (after the settings ConfigMap, so it wins), pointing the in-cluster API address
at a closed port. Discovery and the exit handler do not read it. The Secret is removed again
in a ``finally``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import pytest

from tests.e2e.argo.test_argo_lifecycle import (
    _tag,
    _wait_for,
    add_team,
    bridge_nodes,
    job_of,
    when,
)
from tests.fixtures.argo_cluster import NAMESPACE, ArgoCluster
from tools.jobs import job
from workflows.settings import WorkflowSettings

SETTINGS = WorkflowSettings()
LEVELS = SETTINGS.parallelism_levels
BRIDGE_ONLY_SECRET = SETTINGS.storage_secret


@pytest.fixture
def team(argo_install: ArgoCluster) -> str:
    name = f"e2e-{_tag()}-lv"
    add_team(argo_install, name)
    return name


def level_nodes(workflow: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The lifecycle's ``waves-p<N>`` steps (the children of its second step group), by name."""
    nodes = (workflow.get("status") or {}).get("nodes") or {}
    found: dict[str, dict[str, Any]] = {}
    for node in nodes.values():
        name = str(node.get("name", ""))
        # "<workflow>[1].waves-p2": the level step itself, not its recursion ("...[0].next").
        if name.count(".") == 1 and name.split(".")[1] in {f"waves-p{n}" for n in LEVELS}:
            found[name.split(".")[1]] = node
    return found


def peak_overlap(spans: Sequence[tuple[datetime, datetime]]) -> int:
    """Most intervals [start, finish) open at one moment (a finish before a start at a tie).

    Argo writes second-resolution times; truncation keeps "B started after A finished" true,
    so a slot handed over within one second is not counted as an overlap.
    """
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


@pytest.mark.parametrize(("requested", "level"), [(3, 2), (50, 32)])
def test_the_parallelism_parameter_selects_the_highest_level_not_above_it(
    argo_install: ArgoCluster, team: str, requested: int, level: int
) -> None:
    cluster = argo_install
    operation = f"e2e-{_tag()}.upsert"
    count = 6
    cluster.apply(
        [job(team, f"j{i}", operation=operation, wave=0, script="echo one; sleep 1")
         for i in range(count)]
    )  # fmt: skip
    name = cluster.submit(operation=operation, parallelism=requested)
    workflow = cluster.wait(name)
    assert workflow["status"]["phase"] == "Succeeded", cluster.argo("get", name)

    levels = level_nodes(workflow)
    assert sorted(levels) == sorted(f"waves-p{n}" for n in LEVELS), sorted(levels)
    ran = {n for n, node in levels.items() if node.get("phase") != "Skipped"}
    assert ran == {f"waves-p{level}"}, {n: levels[n].get("phase") for n in levels}
    assert levels[f"waves-p{level}"]["phase"] == "Succeeded"
    for skipped in set(levels) - ran:
        assert "evaluated false" in levels[skipped].get("message", ""), levels[skipped]
    # The wave's steps ran from the selected level's own templates.
    templates = {
        str(n.get("templateName")) for n in workflow["status"]["nodes"].values()
        if str(n.get("templateName", "")).startswith("wave") and n.get("phase") != "Skipped"
    }  # fmt: skip
    assert templates == {f"waves-p{level}", f"wave-p{level}"}, templates

    nodes = bridge_nodes(workflow)
    assert sorted(job_of(n) for n in nodes) == sorted(f"{team}/j{i}" for i in range(count))
    peak = peak_overlap([(when(n["startedAt"]), when(n["finishedAt"])) for n in nodes])
    assert peak <= level, f"{peak} bridges at once under level {level}"
    if level < count:
        # The level is the limit, not just an upper bound nobody reached: it ran that many.
        assert peak == level, f"only {peak} bridges at once under level {level}"
    else:
        assert peak > 2, f"only {peak} bridges at once under level {level}"


@pytest.fixture
def bridge_cannot_reach_the_api(argo_install: ArgoCluster) -> Iterator[None]:
    """The bridge-only Secret pointing the in-cluster API address at a closed port.

    ``KUBERNETES_SERVICE_PORT`` from envFrom overrides the kubelet's service variable (the node
    agent resolves them as the kubelet does), so the bridge's every API call is refused and,
    without its own retries (``BRIDGE_MAX_RETRIES=0``), it exits 75 at once.
    """
    cluster = argo_install
    before = cluster.kubectl(
        "-n", NAMESPACE, "get", "secret", BRIDGE_ONLY_SECRET, "-o", "json", "--ignore-not-found"
    ).strip()
    broken = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": BRIDGE_ONLY_SECRET, "namespace": NAMESPACE},
        "stringData": {
            "KUBERNETES_SERVICE_PORT": "1",
            "KUBERNETES_SERVICE_PORT_HTTPS": "1",
            "BRIDGE_MAX_RETRIES": "0",
        },
    }
    cluster.apply([broken])
    try:
        yield
    finally:
        cluster.kubectl(
            "-n", NAMESPACE, "delete", "secret", BRIDGE_ONLY_SECRET, "--ignore-not-found"
        )
        if before:
            original = json.loads(before)
            for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
                original["metadata"].pop(key, None)
            cluster.apply([original])


def test_a_bridge_infrastructure_exit_75_is_retried_by_argo_until_it_succeeds(
    argo_install: ArgoCluster, team: str, bridge_cannot_reach_the_api: None
) -> None:
    cluster = argo_install
    operation = f"e2e-{_tag()}.upsert"
    cluster.apply([job(team, "once", operation=operation, wave=0,
                       script='echo "job ran for $LIFECYCLE_TENANT_ENV_ID"')])  # fmt: skip
    batch = f"b-{_tag()}"
    name = cluster.submit(operation=operation, tenant="t-retry", batch=batch)

    def first_attempt_failed() -> dict[str, Any] | None:
        workflow = cluster.workflow(name)
        phase = (workflow.get("status") or {}).get("phase")
        assert phase not in ("Failed", "Error"), cluster.argo("get", name, check=False)
        done = [n for n in bridge_nodes(workflow) if n.get("phase") in ("Failed", "Error")]
        return done[0] if done else None

    first = _wait_for(first_attempt_failed, "a bridge attempt to fail", timeout=180)
    # The API is reachable again before Argo's retry backoff (15 s) is over.
    cluster.kubectl("-n", NAMESPACE, "delete", "secret", BRIDGE_ONLY_SECRET)

    workflow = cluster.wait(name)
    assert workflow["status"]["phase"] == "Succeeded", cluster.argo("get", name)
    # The labels a run is found by, set by the controller from the parameters (labelsFrom).
    labels = workflow["metadata"]["labels"]
    keys = ("tenant", "operation", "batch")
    assert [labels.get(f"tenant-lifecycle.dev/{k}") for k in keys] == ["t-retry", operation, batch]

    attempts = sorted(bridge_nodes(workflow), key=lambda n: when(n["startedAt"]))
    assert attempts[0]["id"] == first["id"], [n["displayName"] for n in attempts]
    assert len(attempts) >= 2, [n["displayName"] for n in attempts]
    assert {job_of(n) for n in attempts} == {f"{team}/once"}
    assert [n["outputs"].get("exitCode") for n in attempts[:-1]] == ["75"] * (len(attempts) - 1)
    assert (attempts[-1]["phase"], attempts[-1]["outputs"].get("exitCode")) == ("Succeeded", "0")
    # Argo waited its backoff between the attempts (the template's retry, not a restart).
    assert when(attempts[1]["startedAt"]) >= when(attempts[0]["finishedAt"])
    # The failed attempt's own result says why: the API could not be reached.
    (output,) = [p for p in attempts[0]["outputs"]["parameters"] if p["name"] == "result"]
    failed = json.loads(output["value"])
    fields = ("namespace", "job", "status", "reason", "exitCode")
    assert [failed[f] for f in fields] == [team, "once", "error", "APIUnavailable", 75], failed

    events = cluster.results(batch)
    assert len(events) == 1, events
    (only,) = events[0]["data"]["jobs"]
    assert (only["namespace"], only["job"], only["status"]) == (team, "once", "succeeded"), only
    # The job itself ran once: the failed attempts never reached the API to create its pod.
    assert cluster.argo("logs", name).count("job ran for t-retry") == 1
