"""Load Kubernetes manifests from YAML files for ``tenantctl validate`` and ``tenantctl plan``.

Rules (documented in ``docs/contract.md``):

* paths are files or directories; a directory is searched recursively for ``*.yaml`` and
  ``*.yml`` in sorted order, skipping hidden entries (``.git``, ``.venv``); a file named
  explicitly is read whatever its extension; ``-`` reads standard input;
* a file may hold several documents (``---``); empty documents are skipped;
* ``kind: List`` (and any ``*List`` kind with ``items``) is expanded into its items;
* ``batch/*`` Jobs are collected; Namespaces are kept (to check the opt-in label); every other
  kind, and documents that are not Kubernetes objects, are ignored and counted by kind;
* invalid YAML is a :class:`~bridge.contract.Problem` naming the file and line; documents before
  the error are still used;
* a Job listed twice (same namespace/name; a missing namespace means ``default``, as kubectl
  applies it) is a problem naming both places.

Nothing here raises for bad content: the caller gets problems and prints them. A path that does
not exist is a :class:`~bridge.errors.UsageError`.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .contract import (
    ContractSettings,
    Participant,
    Problem,
    check_job,
    is_namespace_opted_in,
    is_participant_candidate,
    job_identity,
)
from .errors import UsageError
from .planner import Rejected

YAML_SUFFIXES = (".yaml", ".yml")
STDIN = "-"
NOT_AN_OBJECT = "(not a Kubernetes object)"
KUSTOMIZE_GROUP = "kustomize.config.k8s.io/"


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object and where it came from (``path:line``, plus ``items[i]`` in Lists)."""

    obj: dict[str, Any]
    source: str

    @property
    def kind(self) -> str:
        kind = self.obj.get("kind")
        return kind if isinstance(kind, str) else ""

    @property
    def identity(self) -> tuple[str, str]:
        return job_identity(self.obj)


@dataclass
class LoadResult:
    """Everything read from the paths: Jobs, Namespaces, problems and what was ignored."""

    jobs: list[Manifest] = field(default_factory=list)
    namespaces: list[Manifest] = field(default_factory=list)
    # Every Kubernetes object in file order, Jobs included (not kustomize's own config files):
    # what the demo and tests apply to a sandbox.
    objects: list[Manifest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)
    documents: int = 0
    # "namespace/name" -> the problems about that Job listed twice (for plan's rejected list)
    duplicates: dict[str, list[Problem]] = field(default_factory=dict)

    def ignored_summary(self) -> str:
        ordered = sorted(self.ignored.items(), key=lambda kv: (kv[0] == NOT_AN_OBJECT, kv[0]))
        return ", ".join(f"{count} {kind}" for kind, count in ordered)


def find_files(paths: Iterable[str | Path]) -> list[Path | str]:
    """Expand directories into their YAML files (recursive, sorted); keep order of the paths."""
    found: list[Path | str] = []
    for raw in paths:
        if str(raw) == STDIN:
            found.append(STDIN)
            continue
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.suffix in YAML_SUFFIXES
                    and p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
            )
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(
                f"no such file or directory: {raw}",
                hint="pass YAML files or directories holding them",
            )
    return found


def _yaml_problem(source: str, exc: yaml.YAMLError, text: str = "") -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    if isinstance(exc, yaml.reader.ReaderError):  # a bad character: it has a position only
        where = f"{source}:{text[: exc.position].count(chr(10)) + 1}"
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    column = f" (column {mark.column + 1})" if mark is not None else ""
    message = f"invalid YAML{column}: {what}" + (f" {context}" if context else "")
    return Problem(
        object="file",
        field="syntax",
        message=message,
        fix="fix the YAML syntax: indentation, quoting, ':' after keys; documents after the "
        "error in this file were not read",
        source=where,
    )


def _documents(text: str, source: str) -> Iterator[tuple[int, Any] | Problem]:
    """(first line, document) for each YAML document; a Problem and stop at invalid YAML."""
    try:
        # The reader rejects control characters in the constructor already: keep it inside.
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        yield _yaml_problem(source, exc, text)
        return
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node() said there is one
                break
            line = node.start_mark.line + 1
            yield line, loader.construct_document(node)
    except yaml.YAMLError as exc:
        yield _yaml_problem(source, exc, text)
    finally:
        loader.dispose()


