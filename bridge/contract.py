"""The lifecycle contract: what makes a ``batch/v1`` Job a lifecycle participant.

Teams opt a Job in with a label and a few annotations (see ``docs/contract.md``); everything here
turns such a Job (a plain JSON dict, as the API server or a YAML file gives it) into a
:class:`Participant`, or into a list of :class:`Problem` values that say, for each mistake, which
object, which field, what is wrong and how to fix it. All problems of a Job are reported together
so that a team fixes its manifest in one round trip, not one error at a time.

This module is pure: no I/O, no Kubernetes client. Discovery, the bridge (which re-checks every
Job it is told to run), ``tenantctl validate`` and ``tenantctl plan`` all call :func:`check_job`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from .errors import UsageError

DEFAULT_PREFIX = "tenant-lifecycle.dev"

KNOWN_OPERATIONS: frozenset[str] = frozenset(
    {
        "lifecycle.upsert",
        "lifecycle.suspend",
        "lifecycle.resume",
        "lifecycle.backup",
        "lifecycle.restore",
        "lifecycle.migrate-out",
        "lifecycle.migrate-in",
        "lifecycle.decommission",
    }
)
# Operations that receive an object-storage location (LIFECYCLE_OBJECT_STORE_URL and friends).
STORAGE_OPERATIONS: frozenset[str] = frozenset(
    {"lifecycle.backup", "lifecycle.restore", "lifecycle.migrate-out", "lifecycle.migrate-in"}
)
# The namespace reserved for the platform's own operations; teams use ``<team>.<operation>``.
RESERVED_OPERATION_NAMESPACE = "lifecycle"

MAX_WAVE = 1000
MAX_BACKOFF_LIMIT = 100
# Operation names end up in a pod label value (``<prefix>/operation``): at most 63 characters.
MAX_OPERATION_LENGTH = 63
POD_FAILURE_ACTIONS = ("FailJob", "Ignore", "Count", "FailIndex")
EXIT_CODE_OPERATORS = ("In", "NotIn")
MAX_EXIT_CODE_VALUES = 255  # Kubernetes' limit on onExitCodes.values
MAX_POD_FAILURE_RULES = 20  # Kubernetes' limit on podFailurePolicy.rules

_SEGMENT = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_OPERATION_RE = re.compile(rf"^{_SEGMENT}\.{_SEGMENT}$")
_SEGMENT_RE = re.compile(rf"^{_SEGMENT}$")
_APPLICATION_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_KEY_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_INTEGER_RE = re.compile(r"^[+-]?[0-9]+$")

_E = TypeVar("_E", bound=StrEnum)

ENABLED_VALUE = "true"
# ``enabled: "false"`` switches a Job off explicitly without removing its annotations.
DISABLED_VALUE = "false"


def _qualified_name_problem(key: str) -> str | None:
    """Why ``key`` is not a valid Kubernetes label/annotation key, or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return f"the prefix {prefix!r} is not a DNS subdomain (lowercase, dots and dashes)"
    if not name or len(name) > 63 or not _KEY_NAME_RE.match(name):
        return f"the name part {name!r} must be 1-63 characters of letters, digits, '-', '_', '.'"
    return None


@dataclass(frozen=True)
class ContractSettings:
    """Which keys the contract reads. Loaded once at the entry point and passed in.

    ``prefix`` is the DNS prefix of every label and annotation key. ``legacy_key`` (e.g.
    ``collibra.com/tenant.lifecycle``), when set, is a single annotation listing operations that
    is honoured in place of (or alongside) ``<prefix>/operations``.
    """

    prefix: str = DEFAULT_PREFIX
    legacy_key: str | None = None

    def __post_init__(self) -> None:
        if not self.prefix or len(self.prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(self.prefix):
            raise UsageError(
                f"invalid contract prefix {self.prefix!r}",
                hint="use a DNS subdomain such as tenant-lifecycle.dev (lowercase, dots, dashes)",
            )
        if self.legacy_key is not None:
            problem = _qualified_name_problem(self.legacy_key)
            if problem:
                raise UsageError(
                    f"invalid legacy key {self.legacy_key!r}: {problem}",
                    hint="use an annotation key such as collibra.com/tenant.lifecycle",
                )

    @property
    def enabled_label(self) -> str:
        return f"{self.prefix}/enabled"

    @property
    def operations_key(self) -> str:
        return f"{self.prefix}/operations"

    @property
    def wave_key(self) -> str:
        return f"{self.prefix}/wave"

    @property
    def applications_key(self) -> str:
        return f"{self.prefix}/applications"

    @property
    def delete_policy_key(self) -> str:
        return f"{self.prefix}/delete-policy"

    @property
    def on_failure_key(self) -> str:
        return f"{self.prefix}/on-failure"

    @property
    def annotation_keys(self) -> tuple[str, ...]:
        """Every annotation key the contract knows (used to catch typos)."""
        return (
            self.operations_key,
            self.wave_key,
            self.applications_key,
            self.delete_policy_key,
            self.on_failure_key,
        )

    def label_selector(self) -> str:
        """The server-side selector discovery lists Jobs and Namespaces with."""
        return f"{self.enabled_label}={ENABLED_VALUE}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one object, with the way to fix it."""

    object: str
    field: str
    message: str
    fix: str
    source: str = ""

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.object}: {self.field}: {self.message} (fix: {self.fix})"

    def to_json(self) -> dict[str, str]:
        return {
            "source": self.source,
            "object": self.object,
            "field": self.field,
            "message": self.message,
            "fix": self.fix,
        }


