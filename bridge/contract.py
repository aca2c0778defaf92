"""The lifecycle contract: what makes a ``batch/v1`` Job a lifecycle participant.

Teams opt a Job in with a label and a few annotations (see ``docs/contract.md``); everything here
turns such a Job (a plain JSON dict, as the API server or a YAML file gives it) into a
:class:`Participant`, or into a list of :class:`Problem` values that say, for each mistake, which
object, which field, what is wrong and how to fix it. All problems of a Job are reported together
so that a team fixes its manifest in one round trip, not one error at a time.

This module is pure: no I/O, no Kubernetes client. Discovery, the bridge (which re-checks every
Job it is told to run), ``tenantctl validate`` and ``tenantctl plan`` all call :func:`check_job`.

Layout: the vocabulary (settings, :class:`Participant`, :class:`Problem`, operation names) is in
:mod:`bridge.contract_model`, the Job-spec rules in :mod:`bridge.contract_jobspec`; this module
holds the label and annotation rules and :func:`check_job`, and re-exports the public names, so
``from bridge.contract import ...`` is the one import callers need.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from .contract_jobspec import check_job_spec
from .contract_model import (
    DEFAULT_PREFIX,
    DISABLED_VALUE,
    ENABLED_VALUE,
    EXIT_CODE_OPERATORS,
    KNOWN_OPERATIONS,
    MAX_BACKOFF_LIMIT,
    MAX_OPERATION_LENGTH,
    MAX_WAVE,
    POD_FAILURE_ACTIONS,
    RESERVED_OPERATION_NAMESPACE,
    STORAGE_OPERATIONS,
    ContractSettings,
    DeletePolicy,
    OnFailure,
    Participant,
    PodFailureRule,
    Problem,
    ProblemCollector,
    job_display,
    job_identity,
    operation_name_problem,
)

__all__ = [
    "DEFAULT_PREFIX",
    "DISABLED_VALUE",
    "ENABLED_VALUE",
    "EXIT_CODE_OPERATORS",
    "KNOWN_OPERATIONS",
    "MAX_BACKOFF_LIMIT",
    "MAX_OPERATION_LENGTH",
    "MAX_WAVE",
    "POD_FAILURE_ACTIONS",
    "RESERVED_OPERATION_NAMESPACE",
    "STORAGE_OPERATIONS",
    "ContractSettings",
    "DeletePolicy",
    "OnFailure",
    "Participant",
    "PodFailureRule",
    "Problem",
    "check_job",
    "is_namespace_opted_in",
    "is_participant_candidate",
    "job_display",
    "job_identity",
    "operation_name_problem",
]

_APPLICATION_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_INTEGER_RE = re.compile(r"^[+-]?[0-9]+$")
_E = TypeVar("_E", bound=StrEnum)


def _string_map(obj: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """``metadata.<key>`` as a mapping; None when it is not a mapping at all."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return {}
    value = meta.get(key)
    if value is None:
        return {}
    return value if isinstance(value, Mapping) else None


def is_namespace_opted_in(namespace: Mapping[str, Any], *, settings: ContractSettings) -> bool:
    """Whether a Namespace carries ``<prefix>/enabled: "true"`` (the managed-namespace pattern)."""
    labels = _string_map(namespace, "labels") if isinstance(namespace, Mapping) else None
    return labels is not None and labels.get(settings.enabled_label) == ENABLED_VALUE


def is_participant_candidate(job: Mapping[str, Any], *, settings: ContractSettings) -> bool:
    """Whether the Job means to take part: the enabled label or an operations annotation.

    A Job labelled ``enabled: "false"`` is switched off explicitly and is not a candidate.
    """
    if not isinstance(job, Mapping):
        return False
    labels = _string_map(job, "labels") or {}
    annotations = _string_map(job, "annotations") or {}
    label = labels.get(settings.enabled_label)
    if label == DISABLED_VALUE:
        return False
    if settings.enabled_label in labels:
        return True
    keys = [settings.operations_key]
    if settings.legacy_key:
        keys.append(settings.legacy_key)
    return any(key in annotations for key in keys)


def _annotation_path(key: str) -> str:
    return f"metadata.annotations[{key}]"


def _label_path(key: str) -> str:
    return f"metadata.labels[{key}]"


def _string_value(c: ProblemCollector, path: str, value: Any) -> str | None:
    """Annotation values must be strings: an unquoted YAML ``1`` or ``true`` is rejected by
    Kubernetes, so say so here rather than let ``kubectl apply`` fail later."""
    if isinstance(value, str):
        return value
    shown = "true" if value is True else "false" if value is False else repr(value)
    c.add(
        path,
        f"value {shown} is not a string: Kubernetes label and annotation values are strings",
        f'quote it: "{shown}"',
    )
    return None


