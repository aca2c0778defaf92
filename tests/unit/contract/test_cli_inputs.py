"""The one reader of --environment and --changeset files, shared by every command."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bridge.errors import UsageError
from orchestrator.cli.inputs import load_changeset, load_environment, load_mapping


def test_an_environment_may_be_a_whole_request_body(tmp_path: Path) -> None:
    path = tmp_path / "request.yaml"
    path.write_text("tenantEnvironment:\n  applications: [catalog]\n", encoding="utf-8")
    assert load_environment(str(path)) == {"applications": ["catalog"]}


def test_bad_yaml_names_the_flag_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "changeset.yaml"
    path.write_text("a: 1\nb: [unclosed\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"--changeset .*changeset\.yaml line \d+: invalid YAML"):
        load_changeset(str(path))


def test_a_list_where_a_mapping_belongs_is_refused_with_an_example(tmp_path: Path) -> None:
    path = tmp_path / "environment.yaml"
    path.write_text("- catalog\n", encoding="utf-8")
    with pytest.raises(UsageError, match="expected a mapping, got list") as caught:
        load_environment(str(path))
    assert caught.value.hint is not None
    assert "applications: [catalog, search]" in caught.value.hint


def test_a_missing_file_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="cannot read --changeset"):
        load_changeset(str(tmp_path / "nope.yaml"))
    monkeypatch.setattr("sys.stdin", io.StringIO('{"catalog": {"schemaVersion": 42}}'))
    assert load_mapping("-", "--changeset") == {"catalog": {"schemaVersion": 42}}
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert load_changeset(str(empty)) == {}
