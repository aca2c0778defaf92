"""Hypothesis strategies shared by the property tests: JSON values, near-valid events, Jobs."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from bridge.contract import DEFAULT_PREFIX, KNOWN_OPERATIONS

SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

OPERATIONS = sorted(KNOWN_OPERATIONS)
# Operation-name-ish text: where the dotted-name parser has its edges.
OPERATION_TEXT = st.sampled_from([*OPERATIONS, "team.rotate-keys", "lifecycle.bogus"]) | st.text(
    alphabet=st.sampled_from("abcz09.-_ XY/é"), max_size=20
)
ID_TEXT = st.sampled_from(["b-1", "799a-1f", "a" * 63, "a" * 64, "-x", "x-", "t.1_2"]) | st.text(
    alphabet=st.sampled_from("abc019-_.:/ é"), max_size=70
)
TIME_TEXT = st.sampled_from(
    ["2026-11-22T10:00:00Z", "2026-11-22T10:00:00.123456789+02:00", "2026-02-30T10:00:00Z",
     "yesterday", "2026-11-22 10:00:00"]
) | st.text(max_size=30)  # fmt: skip


@st.composite
def _weighted(draw: st.DrawFn, good: Any, plausible: st.SearchStrategy[Any]) -> Any:
    """Mostly the good value (so deep checks are reached), sometimes an edge, rarely anything."""
    roll = draw(st.integers(0, 19))
    if roll < 17:
        return good
    if roll < 19:
        return draw(plausible)  # pragma: no branch
    return draw(JSON_VALUES)


@st.composite
def near_valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A request event whose every attribute is either plausible or arbitrary JSON."""
    event: dict[str, Any] = {}
    fields = {
        "specversion": _weighted("1.0", st.sampled_from(["0.3", "1", 1.0])),
        "type": _weighted("dev.tenant-lifecycle.operation.requested", st.sampled_from(["x", ""])),
        "source": _weighted("tenant-manager", st.sampled_from(["//crm", "a b", "", "é"])),
        "id": _weighted("b-799a", ID_TEXT),
        "subject": _weighted("t-799a", ID_TEXT),
        "time": _weighted("2026-11-22T10:00:00Z", TIME_TEXT),
        "datacontenttype": _weighted(
            "application/json",
            st.sampled_from(["text/plain", "application/cloudevents+json", "text/json; x=1"]),
        ),
    }
    for name, strategy in fields.items():
        if draw(st.integers(0, 19)) > 0:  # mostly present
            event[name] = draw(strategy)
    data: dict[str, Any] = {}
    data_fields = {
        "operation": _weighted("lifecycle.upsert", OPERATION_TEXT),
        "region": _weighted("eu-west-1", st.sampled_from(["EU", "-x", "us-east-2", ""])),
        "tenantEnvironment": _weighted(
            {"applications": ["catalog"]},
            st.fixed_dictionaries(
                {},
                optional={
                    "applications": st.lists(
                        st.sampled_from(["catalog", "search", "", "a b", "x" * 300])
                    )
                    | JSON_VALUES
                },
            ),
        ),
        "changeset": _weighted({}, st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=3)),
        "parentBatchOperationId": _weighted("b-0", ID_TEXT),
        "sourceBatchOperationId": _weighted("b-0", ID_TEXT),
    }
    for name, strategy in data_fields.items():
        if name == "operation" or draw(st.integers(0, 2)) > 0:
            data[name] = draw(strategy)
    choice = draw(st.integers(0, 19))
    if choice > 1:
        event["data"] = data
    elif choice == 1:
        event["data"] = draw(JSON_VALUES)
    else:
        event["data_base64"] = draw(st.text(max_size=8))
    extensions = draw(
        st.dictionaries(
            st.text(alphabet=st.sampled_from("abcXYZ09-_"), min_size=1, max_size=24),
            JSON_VALUES,
            max_size=2,
        )
        if draw(st.integers(0, 4)) == 0
        else st.just({})
    )
    event.update({k: v for k, v in extensions.items() if k not in event})
    return event


