"""No Google credentials is one line with the fix, not the client library's traceback (the
exit handler's ``tenantctl publish-result`` showed the traceback on a real cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.bus import BusError
from orchestrator.cli import main
from orchestrator.pubsub import PubSubBus, PubSubSettings


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PUBSUB_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    # No metadata server either (it is what Workload Identity would answer).
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("NO_GCE_CHECK", "True")


@pytest.mark.usefixtures("no_credentials")
def test_the_bus_names_the_project_and_the_three_ways_to_give_credentials() -> None:
    with pytest.raises(BusError) as caught:
        PubSubBus(PubSubSettings(project="acme-prod"))
    assert "acme-prod" in str(caught.value)
    assert "no Google credentials" in str(caught.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in (caught.value.hint or "")
    assert "PUBSUB_EMULATOR_HOST" in (caught.value.hint or "")


@pytest.mark.usefixtures("no_credentials")
def test_publish_result_without_credentials_is_one_error_line() -> None:
    done = CliRunner().invoke(
        main,
        ["publish-result", "--project", "acme-prod", "--workflow", "lc-x", "--namespace",
         "tenant-lifecycle", "--workflow-status", "Succeeded", "--kubeconfig", "/nonexistent"],
    )  # fmt: skip
    assert done.exit_code != 0
    assert "Traceback" not in done.output
    assert "no Google credentials" in done.output, done.output
