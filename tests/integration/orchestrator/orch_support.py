"""Helpers shared by the orchestrator's integration tests (imported by file name: this
directory has no ``__init__.py`` because a package named ``orchestrator`` would shadow the real
one)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from orchestrator.bus import Message
from orchestrator.pubsub import pull_now


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy; return its value (fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def drain(
    project: str, subscription: str, *, expected: int, timeout: float = 30.0
) -> list[Message]:
    """Pull (and ack) until ``expected`` messages arrived, then one more short pull to catch
    extras; returns everything pulled."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        got.extend(pull_now(project, subscription, timeout=1.0))
    got.extend(pull_now(project, subscription, timeout=1.0))
    return got


def quiet_for(project: str, subscription: str, seconds: float) -> list[Message]:
    """Everything that arrives on ``subscription`` within ``seconds`` (expected: nothing)."""
    got: list[Message] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got.extend(pull_now(project, subscription, timeout=0.5))
    return got


def events(messages: list[Message]) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in messages]
