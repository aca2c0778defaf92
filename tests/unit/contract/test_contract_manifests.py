"""Loading manifests: files and directories, multi-document YAML, Lists, duplicates, bad YAML."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bridge.contract import ContractSettings
from bridge.errors import UsageError
from bridge.manifests import (
    INVALID,
    NOT_AN_OBJECT,
    NOT_PARTICIPANT,
    VALID,
    check_manifests,
    find_files,
    load_manifests,
    load_objects,
)

S = ContractSettings()

JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  namespace: team-a
  labels: {{tenant-lifecycle.dev/enabled: "true"}}
  annotations: {{tenant-lifecycle.dev/operations: lifecycle.upsert}}
spec:
  suspend: true
  template: {{spec: {{restartPolicy: Never, containers: [{{name: c, image: x}}]}}}}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_directory_is_searched_recursively_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "b" / "z.yml", JOB.format(name="z"))
    write(tmp_path / "a.yaml", JOB.format(name="a"))
    write(tmp_path / "b" / "c.yaml", JOB.format(name="c"))
    write(tmp_path / "notes.txt", "not yaml: [")
    write(tmp_path / ".hidden" / "x.yaml", "broken: [")
    files = find_files([tmp_path])
    assert files == [tmp_path / "a.yaml", tmp_path / "b" / "c.yaml", tmp_path / "b" / "z.yml"]
    result = load_manifests([tmp_path])
    assert [m.obj["metadata"]["name"] for m in result.jobs] == ["a", "c", "z"]
    assert result.problems == []


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file or directory"):
        load_manifests([tmp_path / "nope"])


def test_multi_document_sources_carry_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "jobs.yaml", JOB.format(name="one") + "---\n" + JOB.format(name="two"))
    result = load_manifests([path])
    assert [m.source for m in result.jobs] == [f"{path}:1", f"{path}:12"]


def test_invalid_yaml_names_file_and_line_and_keeps_earlier_documents(tmp_path: Path) -> None:
    text = JOB.format(name="ok") + "---\nkind: Job\nmetadata:\n  name: [unclosed\n"
    path = write(tmp_path / "bad.yaml", text)
    result = load_manifests([path])
    assert [m.obj["metadata"]["name"] for m in result.jobs] == ["ok"]
    (problem,) = result.problems
    assert problem.source.startswith(f"{path}:")
    line = int(problem.source.rsplit(":", 1)[1])
    assert 14 <= line <= 16
    assert problem.message.startswith("invalid YAML")
    assert problem.field == "syntax"


def test_undecodable_file_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00kind: Job")
    (problem,) = load_manifests([path]).problems
    assert problem.source == str(path)
    assert "cannot read" in problem.message


def test_non_job_kinds_are_ignored_and_counted(tmp_path: Path) -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n---\n"
        "apiVersion: example.com/v1\nkind: Job\nmetadata: {name: not-batch}\n---\n"
        "just a string\n---\n"
        "---\n"
        "resources: [a.yaml]\n"
    )
    result = load_manifests([write(tmp_path / "mixed.yaml", text)])
    assert result.jobs == []
    assert dict(result.ignored) == {
        "ConfigMap": 1,
        "Namespace": 1,
        "Job (example.com/v1)": 1,
        NOT_AN_OBJECT: 2,
    }
    assert [m.obj["metadata"]["name"] for m in result.namespaces] == ["team-a"]
    assert result.ignored_summary() == (
        "1 ConfigMap, 1 Job (example.com/v1), 1 Namespace, 2 (not a Kubernetes object)"
    )


def test_list_kinds_are_expanded(tmp_path: Path) -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "  - {apiVersion: batch/v1, kind: Job, metadata: {name: a, namespace: n}}\n"
        "  - apiVersion: v1\n    kind: JobList\n    items:\n"
        "      - {apiVersion: batch/v1, kind: Job, metadata: {name: b, namespace: n}}\n"
        "  - {apiVersion: v1, kind: Secret, metadata: {name: s}}\n"
    )
    path = write(tmp_path / "list.yaml", text)
    result = load_manifests([path])
    assert [m.source for m in result.jobs] == [f"{path}:1 items[0]", f"{path}:1 items[1] items[0]"]
    assert dict(result.ignored) == {"Secret": 1}


def test_job_listed_twice_names_both_sources(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", JOB.format(name="dup"))
    second = write(tmp_path / "b.yaml", JOB.format(name="dup").replace("  namespace: team-a\n", ""))
    third = write(tmp_path / "c.yaml", JOB.format(name="dup").replace("team-a", "default"))
    result = load_manifests([first, second, third])
    (problem,) = result.problems  # b.yaml has no namespace: "default", like c.yaml
    assert problem.object == "Job default/dup"
    assert problem.field == "metadata.name"
    assert problem.message == f"listed twice: at {second}:1 and at {third}:1"
    assert problem.source == f"{third}:1"

    report = check_manifests([first, second, third], settings=S)
    assert [job.status for job in report.jobs] == [VALID, INVALID, INVALID]
    assert report.problems == [problem]
    (rejected,) = report.rejected()
    assert (rejected.namespace, rejected.name) == ("default", "dup")


def test_check_report_statuses_and_namespace_opt_in(tmp_path: Path) -> None:
    text = (
        JOB.format(name="good")
        + "---\n"
        + JOB.format(name="bad").replace("suspend: true", "suspend: false")
        + "---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: plain, namespace: team-a}\n"
    )
    path = write(tmp_path / "jobs.yaml", text)
    report = check_manifests([path], settings=S)
    assert [(j.name, j.status) for j in report.jobs] == [
        ("good", VALID),
        ("bad", INVALID),
        ("plain", NOT_PARTICIPANT),
    ]
    assert [p.field for p in report.problems] == ["spec.suspend"]
    assert report.jobs[0].to_json()["operations"] == ["lifecycle.upsert"]

    ns = write(tmp_path / "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n")
    report = check_manifests([path, ns], settings=S)
    good = report.jobs[0]
    assert good.status == INVALID
    (problem,) = good.problems
    assert problem.object == "Namespace team-a"
    assert problem.field == "metadata.labels[tenant-lifecycle.dev/enabled]"
    assert "not opted in" in problem.message
    assert problem.source == f"{ns}:1"


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(JOB.format(name="piped")))
    result = load_manifests(["-"])
    assert [m.source for m in result.jobs] == ["<stdin>:1"]


def test_load_objects_puts_namespaces_first(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", JOB.format(name="a"))
    write(tmp_path / "b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n")
    write(
        tmp_path / "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\nresources: [a.yaml, b.yaml]\n",
    )
    assert [o["kind"] for o in load_objects([tmp_path])] == ["Namespace", "Job"]
    write(tmp_path / "c.yaml", "kind: [")
    with pytest.raises(UsageError, match="invalid YAML"):
        load_objects([tmp_path])


def test_control_character_is_a_yaml_problem_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "ctl.yaml", "a: 1\nb: \x1f\n")
    (problem,) = load_manifests([path]).problems
    assert problem.source == f"{path}:2"
    assert "unacceptable character" in problem.message
