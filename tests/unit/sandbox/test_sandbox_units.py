"""The sandbox's pure parts: selectors, patches, the indexed store, protobuf, timestamps."""

from __future__ import annotations

import base64

import pytest

from sandbox import protobuf
from sandbox.clock import parse_rfc3339_ns, rfc3339_nano
from sandbox.envvars import expand
from sandbox.images import is_pull_error, is_valid_reference
from sandbox.patch import json_patch, merge_patch, strategic_merge_patch
from sandbox.selectors import parse_field_selector, parse_label_selector, selector_from_match
from sandbox.status import ApiError
from sandbox.store import Store


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("a=b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a==b,c", {"a": "b", "c": ""}, True),
        ("a!=b", {}, True),
        ("a in (x, y)", {"a": "y"}, True),
        ("a notin (x,y)", {"a": "z"}, True),
        ("a notin (x,y)", {"a": "x"}, False),
        ("!a", {"b": "1"}, True),
        ("!a", {"a": "1"}, False),
        ("tenant-lifecycle.dev/enabled=true", {"tenant-lifecycle.dev/enabled": "true"}, True),
        ("op=lifecycle.upsert", {"op": "lifecycle.upsert"}, True),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is matches


def test_bad_label_selector_is_a_400() -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector("a in x")
    assert err.value.code == 400


def test_match_expressions_and_field_selectors() -> None:
    sel = selector_from_match(
        {
            "matchLabels": {"a": "1"},
            "matchExpressions": [{"key": "b", "operator": "In", "values": ["x"]}],
        }
    )
    assert sel.matches({"a": "1", "b": "x"})
    assert not sel.matches({"a": "1"})
    fields = parse_field_selector("metadata.name=p,status.phase!=Failed")
    assert fields.name() == "p"
    assert fields.matches({"metadata": {"name": "p"}, "status": {"phase": "Running"}})
    assert not fields.matches({"metadata": {"name": "p"}, "status": {"phase": "Failed"}})
    with pytest.raises(ApiError):
        parse_field_selector("spec.containers=x")


def test_patches() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {
        "a": {"c": 2, "d": 3}
    }
    doc = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}
    patched = strategic_merge_patch(
        doc,
        {"spec": {"containers": [{"name": "b", "image": "2"}, {"name": "a", "$patch": "delete"}]}},
    )
    assert patched == {"spec": {"containers": [{"name": "b", "image": "2"}]}}
    assert json_patch(
        {"a": [1, 2]},
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/a/0", "value": 0},
            {"op": "remove", "path": "/a/1"},
        ],
    ) == {"a": [0, 3]}
    with pytest.raises(ApiError) as err:
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert err.value.code == 422


def _obj(name: str, namespace: str, **labels: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}}


def test_store_indexes_by_namespace_and_label_and_replays_history() -> None:
    store = Store(history=3)
    for i in range(5):
        rv = store.next_rv()
        store.put(
            "configmaps", _obj(f"c{i}", f"ns{i % 2}", parity=str(i % 2)), rv=rv, event="ADDED"
        )
    narrowed = store.candidates("configmaps", None, [("parity", "1")])
    assert [key for key, _ in narrowed] == [("ns1", "c1"), ("ns1", "c3")]
    assert [key for key, _ in store.candidates("configmaps", "ns0")] == [
        ("ns0", "c0"),
        ("ns0", "c2"),
        ("ns0", "c4"),
    ]
    # Only the last three changes are replayable; older resourceVersions are gone.
    assert len(store.changes_since(0)) == 3
    assert store.oldest_replayable == store.resource_version - 3
    store.compact()
    assert store.changes_since(0) == []
    assert store.oldest_replayable == store.resource_version


def test_protobuf_config_map_decodes() -> None:
    def field(number: int, payload: bytes) -> bytes:
        return bytes([(number << 3) | 2, len(payload)]) + payload

    meta = field(1, b"settings") + field(3, b"team-a")
    entry = field(1, b"k") + field(2, b"v")
    raw = field(1, meta) + field(2, entry) + field(3, field(1, b"b") + field(2, b"\x00\x01"))
    unknown = field(1, field(1, b"v1") + field(2, b"ConfigMap")) + field(2, raw)
    obj = protobuf.decode(protobuf.MAGIC + unknown)
    assert obj == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "team-a"},
        "data": {"k": "v"},
        "binaryData": {"b": base64.b64encode(b"\x00\x01").decode()},
    }
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode(b"{}")


def test_timestamps_and_expansion_and_images() -> None:
    ns = 1_700_000_000_123_456_789
    text = rfc3339_nano(ns)
    assert text == "2023-11-14T22:13:20.123456789Z"
    assert parse_rfc3339_ns(text) == ns
    assert parse_rfc3339_ns("2023-11-14T23:13:20+01:00") == 1_700_000_000 * 10**9
    assert expand("$(A)-$(B)-$$(A)", {"A": "x"}) == "x-$(B)-$(A)"
    assert is_valid_reference("ghcr.io/tenant-lifecycle/tenant-lifecycle:0.1.0")
    assert is_valid_reference("busybox")
    assert not is_valid_reference("Bad Image!")
    assert is_pull_error("sandbox.invalid/pull-error:v2")


def test_label_selected_candidates_in_a_namespace_match_a_plain_filter() -> None:
    # The store narrows a namespaced, label-selected LIST from whichever index is smaller;
    # both ways must give exactly the objects a plain filter would, in key order.
    from sandbox.store import Store

    store = Store()
    label = ("tenant-lifecycle.dev/enabled", "true")
    for ns in ("team-a", "team-b", "team-c"):
        for i in range(6 if ns == "team-a" else 2):
            labels = {label[0]: label[1]} if i % 2 == 0 else {}
            obj = {"metadata": {"namespace": ns, "name": f"job-{i}", "labels": labels}}
            store.put("batch/v1/jobs", obj, rv=store.next_rv(), event="ADDED")

    for ns in ("team-a", "team-b", "team-c", "team-none"):
        got = [key for key, _ in store.candidates("batch/v1/jobs", ns, [label])]
        expected = (
            sorted((ns, f"job-{i}") for i in range(6 if ns == "team-a" else 2) if i % 2 == 0)
            if ns != "team-none"
            else []
        )
        assert got == expected
    everywhere = [key for key, _ in store.candidates("batch/v1/jobs", None, [label])]
    assert len(everywhere) == 3 + 1 + 1
