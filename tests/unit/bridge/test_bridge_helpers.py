"""Small pure helpers of discovery and sweep."""

from __future__ import annotations

import pytest

from bridge.contract import ContractSettings
from bridge.discovery import annotated_operations
from bridge.errors import UsageError
from bridge.podwatch import Cancellation
from bridge.sweep import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "1h 30m", "-5m"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration(text)


def test_annotated_operations_reads_both_keys_leniently() -> None:
    settings = ContractSettings(legacy_key="collibra.com/tenant.lifecycle")
    job = {
        "metadata": {
            "annotations": {
                "tenant-lifecycle.dev/operations": " lifecycle.upsert ,,lifecycle.backup",
                "collibra.com/tenant.lifecycle": "team.reindex",
            }
        }
    }
    assert annotated_operations(job, settings) == {
        "lifecycle.upsert",
        "lifecycle.backup",
        "team.reindex",
    }
    assert annotated_operations({"metadata": {}}, settings) is None


class FakeStream:
    def __init__(self) -> None:
        self.interrupted = 0

    def interrupt(self) -> None:
        self.interrupted += 1


def test_cancellation_never_loses_a_cancel_that_lands_while_a_stream_opens() -> None:
    cancellation = Cancellation()
    open_before = FakeStream()
    cancellation.register(open_before)
    cancellation.cancel()  # as from a signal handler
    assert open_before.interrupted == 1
    opening = FakeStream()  # was being opened when the signal came
    cancellation.register(opening)
    assert opening.interrupted == 1
    waiting_for_deletion = FakeStream()
    cancellation.register(waiting_for_deletion, honour=False)
    assert waiting_for_deletion.interrupted == 0
    for stream in (open_before, opening, waiting_for_deletion):
        cancellation.unregister(stream)
