"""``tenantctl migrate``: user mistakes are one line and exit 2, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli import main


@pytest.fixture
def regions(tmp_path: Path) -> Path:
    path = tmp_path / "regions.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "regions": {
                    "eu-west-1": {"cluster": {"context": "eu"}},
                    "us-east-1": {"cluster": {"context": "us"}, "engine": "local"},
                }
            }
        )
    )
    return path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--from", "eu-west-1", "--to", "mars-1"], "--to 'mars-1' is not in the region map"),
        (["--from", "eu-west-1", "--to", "eu-west-1"], "--from and --to are both 'eu-west-1'"),
        (
            ["--from", "eu-west-1", "--to", "us-east-1", "--project", "p"],
            "--project and --results-topic go together",
        ),
        (
            ["--from", "eu-west-1", "--to", "us-east-1", "--batch-operation-id", "bad id!"],
            "--batch-operation-id: id 'bad id!' is not a valid batch operation id",
        ),
    ],
)
def test_mistakes_are_one_line_with_exit_2(regions: Path, args: list[str], expected: str) -> None:
    result = CliRunner().invoke(
        main, ["migrate", "t-42", "--regions", str(regions), "--store", "sqlite:///:memory:", *args]
    )
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_a_broken_region_map_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "regions.yaml"
    path.write_text("regions: {eu-west-1: {cluster: {context: eu}, engine: k8s}}\n")
    result = CliRunner().invoke(
        main, ["migrate", "t-42", "--from", "eu-west-1", "--to", "x", "--regions", str(path)]
    )
    assert result.exit_code == 2
    assert "regions.eu-west-1.engine: 'k8s' is not an engine" in result.output


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(main, ["migrate", "--help"])
    assert result.exit_code == 0
    assert "tenantctl migrate t-42 --from eu-west-1 --to us-east-1" in result.output


def test_the_text_summary_says_where_the_tenant_is(
    regions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    import threading
    from collections.abc import Iterator
    from typing import Any

    from orchestrator import migration
    from orchestrator.events import LifecycleRequest

    class Scripted:
        def __init__(self, status: str) -> None:
            self.status = status

        def run(
            self, request: LifecycleRequest, *, cancel: threading.Event
        ) -> migration.StepOutcome:
            return migration.StepOutcome(self.status, f"1 job(s) {self.status}")

    @contextlib.contextmanager
    def fake_runners(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        yield {"eu-west-1": Scripted("succeeded"), "us-east-1": Scripted("failed")}

    monkeypatch.setattr(migration, "region_runners", fake_runners)
    result = CliRunner().invoke(
        main,
        [
            "migrate",
            "t-42",
            "--from",
            "eu-west-1",
            "--to",
            "us-east-1",
            "--regions",
            str(regions),
            "--store",
            f"sqlite:///{tmp_path / 'h.db'}",
            "--batch-operation-id",
            "mig-txt",
        ],
    )
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["STEP", "REGION", "BATCH", "STATUS", "DETAIL"]
    assert lines[1].split()[:4] == [
        "lifecycle.migrate-out",
        "eu-west-1",
        "mig-txt-out",
        "succeeded",
    ]
    assert lines[2].split()[:4] == ["lifecycle.migrate-in", "us-east-1", "mig-txt-in", "failed"]
    assert "migration mig-txt: failed" in result.stdout
    assert "--batch-operation-id mig-txt to resume at the import" in result.stdout
