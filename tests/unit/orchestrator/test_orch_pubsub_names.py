"""Pub/Sub naming and attribute rules applied before publishing."""

from __future__ import annotations

from orchestrator.pubsub import (
    MAX_ATTRIBUTE_BYTES,
    clip_attribute,
    publishable_attributes,
    subscription_path,
    topic_path,
)


def test_short_names_become_paths_and_paths_stay() -> None:
    assert topic_path("p", "t") == "projects/p/topics/t"
    assert topic_path("p", "projects/q/topics/t") == "projects/q/topics/t"
    assert subscription_path("p", "s") == "projects/p/subscriptions/s"


def test_attributes_are_made_publishable() -> None:
    attributes = {
        "reasonCode": "NotJSON",
        "reason": "é" * 2000,
        "googclient_schemaencoding": "JSON",
        "k" * 300: "too long a key",
    }
    result = publishable_attributes(attributes)
    assert set(result) == {"reasonCode", "reason"}
    assert len(result["reason"].encode()) <= MAX_ATTRIBUTE_BYTES
    assert result["reason"].endswith("...")
    assert clip_attribute("short") == "short"
    assert len(publishable_attributes({f"a{i}": "v" for i in range(150)})) == 100
