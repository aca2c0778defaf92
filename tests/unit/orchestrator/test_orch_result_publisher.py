"""The claim -> publish -> mark protocol of ResultPublisher and the tracker's resilience, against
a small fake of the Kubernetes adapter (our own seam)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import pytest

from bridge.errors import ConflictError, NotFoundError, UnavailableError
from orchestrator.argo import tracker as tracker_module
from orchestrator.argo.outcome import build_result
from orchestrator.argo.tracker import ResultPublisher, Tracker
from orchestrator.naming import RESULT_CLAIM_ANNOTATION, RESULT_PUBLISHED_ANNOTATION
from tests.support.bus import FakeBus

from .test_orch_workflow import bridge_result, node, workflow

RESULTS = "results"


class FakeKube:
    """One namespace of Workflows: get, and a merge patch of annotations honouring the
    resourceVersion like the API server (409 on a stale one). ``fail_marks`` makes that many
    patches setting the result-published marker fail as if the API server were unreachable."""

    def __init__(self, *workflows: dict[str, Any]) -> None:
        self.objects = {}
        for wf in workflows:
            wf = copy.deepcopy(wf)
            wf["metadata"]["resourceVersion"] = "1"
            self.objects[wf["metadata"]["name"]] = wf
        self.fail_marks = 0

    def get(self, resource: Any, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        if name not in self.objects:
            raise NotFoundError(f"workflow {name} not found", status=404)
        return copy.deepcopy(self.objects[name])

    def patch(
        self, resource: Any, name: str, patch: Mapping[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        current = self.objects[name]
        metadata = patch.get("metadata") or {}
        expected = metadata.get("resourceVersion")
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            raise ConflictError("the object has been modified", status=409)
        annotations = metadata.get("annotations") or {}
        if annotations.get(RESULT_PUBLISHED_ANNOTATION) and self.fail_marks > 0:
            self.fail_marks -= 1
            raise UnavailableError("cannot reach the Kubernetes API", status=0)
        target = current["metadata"].setdefault("annotations", {})
        for key, value in annotations.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        current["metadata"]["resourceVersion"] = str(
            int(current["metadata"]["resourceVersion"]) + 1
        )
        return copy.deepcopy(current)


def finished_workflow() -> dict[str, Any]:
    return workflow(
        {"n1": node("bridge", job="team-a/schema", result=bridge_result("team-a", "schema"))}
    )


def test_a_failed_mark_after_a_publish_does_not_publish_the_result_again() -> None:
    kube, bus = FakeKube(finished_workflow()), FakeBus()
    kube.fail_marks = 1
    publisher = ResultPublisher(
        kube,  # type: ignore[arg-type]
        bus,
        namespace="argo",
        topic=RESULTS,
        owner="listener-1",
    )
    with pytest.raises(UnavailableError):  # the tracker logs it and looks again later
        publisher.publish("lc-b1")
    outcome = publisher.publish("lc-b1")
    assert len(bus.published[RESULTS]) == 1
    assert outcome.status == "published"
    annotations = kube.objects["lc-b1"]["metadata"]["annotations"]
    assert annotations.get(RESULT_PUBLISHED_ANNOTATION)
    assert RESULT_CLAIM_ANNOTATION not in annotations
    assert publisher.publish("lc-b1").status == "already-published"
    assert len(bus.published[RESULTS]) == 1


class _EmptyWatch:
    def __init__(self, tracker: Tracker) -> None:
        self.resource_version = "9"
        tracker.stop()  # one catch-up, then the loop ends

    def __iter__(self) -> Any:
        return iter(())

    def close(self) -> None:
        pass


class ListingKube(FakeKube):
    tracker: Tracker

    def list_with_version(self, resource: Any, **_: Any) -> tuple[list[dict[str, Any]], str]:
        return [copy.deepcopy(wf) for wf in self.objects.values()], "5"

    def watch(self, resource: Any, **_: Any) -> _EmptyWatch:
        return _EmptyWatch(self.tracker)


def malformed_plan_workflow() -> dict[str, Any]:
    """A Workflow whose discovery output has a wave that is not a number."""
    plan = json.dumps({"waves": [{"wave": "first", "jobs": [{"namespace": "a", "name": "b"}]}]})
    wf = workflow(
        {
            "d": {
                "displayName": "discover",
                "outputs": {"parameters": [{"name": "plan", "value": plan}]},
            },
            "n1": node("bridge", job="team-a/schema", result=bridge_result("team-a", "schema")),
        }
    )
    wf["metadata"]["name"] = "lc-bad"
    return wf


def test_a_malformed_plan_output_does_not_stop_the_result() -> None:
    event = build_result(malformed_plan_workflow())
    assert [job["job"] for job in event["data"]["jobs"]] == ["schema"]


def test_one_workflow_that_breaks_the_result_builder_does_not_stop_the_tracker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = finished_workflow()
    bad = copy.deepcopy(good)
    bad["metadata"]["name"] = "lc-bug"
    kube, bus = ListingKube(bad, good), FakeBus()
    publisher = ResultPublisher(
        kube,  # type: ignore[arg-type]
        bus,
        namespace="argo",
        topic=RESULTS,
        owner="listener-1",
    )
    real_build = tracker_module.build_result

    def build(wf: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        if wf["metadata"]["name"] == "lc-bug":
            raise TypeError("a bug in the result builder")
        return real_build(wf, **kwargs)

    monkeypatch.setattr(tracker_module, "build_result", build)
    tracker = Tracker(kube, publisher, namespace="argo")  # type: ignore[arg-type]
    kube.tracker = tracker
    tracker.run()
    assert [m.attributes["workflow"] for m in bus.published[RESULTS]] == ["lc-b1"]
    # the broken one holds no claim that would make the exit handler wait for it
    assert RESULT_CLAIM_ANNOTATION not in kube.objects["lc-bug"]["metadata"].get("annotations", {})
