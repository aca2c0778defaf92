"""Pub/Sub naming and attribute rules applied before publishing."""

from __future__ import annotations

import pytest

from bridge.errors import UsageError
from orchestrator.pubsub import (
    MAX_ATTRIBUTE_BYTES,
    PubSubSettings,
    clip_attribute,
    publishable_attributes,
    resolve_pull,
    subscription_path,
    topic_path,
)


def test_auto_pull_is_unary_on_the_emulator_and_streaming_on_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    assert resolve_pull("auto") == "streaming"
    assert resolve_pull("unary") == "unary"
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085")
    assert resolve_pull("auto") == "unary"
    assert resolve_pull("streaming") == "streaming"  # an explicit choice always wins


def test_an_unknown_pull_mode_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="pull mode 'auto'"):
        PubSubSettings(project="p", pull="auto")  # resolve it first


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