class DeletePolicy(StrEnum):
    """When the bridge deletes the pod it created."""

    SUCCEEDED = "succeeded"
    ALWAYS = "always"
    NEVER = "never"


class OnFailure(StrEnum):
    """What a failure of this job does to the rest of the operation."""

    ABORT = "abort"
    CONTINUE = "continue"


@dataclass(frozen=True)
class PodFailureRule:
    """One ``podFailurePolicy`` rule; the exit-code part parsed, pod conditions kept raw."""

    action: str
    container_name: str | None = None
    operator: str | None = None
    values: tuple[int, ...] = ()
    on_pod_conditions: tuple[dict[str, Any], ...] = ()

    def matches_exit(self, container: str, exit_code: int) -> bool:
        """Whether this rule's ``onExitCodes`` matches ``container`` ending with ``exit_code``.

        Kubernetes only applies exit-code rules to containers that failed, so a 0 never matches
        (``NotIn`` would otherwise match every successful container).
        """
        if self.operator is None or exit_code == 0:
            return False
        if self.container_name is not None and self.container_name != container:
            return False
        if self.operator == "In":
            return exit_code in self.values
        return exit_code not in self.values


@dataclass(frozen=True)
class Participant:
    """A Job that satisfies the contract, with the settings the bridge and planner act on."""

    namespace: str
    name: str
    operations: tuple[str, ...]
    wave: int = 0
    applications: tuple[str, ...] = ()
    delete_policy: DeletePolicy = DeletePolicy.SUCCEEDED
    on_failure: OnFailure = OnFailure.ABORT
    backoff_limit: int = 6  # Kubernetes' default when unset
    active_deadline_seconds: int | None = None
    pod_failure_rules: tuple[PodFailureRule, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def takes_part_in(self, operation: str) -> bool:
        return operation in self.operations

    def runs_for(self, applications: Sequence[str] | None) -> bool:
        """The applications filter: a job without applications runs for every tenant.

        ``applications`` is the tenant environment's list; None means "unknown" (no filter).
        """
        if not self.applications or applications is None:
            return True
        return any(app in self.applications for app in applications)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def job_display(job: Any) -> str:
    """``"Job <namespace>/<name>"`` for messages; tolerant of malformed objects."""
    namespace, name = job_identity(job)
    return f"Job {namespace}/{name}"


def job_identity(job: Any) -> tuple[str, str]:
    """(namespace, name) of a Job dict; namespace defaults to ``default`` like kubectl."""
    meta = job.get("metadata") if isinstance(job, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    namespace = meta.get("namespace")
    name = meta.get("name")
    return (
        namespace if isinstance(namespace, str) and namespace else "default",
        name if isinstance(name, str) and name else "<unnamed>",
    )


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
    return bool(labels) and labels is not None and labels.get(settings.enabled_label) == "true"


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


def operation_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid operation name, or None when it is.

    Valid: ``segment.segment`` where each segment is lowercase letters, digits and dashes (not
    starting or ending with a dash); ``lifecycle.*`` must be one of :data:`KNOWN_OPERATIONS`.
    """
    if not isinstance(name, str):
        return f"operation names are strings, not {type(name).__name__}"
    if not name:
        return "empty operation name"
    if any(ch.isspace() for ch in name):
        return f"operation name {name!r} contains whitespace"
    if "." not in name:
        return f"operation name {name!r} has no dot: use <namespace>.<operation>"
    if len(name) > MAX_OPERATION_LENGTH:
        return f"operation name {name!r} is longer than {MAX_OPERATION_LENGTH} characters"
    if not _OPERATION_RE.match(name):
        segments = name.split(".")
        if "" in segments:
            return (
                f"operation name {name!r} has an empty segment (a leading, trailing or double dot)"
            )
        if len(segments) != 2:
            return f"operation name {name!r} must have exactly one dot (<namespace>.<operation>)"
        bad = next(s for s in segments if not _SEGMENT_RE.match(s))
        return (
            f"operation name {name!r}: segment {bad!r} must be lowercase letters, digits and "
            "dashes, starting and ending with a letter or digit"
        )
    if name.startswith(f"{RESERVED_OPERATION_NAMESPACE}.") and name not in KNOWN_OPERATIONS:
        return f"unknown operation {name!r}; known: {', '.join(sorted(KNOWN_OPERATIONS))}"
    return None


# --------------------------------------------------------------------------------------------
# check_job
# --------------------------------------------------------------------------------------------


@dataclass
class _Checker:
    """Collects the problems of one Job; one instance per :func:`check_job` call."""

    object: str
    source: str
    problems: list[Problem] = field(default_factory=list)

    def add(self, path: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.object, path, message, fix, self.source))


def _annotation_path(key: str) -> str:
    return f"metadata.annotations[{key}]"


def _label_path(key: str) -> str:
    return f"metadata.labels[{key}]"


def _string_value(c: _Checker, path: str, value: Any) -> str | None:
    """Annotation values must be strings: an unquoted YAML ``1`` or ``true`` is rejected by
    Kubernetes, so say so here rather than let ``kubectl apply`` fail later."""
    if isinstance(value, str):
        return value
    shown = "true" if value is True else "false" if value is False else repr(value)
    c.add(
        path,
        f"value {shown} is a {type(value).__name__}, but Kubernetes label and annotation values "
        "are strings",
        f'quote it: "{shown}"',
    )
    return None


def _parse_operations(c: _Checker, path: str, raw: str) -> tuple[str, ...]:
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
    c: _Checker, annotations: Mapping[str, Any], settings: ContractSettings
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


def _check_wave(c: _Checker, annotations: Mapping[str, Any], key: str) -> int:
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


def _check_applications(c: _Checker, annotations: Mapping[str, Any], key: str) -> tuple[str, ...]:
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
            "list applications (e.g. catalog,search), or remove the annotation to run for "
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
    c: _Checker, annotations: Mapping[str, Any], key: str, enum: type[_E], default: _E
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
        f"{hint} (default {default.value})",
    )
    return default


def _is_int(value: Any) -> bool:
    # YAML booleans are ints in Python; a ``true`` is never a count.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_exit_codes(
    c: _Checker, path: str, raw: Any
) -> tuple[str | None, str | None, tuple[int, ...]]:
    if not isinstance(raw, Mapping):
        c.add(path, "onExitCodes must be a mapping", "give operator: In|NotIn and values: [..]")
        return None, None, ()
    container = raw.get("containerName")
    if container is not None and not isinstance(container, str):
        c.add(f"{path}.containerName", "containerName must be a string", "name a container")
        container = None
    operator = raw.get("operator")
    if operator not in EXIT_CODE_OPERATORS:
        c.add(
            f"{path}.operator",
            f"operator {operator!r} is not In or NotIn",
            "use operator: In (codes that trigger the action) or NotIn",
        )
        operator = None
    values = raw.get("values")
    codes: list[int] = []
    if not isinstance(values, list) or not values:
        c.add(
            f"{path}.values",
            "values must be a non-empty list of exit codes",
            "list the exit codes, e.g. values: [42]",
        )
        return container, operator, ()
    if len(values) > MAX_EXIT_CODE_VALUES:
        c.add(
            f"{path}.values",
            f"{len(values)} exit codes; Kubernetes allows at most {MAX_EXIT_CODE_VALUES}",
            "use NotIn with the complement, or fewer codes",
        )
    for index, value in enumerate(values):
        vpath = f"{path}.values[{index}]"
        if not _is_int(value):
            c.add(vpath, f"exit code {value!r} is not an integer", "use whole numbers 0-255")
            continue
        if operator == "In" and value == 0:
            c.add(
                vpath,
                "exit code 0 is not allowed with operator In (Kubernetes rule: a successful "
                "container never triggers a rule)",
                "remove 0 from the list",
            )
        if value in codes:
            c.add(vpath, f"exit code {value} is listed twice", f"list {value} once")
        elif codes and value < codes[-1]:
            c.add(vpath, "exit codes must be in ascending order (Kubernetes rule)", "sort the list")
        codes.append(value)
    return container, operator, tuple(sorted(set(codes)))


def _container_names(pod_spec: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for key in ("initContainers", "containers"):
        items = pod_spec.get(key)
        if isinstance(items, list):
            names += [
                i["name"]
                for i in items
                if isinstance(i, Mapping) and isinstance(i.get("name"), str)
            ]
    return names


def _check_pod_failure_policy(
    c: _Checker, spec: Mapping[str, Any], pod_spec: Mapping[str, Any]
) -> tuple[PodFailureRule, ...]:
    if "podFailurePolicy" not in spec or spec["podFailurePolicy"] is None:
        return ()
    path = "spec.podFailurePolicy"
    policy = spec["podFailurePolicy"]
    if not isinstance(policy, Mapping) or not isinstance(policy.get("rules"), list):
        c.add(path, "podFailurePolicy must be a mapping with a rules list", "give rules: [..]")
        return ()
    restart = pod_spec.get("restartPolicy")
    if restart != "Never":
        c.add(
            "spec.template.spec.restartPolicy",
            f"restartPolicy is {restart!r}, but a podFailurePolicy requires Never "
            "(Kubernetes rule)",
            "set spec.template.spec.restartPolicy: Never",
        )
    rules_raw = policy["rules"]
    if len(rules_raw) > MAX_POD_FAILURE_RULES:
        c.add(
            f"{path}.rules",
            f"{len(rules_raw)} rules; Kubernetes allows at most {MAX_POD_FAILURE_RULES}",
            "merge rules",
        )
    rules: list[PodFailureRule] = []
    for index, rule in enumerate(rules_raw):
        rpath = f"{path}.rules[{index}]"
        if not isinstance(rule, Mapping):
            c.add(rpath, "a rule must be a mapping", "give action and onExitCodes/onPodConditions")
            continue
        action = rule.get("action")
        if action not in POD_FAILURE_ACTIONS:
            c.add(
                f"{rpath}.action",
                f"action {action!r} is not one of {', '.join(POD_FAILURE_ACTIONS)}",
                "use FailJob (stop retrying), Ignore (do not count) or Count",
            )
            action = None
        elif action == "FailIndex":
            c.add(
                f"{rpath}.action",
                "FailIndex needs an Indexed Job with backoffLimitPerIndex, which the bridge "
                "does not run",
                "use FailJob",
            )
        has_codes = rule.get("onExitCodes") is not None
        conditions_raw = rule.get("onPodConditions")
        has_conditions = conditions_raw not in (None, [])
        if has_codes == has_conditions:
            c.add(
                rpath,
                "a rule needs exactly one of onExitCodes and onPodConditions",
                "keep one of them (split the rule in two if you need both)",
            )
        container: str | None = None
        operator: str | None = None
        values: tuple[int, ...] = ()
        if has_codes:
            container, operator, values = _check_exit_codes(
                c, f"{rpath}.onExitCodes", rule["onExitCodes"]
            )
            names = _container_names(pod_spec)
            if container is not None and names and container not in names:
                c.add(
                    f"{rpath}.onExitCodes.containerName",
                    f"no container named {container!r} in the pod template",
                    f"use one of {', '.join(names)}, or remove containerName to match any",
                )
        conditions: list[dict[str, Any]] = []
        if has_conditions:
            if not isinstance(conditions_raw, list):
                c.add(
                    f"{rpath}.onPodConditions", "must be a list", "give [{type: DisruptionTarget}]"
                )
            else:
                for cindex, cond in enumerate(conditions_raw):
                    if not isinstance(cond, Mapping) or not isinstance(cond.get("type"), str):
                        c.add(
                            f"{rpath}.onPodConditions[{cindex}]",
                            "a pod condition needs a type",
                            "e.g. {type: DisruptionTarget}",
                        )
                    else:
                        conditions.append(dict(cond))
        if action is not None:
            rules.append(
                PodFailureRule(
                    action=action,
                    container_name=container,
                    operator=operator,
                    values=values,
                    on_pod_conditions=tuple(conditions),
                )
            )
    return tuple(rules)


def _check_spec(
    c: _Checker, job: Mapping[str, Any]
) -> tuple[int, int | None, tuple[PodFailureRule, ...]]:
    spec = job.get("spec")
    if not isinstance(spec, Mapping):
        c.add(
            "spec.suspend",
            "the Job has no spec, so it is not suspended",
            "add spec.suspend: true and the pod template",
        )
        return 6, None, ()
    suspend = spec.get("suspend")
    if suspend is not True:
        if suspend is None:
            message = (
                "spec.suspend is missing: the Job would run by itself as soon as it is applied"
            )
        elif suspend is False:
            message = "spec.suspend is false: the Job would run by itself"
        else:
            message = f"spec.suspend is {suspend!r}, not the boolean true"
        c.add(
            "spec.suspend",
            message,
            "set spec.suspend: true (the bridge runs the pod template; Kubernetes must not)",
        )

    backoff_limit = 6
    if spec.get("backoffLimit") is not None:
        raw = spec["backoffLimit"]
        if not _is_int(raw) or raw < 0:
            c.add(
                "spec.backoffLimit",
                f"backoffLimit {raw!r} is not a non-negative integer",
                "use a whole number of retries, e.g. 2 (Kubernetes' default is 6)",
            )
        elif raw > MAX_BACKOFF_LIMIT:
            c.add(
                "spec.backoffLimit",
                f"backoffLimit {raw} is more than {MAX_BACKOFF_LIMIT} retries",
                f"use at most {MAX_BACKOFF_LIMIT}; a job failing that often will not recover",
            )
        else:
            backoff_limit = raw

    deadline: int | None = None
    if spec.get("activeDeadlineSeconds") is not None:
        raw = spec["activeDeadlineSeconds"]
        if not _is_int(raw) or raw <= 0:
            c.add(
                "spec.activeDeadlineSeconds",
                f"activeDeadlineSeconds {raw!r} is not a positive integer",
                "use a number of seconds greater than 0, or remove it",
            )
        else:
            deadline = raw

    # The bridge runs exactly one pod at a time: parallel or indexed Jobs mean something else.
    for key in ("parallelism", "completions"):
        value = spec.get(key)
        if value is not None and value != 1:
            c.add(
                f"spec.{key}",
                f"{key} is {value!r}; the bridge runs one pod per attempt",
                f"remove spec.{key} (or set it to 1)",
            )
    mode = spec.get("completionMode")
    if mode not in (None, "NonIndexed"):
        c.add(
            "spec.completionMode",
            f"completionMode {mode!r} is not supported by the bridge",
            "remove spec.completionMode",
        )

    template = spec.get("template")
    template_spec = template.get("spec") if isinstance(template, Mapping) else None
    pod_spec: Mapping[str, Any] = template_spec if isinstance(template_spec, Mapping) else {}
    restart = pod_spec.get("restartPolicy")
    if restart is not None and restart not in ("Never", "OnFailure"):
        c.add(
            "spec.template.spec.restartPolicy",
            f"restartPolicy {restart!r} is not allowed in a Job (Kubernetes rule)",
            "use Never (the bridge counts each failed pod as one attempt)",
        )
    rules = _check_pod_failure_policy(c, spec, pod_spec)
    return backoff_limit, deadline, tuple(rules)


def _check_typos(c: _Checker, annotations: Mapping[str, Any], settings: ContractSettings) -> None:
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
    c = _Checker(job_display(job), source)
    if not isinstance(job, Mapping):
        c.add("", f"expected a Job object, got {type(job).__name__}", "give a batch/v1 Job")
        return None, c.problems
    if not is_participant_candidate(job, settings=settings):
        return None, []
    namespace, name = job_identity(job)
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

    operations = _check_operations(c, annotations, settings)
    if operations is None:
        c.add(
            _annotation_path(settings.operations_key),
            f"the Job has the label {settings.enabled_label} but no operations annotation, so "
            "it takes part in nothing",
            f'add the annotation {settings.operations_key}: "lifecycle.upsert" (comma list), '
            f"or remove the label",
        )
    wave = _check_wave(c, annotations, settings.wave_key)
    applications = _check_applications(c, annotations, settings.applications_key)
    delete_policy = _check_choice(
        c, annotations, settings.delete_policy_key, DeletePolicy, DeletePolicy.SUCCEEDED
    )
    on_failure = _check_choice(c, annotations, settings.on_failure_key, OnFailure, OnFailure.ABORT)
    _check_typos(c, annotations, settings)
    backoff_limit, deadline, rules = _check_spec(c, job)

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
