"""docs/operator-guide.md is generated (``python -m tools.operator_guide``) and must keep
matching what the code prints.

* Without a cluster: the committed guide is exactly the template (``tools/operator-guide.in.md``)
  with captured outputs in its ``{{capture:…}}`` places: nobody edited the generated text, and
  the template was not changed without regenerating.
* On the real cluster (``argo_install``): the guide's scenario runs again under this test's own
  names, every capture is taken again the way the generator takes it, and each must equal the
  committed one once what varies between runs (names, times, durations, Argo's hashes, column
  padding, the executor's own log lines) is normalized. In particular the guide's promise holds:
  ``tenantctl status`` names the failing job, its reason and a log command, and that command
  prints the job's log.
"""

from __future__ import annotations

import difflib
import uuid

import pytest

from tests.fixtures.argo_cluster import ArgoCluster
from tools.operator_guide import (
    GUIDE,
    HEADER,
    REGENERATE,
    Capture,
    Cluster,
    Scenario,
    capture_names,
    normalize,
    parse,
    render,
)

STALE = f"docs/operator-guide.md is stale: regenerate it with `{REGENERATE}`"


def _committed() -> dict[str, Capture]:
    captures = parse(GUIDE.read_text())
    assert captures is not None, (
        f"docs/operator-guide.md is not tools/operator-guide.in.md with captured outputs: edit "
        f"the template, not the guide, and regenerate it with `{REGENERATE}`"
    )
    return captures


def test_the_committed_guide_is_the_template_with_captured_outputs() -> None:
    text = GUIDE.read_text()
    assert text.startswith(HEADER), "the guide lost its 'generated — do not edit' header"
    captures = _committed()
    assert list(captures) == capture_names()
    assert render(captures) == text
    # The promise of the guide: two commands, the second printed by the first.
    status = captures["status"].output
    (logs,) = [line.split(":", 1)[1].strip() for line in status.splitlines()
               if line.startswith("its log:")]  # fmt: skip
    assert captures["logs"].shown == logs
    assert "failed:    team-search/search-index (wave 0): BackoffLimitExceeded" in status
    assert "bridge: failed: BackoffLimitExceeded" in captures["logs"].output


def _shown(capture: Capture) -> str:
    return f"$ {capture.shown}\n{capture.output}"


def test_the_guides_outputs_are_what_the_code_prints_on_the_real_cluster(
    argo_install: ArgoCluster,
) -> None:
    committed = _committed()
    tag = uuid.uuid4().hex[:6]
    # Its own names, so the shared cluster's other Jobs stay out of its plan (team names keep
    # the canonical ones' order: billing < catalog < search).
    scenario = Scenario(
        operation=f"e2e-{tag}.upsert", tenant=f"t-{tag}", batch=f"b-{tag}-guide",
        catalog=f"g{tag}-catalog", search=f"g{tag}-search", billing=f"g{tag}-billing",
    )  # fmt: skip
    cluster = Cluster(argo_install.plane.kubeconfig, argo_install.argo_binary)
    fresh = _run(cluster, scenario)
    canonical = Scenario().names()
    drift = []
    for name in capture_names():
        now = normalize(_shown(fresh[name]), scenario.names(), canonical)
        then = normalize(_shown(committed[name]))
        if now != then:
            diff = difflib.unified_diff(then.splitlines(), now.splitlines(),
                                        "committed", "now", lineterm="")  # fmt: skip
            drift.append(f"capture {name!r}:\n" + "\n".join(diff))
    assert not drift, STALE + "\n\n" + "\n\n".join(drift)


def _run(cluster: Cluster, scenario: Scenario) -> dict[str, Capture]:
    from tools.operator_guide import GuideError, run_scenario

    try:
        return run_scenario(cluster, scenario, echo=lambda _line: None)
    except GuideError as exc:
        pytest.fail(f"the guide's scenario did not run: {exc}", pytrace=False)
