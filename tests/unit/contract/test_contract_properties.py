"""Properties: check_job never raises on arbitrary annotation values, every rejection explains
itself, and plans are deterministic and wave-ordered whatever the input order."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.contract import DEFAULT_PREFIX, ContractSettings, Participant, check_job
from bridge.planner import build_plan

from .helpers import make_job

S = ContractSettings()
KEYS = ["operations", "wave", "applications", "delete-policy", "on-failure", "wav", "enabled"]
# Annotation-ish text: commas, dots, dashes, spaces and letters are where the parser's edges are.
texts = st.text(alphabet=st.sampled_from("abcXYZ019.,- \t_/é"), max_size=30) | st.text(max_size=20)
values = texts | st.integers() | st.booleans() | st.none() | st.lists(st.integers(), max_size=3)


@settings(max_examples=100, deadline=None)
@given(
    annotations=st.dictionaries(
        st.sampled_from(KEYS).map(lambda k: f"{DEFAULT_PREFIX}/{k}"), values, max_size=5
    ),
    label=st.none() | values,
    suspend=st.sampled_from([True, False, None, "true", 1]),
)
def test_check_job_never_raises_and_explains_rejections(
    annotations: dict[str, Any], label: Any, suspend: Any
) -> None:
    job = make_job(operations=None, label=None, annotations=annotations, suspend=suspend)
    if label is not None:
        job["metadata"]["labels"][f"{DEFAULT_PREFIX}/enabled"] = label
    participant, problems = check_job(job, settings=S, source="prop.yaml:1")
    if participant is None:
        for problem in problems:
            assert problem.message.strip()
            assert problem.fix.strip()
            assert problem.field
            assert str(problem).startswith("prop.yaml:1: Job team-a/schema: ")
    else:
        assert problems == []
        assert participant.operations
        assert -1000 <= participant.wave <= 1000


jobs_strategy = st.lists(
    st.builds(
        lambda ns, name, wave: Participant(ns, name, ("lifecycle.upsert",), wave=wave),
        st.sampled_from(["team-a", "team-b", "team-c"]),
        st.text(alphabet="abcdef", min_size=1, max_size=4),
        st.integers(-3, 3),
    ),
    max_size=25,
    unique_by=lambda p: p.key,
)


@settings(max_examples=50, deadline=None)
@given(jobs=jobs_strategy, seed=st.randoms(use_true_random=False))
def test_plans_are_deterministic_and_ordered(jobs: list[Participant], seed: Any) -> None:
    plan = build_plan(jobs, operation="lifecycle.upsert")
    shuffled = list(jobs)
    seed.shuffle(shuffled)
    assert build_plan(shuffled, operation="lifecycle.upsert").to_compact_json() == (
        plan.to_compact_json()
    )
    waves = [w.wave for w in plan.waves]
    assert waves == sorted(set(waves))
    for wave in plan.waves:
        order = [(j.namespace, j.name) for j in wave.jobs]
        assert order == sorted(order)
        assert all(j.wave == wave.wave for j in wave.jobs)
    assert plan.job_count == len(jobs)


yaml_ish = st.lists(
    st.sampled_from(
        [
            "apiVersion: batch/v1\n",
            "kind: Job\n",
            "kind: List\nitems:\n",
            "- kind: Job\n",
            "metadata:\n",
            "  name: x\n",
            "  labels: {tenant-lifecycle.dev/enabled: 'true'}\n",
            "  annotations: {tenant-lifecycle.dev/operations: a.b}\n",
            "spec: {suspend: true}\n",
            "spec: [1, 2\n",
            "---\n",
            "  - &a [*a]\n",
            ": :\n",
            "\t\n",
            "'unterminated\n",
        ]
    )
    | st.text(max_size=12),
    max_size=12,
).map("".join)


@settings(max_examples=20, deadline=None)
@given(text=yaml_ish)
def test_loading_any_text_never_raises(text: str) -> None:
    import tempfile
    from pathlib import Path

    from bridge.manifests import check_manifests

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "any.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        report = check_manifests([path], settings=S)
    for problem in report.problems:
        assert problem.message
        assert problem.source.startswith(str(path))