CONTRACT_KEYS = ["operations", "wave", "applications", "delete-policy", "on-failure", "enabled"]
ANNOTATION_VALUES = (
    st.sampled_from(["lifecycle.upsert", "lifecycle.upsert,lifecycle.backup", "0", "-3", "10001",
                     "always", "never", "succeeded", "abort", "continue", "true", "", " , "])
    | st.text(alphabet=st.sampled_from("abcXYZ019.,- \t_/é"), max_size=30)
    | JSON_VALUES
)  # fmt: skip


@st.composite
def job_like(draw: st.DrawFn) -> Any:
    """A batch/v1 Job as a team might write it, with any part possibly wrong."""
    if draw(st.integers(0, 19)) == 0:
        return draw(JSON_VALUES)  # not even a mapping, sometimes
    annotations: dict[str, Any] = {}
    if draw(st.integers(0, 9)) < 7:
        annotations[f"{DEFAULT_PREFIX}/operations"] = draw(
            _weighted("lifecycle.upsert,lifecycle.backup", ANNOTATION_VALUES)
        )
    annotations |= draw(
        st.dictionaries(
            st.sampled_from(CONTRACT_KEYS).map(lambda k: f"{DEFAULT_PREFIX}/{k}")
            | st.sampled_from(["collibra.com/tenant.lifecycle", "other/x"]),
            ANNOTATION_VALUES,
            max_size=5,
        )
    )
    labels: dict[str, Any] = {}
    if draw(st.integers(0, 9)) < 8:
        labels[f"{DEFAULT_PREFIX}/enabled"] = draw(
            _weighted("true", st.sampled_from(["false", "True", ""]))
        )
    if draw(st.booleans()):
        labels["app"] = draw(st.text(max_size=5))
    metadata: dict[str, Any] = {
        "name": draw(_weighted("schema", st.sampled_from(["", "a" * 70, "Bad_Name"]))),
        "namespace": draw(_weighted("team-a", st.sampled_from(["", "x" * 70]))),
        "labels": labels if draw(st.integers(0, 9)) else draw(JSON_VALUES),
        "annotations": annotations if draw(st.integers(0, 9)) else draw(JSON_VALUES),
    }
    container = {"name": "main", "image": "busybox", "command": ["true"]}
    rule = st.fixed_dictionaries(
        {
            "action": st.sampled_from(["FailJob", "Ignore", "Count", "FailIndex", "Bogus"])
            | JSON_VALUES,
        },
        optional={
            "onExitCodes": st.fixed_dictionaries(
                {},
                optional={
                    "containerName": st.sampled_from(["main", "other"]) | JSON_VALUES,
                    "operator": st.sampled_from(["In", "NotIn", "Bogus"]) | JSON_VALUES,
                    "values": st.lists(st.integers(-5, 300), max_size=4) | JSON_VALUES,
                },
            ),
            "onPodConditions": st.lists(
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["DisruptionTarget", "x"]) | JSON_VALUES},
                    optional={"status": st.sampled_from(["True", "False"]) | JSON_VALUES},
                ),
                max_size=2,
            )
            | JSON_VALUES,
        },
    )
    spec: dict[str, Any] = {
        "suspend": draw(_weighted(True, st.sampled_from([False, None, "true", 1]))),
        "template": draw(
            _weighted({"spec": {"restartPolicy": "Never", "containers": [container]}}, JSON_VALUES)
        ),
    }
    optional = {
        "backoffLimit": _weighted(2, st.integers(-2, 20)),
        "activeDeadlineSeconds": _weighted(600, st.integers(-2, 10**6)),
        "podFailurePolicy": st.fixed_dictionaries({"rules": st.lists(rule, max_size=3)})
        | _weighted({"rules": []}, JSON_VALUES),
        "completions": st.integers(0, 3),
        "parallelism": st.integers(0, 3),
    }
    for name, strategy in optional.items():
        if draw(st.integers(0, 3)) == 0:
            spec[name] = draw(strategy)
    job: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata}
    job["spec"] = spec if draw(st.integers(0, 19)) else draw(JSON_VALUES)
    return job