def _parse_operations(c: ProblemCollector, path: str, raw: str) -> tuple[str, ...]:
    if not raw.strip():
        c.add(
            path,
            "the operations list is empty",
            "list at least one operation, e.g. lifecycle.upsert,lifecycle.decommission",
        )
        return ()
    operations: list[str] = []
    for position, item in enumerate(raw.split(","), start=1):
        name = item.strip()
        if not name:
            c.add(
                path,
                f"item {position} of {raw!r} is empty",
                "remove the stray comma: items are separated by single commas",
            )
            continue
        problem = operation_name_problem(name)
        if problem:
            if any(ch.isspace() for ch in name):
                fix = "separate operations with commas and remove spaces inside names"
            elif "." not in name:
                fix = f"use a dotted name: lifecycle.{name} or <team>.{name}"
            elif name.startswith(f"{RESERVED_OPERATION_NAMESPACE}."):
                close = difflib.get_close_matches(name, sorted(KNOWN_OPERATIONS), n=1, cutoff=0.8)
                fix = (
                    f"did you mean {close[0]}? " if close else "use a known lifecycle operation or "
                )
                fix += "team operations are named <team>.<operation>"
            else:
                fix = "use lowercase letters, digits and dashes: <namespace>.<operation>"
            c.add(path, problem, fix)
            continue
        if name in operations:
            c.add(path, f"operation {name!r} is listed twice", f"list {name} once")
            continue
        operations.append(name)
    return tuple(operations)


def _check_operations(
    c: ProblemCollector, annotations: Mapping[str, Any], settings: ContractSettings
) -> tuple[str, ...] | None:
    """The operations from ``<prefix>/operations`` and/or the legacy key; None when absent."""
    found: dict[str, tuple[str, ...]] = {}
    keys = [settings.operations_key]
    if settings.legacy_key and settings.legacy_key != settings.operations_key:
        keys.append(settings.legacy_key)
    for key in keys:
        if key not in annotations:
            continue
        raw = _string_value(c, _annotation_path(key), annotations[key])
        if raw is not None:
            found[key] = _parse_operations(c, _annotation_path(key), raw)
    if not found:
        return None
    values = list(found.values())
    if len(values) == 2 and set(values[0]) != set(values[1]):
        c.add(
            _annotation_path(settings.operations_key),
            f"lists {', '.join(values[0]) or 'nothing'} but the legacy annotation "
            f"{settings.legacy_key} lists {', '.join(values[1]) or 'nothing'}",
            "keep one of the two annotations, or make them list the same operations",
        )
    return values[0]


def _check_wave(c: ProblemCollector, annotations: Mapping[str, Any], key: str) -> int:
    if key not in annotations:
        return 0
    path = _annotation_path(key)
    raw = _string_value(c, path, annotations[key])
    if raw is None:
        return 0
    text = raw.strip()
    if not _INTEGER_RE.match(text):
        c.add(
            path,
            f"wave {raw!r} is not an integer",
            f'use a whole number between -{MAX_WAVE} and {MAX_WAVE}, e.g. "0" or "-1"',
        )
        return 0
    wave = int(text)
    if abs(wave) > MAX_WAVE:
        c.add(
            path,
            f"wave {wave} is outside -{MAX_WAVE}..{MAX_WAVE}",
            f"use a wave between -{MAX_WAVE} and {MAX_WAVE}",
        )
        return 0
    return wave


def _check_applications(
    c: ProblemCollector, annotations: Mapping[str, Any], key: str
) -> tuple[str, ...]:
    if key not in annotations:
        return ()
    path = _annotation_path(key)
    raw = _string_value(c, path, annotations[key])
    if raw is None:
        return ()
    if not raw.strip():
        c.add(
            path,
            "the applications list is empty",
            "list applications, e.g. catalog,search; or remove the annotation to run for "
            "every tenant",
        )
        return ()
    applications: list[str] = []
    for position, item in enumerate(raw.split(","), start=1):
        app = item.strip()
        if not app:
            c.add(path, f"item {position} of {raw!r} is empty", "remove the stray comma")
        elif not _APPLICATION_RE.match(app):
            c.add(
                path,
                f"application {app!r} is not a plain name",
                "use letters, digits, '.', '_' and '-', separated by commas",
            )
        elif app in applications:
            c.add(path, f"application {app!r} is listed twice", f"list {app} once")
        else:
            applications.append(app)
    return tuple(applications)


def _check_choice(
    c: ProblemCollector, annotations: Mapping[str, Any], key: str, enum: type[_E], default: _E
) -> _E:
    if key not in annotations:
        return default
    path = _annotation_path(key)
    raw = _string_value(c, path, annotations[key])
    if raw is None:
        return default
    allowed = [member.value for member in enum]
    value = raw.strip()
    if value in allowed:
        return enum(value)
    what = key.rpartition("/")[2]
    close = difflib.get_close_matches(value.lower(), allowed, n=1)
    hint = f"use {close[0]!r}" if close else f"use one of {', '.join(allowed)}"
    c.add(
        path,
        f"unknown {what} {raw!r}; expected one of {', '.join(allowed)}",
        f"{hint}; the default is {default.value}",
    )
    return default