class _Collector:
    def __init__(self) -> None:
        self.result = LoadResult()
        self._first_seen: dict[tuple[str, str], str] = {}

    def add(self, obj: Any, source: str) -> None:
        self.result.documents += 1
        if not isinstance(obj, Mapping) or not isinstance(obj.get("kind"), str):
            self.result.ignored[NOT_AN_OBJECT] += 1
            return
        kind = obj["kind"]
        items = obj.get("items")
        if kind.endswith("List") and isinstance(items, list):
            self.result.documents -= 1  # the List itself is not a document of interest
            for index, item in enumerate(items):
                self.add(item, f"{source} items[{index}]")
            return
        api_version = obj.get("apiVersion")
        manifest = Manifest(dict(obj), source)
        if isinstance(api_version, str) and not api_version.startswith(KUSTOMIZE_GROUP):
            self.result.objects.append(manifest)
        if kind == "Job" and isinstance(api_version, str) and api_version.startswith("batch/"):
            self._add_job(manifest)
        elif kind == "Namespace" and api_version == "v1":
            self.result.namespaces.append(manifest)
            self.result.ignored[kind] += 1
        elif kind == "Job":
            # Same kind, other API group (a CRD): not a batch Job, say which one was ignored.
            self.result.ignored[f"Job ({api_version})"] += 1
        else:
            self.result.ignored[kind] += 1

    def _add_job(self, manifest: Manifest) -> None:
        self.result.jobs.append(manifest)
        identity = manifest.identity
        first = self._first_seen.get(identity)
        if first is None:
            self._first_seen[identity] = manifest.source
            return
        namespace, name = identity
        problem = Problem(
            object=f"Job {namespace}/{name}",
            field="metadata.name",
            message=f"listed twice: at {first} and at {manifest.source}",
            fix="keep one definition (a missing metadata.namespace means 'default'); "
            "rename one of them if they are different Jobs",
            source=manifest.source,
        )
        self.result.problems.append(problem)
        self.result.duplicates.setdefault(f"{namespace}/{name}", []).append(problem)


def _read(path: Path | str) -> tuple[str, str] | Problem:
    source = "<stdin>" if path == STDIN else str(path)
    try:
        text = sys.stdin.read() if path == STDIN else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Problem(
            object="file",
            field="read",
            message=f"cannot read: {reason}",
            fix="check the path and that the file is UTF-8 text",
            source=source,
        )
    return source, text


def load_objects(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every Kubernetes object under ``paths`` (e.g. ``lifecycle-jobs/``), Namespaces first,
    ready to apply (``Sandbox.apply``).

    Raises :class:`UsageError` when a file cannot be read or parsed: applying half a directory
    would be worse than applying nothing.
    """
    result = load_manifests(paths)
    unreadable = [p for p in result.problems if p.object == "file"]
    if unreadable:
        raise UsageError(str(unreadable[0]), hint="fix the file and retry")
    # Namespaces first (as kubectl and helm order them): the rest is created inside them.
    return [m.obj for m in sorted(result.objects, key=lambda m: m.kind != "Namespace")]


def load_manifests(paths: Iterable[str | Path]) -> LoadResult:
    """Read every object from ``paths`` (see the module docstring for the rules)."""
    collector = _Collector()
    for path in find_files(paths):
        read = _read(path)
        if isinstance(read, Problem):
            collector.result.problems.append(read)
            continue
        source, text = read
        collector.result.files.append(source)
        for item in _documents(text, source):
            if isinstance(item, Problem):
                collector.result.problems.append(item)
                continue
            line, document = item
            if document is None:
                continue
            collector.add(document, f"{source}:{line}")
    return collector.result


# --------------------------------------------------------------------------------------------
# Checking what was loaded
# --------------------------------------------------------------------------------------------

VALID = "valid"
INVALID = "invalid"
NOT_PARTICIPANT = "not-participant"


@dataclass(frozen=True)
class JobReport:
    """The verdict on one Job read from a file."""

    manifest: Manifest
    status: str  # VALID, INVALID or NOT_PARTICIPANT
    participant: Participant | None
    problems: tuple[Problem, ...]

    @property
    def namespace(self) -> str:
        return self.manifest.identity[0]

    @property
    def name(self) -> str:
        return self.manifest.identity[1]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "namespace": self.namespace,
            "name": self.name,
            "source": self.manifest.source,
            "status": self.status,
        }
        if self.participant is not None:
            p = self.participant
            data.update(
                operations=list(p.operations),
                wave=p.wave,
                applications=list(p.applications),
                deletePolicy=p.delete_policy.value,
                onFailure=p.on_failure.value,
                backoffLimit=p.backoff_limit,
                activeDeadlineSeconds=p.active_deadline_seconds,
            )
        data["problems"] = [problem.to_json() for problem in self.problems]
        return data


@dataclass
class CheckReport:
    """All Jobs from the paths, checked; plus problems that belong to no single Job."""

    loaded: LoadResult
    jobs: list[JobReport]
    file_problems: list[Problem]

    @property
    def problems(self) -> list[Problem]:
        """Every problem once (a Job listed twice carries the same problem in both copies)."""
        unique: dict[Problem, None] = dict.fromkeys(self.file_problems)
        for job in self.jobs:
            unique.update(dict.fromkeys(job.problems))
        return list(unique)

    def count(self, status: str) -> int:
        return sum(1 for job in self.jobs if job.status == status)

    def participants(self) -> list[Participant]:
        return [job.participant for job in self.jobs if job.participant is not None]

    def rejected(self) -> list[Rejected]:
        """Invalid Jobs, one entry per namespace/name, errors without the file position."""
        merged: dict[tuple[str, str], list[str]] = {}
        for job in self.jobs:
            if job.status == INVALID:
                errors = merged.setdefault((job.namespace, job.name), [])
                for problem in job.problems:
                    text = f"{problem.field}: {problem.message} (fix: {problem.fix})"
                    if text not in errors:
                        errors.append(text)
        return [Rejected(ns, name, tuple(errors)) for (ns, name), errors in merged.items()]


def _namespace_problem(report_ns: Manifest, job: Manifest, settings: ContractSettings) -> Problem:
    namespace, name = job.identity
    return Problem(
        object=f"Namespace {namespace}",
        field=f"metadata.labels[{settings.enabled_label}]",
        message=f"Job {namespace}/{name} takes part in lifecycle operations, but its namespace "
        f"(defined at {report_ns.source}) is not opted in: discovery and the bridge refuse it",
        fix=f'add the label {settings.enabled_label}: "true" to the Namespace',
        source=report_ns.source,
    )


def check_manifests(paths: Iterable[str | Path], *, settings: ContractSettings) -> CheckReport:
    """Load ``paths`` and check every Job against the contract.

    A Job is INVALID when it has contract problems, is listed twice, or its Namespace (when that
    manifest is among the inputs) is not opted in. The Namespace check is skipped for Jobs whose
    Namespace manifest is not part of the input.
    """
    loaded = load_manifests(paths)
    namespaces = {m.identity[1]: m for m in loaded.namespaces}
    duplicate_problems = [p for problems in loaded.duplicates.values() for p in problems]
    file_problems = [p for p in loaded.problems if p not in duplicate_problems]
    reports: list[JobReport] = []
    for manifest in loaded.jobs:
        participant, problems = check_job(manifest.obj, settings=settings, source=manifest.source)
        # A Job listed twice is invalid in every place: neither copy is "the" definition.
        problems.extend(loaded.duplicates.get("/".join(manifest.identity), ()))
        namespace = namespaces.get(manifest.identity[0])
        if (
            namespace is not None
            and is_participant_candidate(manifest.obj, settings=settings)
            and not is_namespace_opted_in(namespace.obj, settings=settings)
        ):
            problems.append(_namespace_problem(namespace, manifest, settings))
        if problems:
            status, participant = INVALID, None
        elif participant is not None:
            status = VALID
        else:
            status = NOT_PARTICIPANT
        reports.append(JobReport(manifest, status, participant, tuple(problems)))
    return CheckReport(loaded=loaded, jobs=reports, file_problems=file_problems)