def _check_typos(
    c: ProblemCollector, annotations: Mapping[str, Any], settings: ContractSettings
) -> None:
    """Flag annotation keys that look like a misspelt contract key (``.../wav``, ``.../Wave``)."""
    known = settings.annotation_keys
    for key in annotations:
        if not isinstance(key, str) or key in known or key == settings.legacy_key:
            continue
        if not key.startswith(f"{settings.prefix}/"):
            continue
        # Compare the names after the prefix: the shared prefix would make everything "close".
        names = {k.rpartition("/")[2]: k for k in known}
        close = difflib.get_close_matches(key.rpartition("/")[2].lower(), names, n=1, cutoff=0.75)
        if close:
            c.add(
                _annotation_path(key),
                f"unknown annotation {key!r}, which is ignored",
                f"did you mean {names[close[0]]}?",
            )


def check_job(
    job: Mapping[str, Any], *, settings: ContractSettings, source: str = ""
) -> tuple[Participant | None, list[Problem]]:
    """Check one Job against the contract.

    Returns ``(participant, [])`` for a valid participant, ``(None, problems)`` listing every
    problem found, and ``(None, [])`` for a Job that does not take part at all (neither the
    enabled label nor an operations annotation; see :func:`is_participant_candidate`). Never
    raises on malformed input: a non-mapping is itself a problem.
    """
    c = ProblemCollector(job_display(job), source)
    if not isinstance(job, Mapping):
        c.add("", f"expected a Job object, got {type(job).__name__}", "give a batch/v1 Job")
        return None, c.problems
    if not is_participant_candidate(job, settings=settings):
        return None, []
    namespace, name = job_identity(job)
    labels, annotations = _check_metadata(c, job)
    _check_enabled_label(c, labels, settings)

    operations = _check_operations(c, annotations, settings)
    if operations is None:
        c.add(
            _annotation_path(settings.operations_key),
            f"the Job has the label {settings.enabled_label} but no operations annotation, so "
            "it takes part in nothing",
            f"add the annotation {settings.operations_key}, a comma list such as "
            '"lifecycle.upsert,lifecycle.decommission", or remove the label',
        )
    wave = _check_wave(c, annotations, settings.wave_key)
    applications = _check_applications(c, annotations, settings.applications_key)
    delete_policy = _check_choice(
        c, annotations, settings.delete_policy_key, DeletePolicy, DeletePolicy.SUCCEEDED
    )
    on_failure = _check_choice(c, annotations, settings.on_failure_key, OnFailure, OnFailure.ABORT)
    _check_typos(c, annotations, settings)
    backoff_limit, deadline, rules = check_job_spec(c, job)

    if c.problems or not operations:
        return None, c.problems
    return (
        Participant(
            namespace=namespace,
            name=name,
            operations=operations,
            wave=wave,
            applications=applications,
            delete_policy=delete_policy,
            on_failure=on_failure,
            backoff_limit=backoff_limit,
            active_deadline_seconds=deadline,
            pod_failure_rules=rules,
        ),
        [],
    )


def _check_metadata(
    c: ProblemCollector, job: Mapping[str, Any]
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """The Job's labels and annotations (a malformed map counts as empty), checking its name."""
    meta = job.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str) or not meta["name"]:
        c.add("metadata.name", "the Job has no name", "set metadata.name")
    labels = _string_map(job, "labels")
    annotations = _string_map(job, "annotations")
    if labels is None:
        c.add("metadata.labels", "labels must be a mapping", "write labels as key: value pairs")
        labels = {}
    if annotations is None:
        c.add(
            "metadata.annotations",
            "annotations must be a mapping",
            "write annotations as key: value pairs",
        )
        annotations = {}
    return labels, annotations


def _check_enabled_label(
    c: ProblemCollector, labels: Mapping[str, Any], settings: ContractSettings
) -> None:
    label_path = _label_path(settings.enabled_label)
    operations_keys = settings.operations_key + (
        f" (or {settings.legacy_key})" if settings.legacy_key else ""
    )
    if settings.enabled_label in labels:
        value = _string_value(c, label_path, labels[settings.enabled_label])
        if value is not None and value != ENABLED_VALUE:
            c.add(
                label_path,
                f'label value {value!r} is neither "true" nor "false"',
                f'set {settings.enabled_label}: "true" (or "false" to switch the Job off)',
            )
    else:
        c.add(
            label_path,
            f"the Job has the annotation {operations_keys} but not the label "
            f"{settings.enabled_label}, so discovery would never see it",
            f'add the label {settings.enabled_label}: "true"',
        )
