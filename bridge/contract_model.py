"""The lifecycle contract's vocabulary: settings, the participant a valid Job becomes, and the
structured problems an invalid one produces.

Import these from :mod:`bridge.contract` (which re-exports them); this module exists so that
the rule modules (:mod:`bridge.contract`, :mod:`bridge.contract_jobspec`) share one
definition without importing each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

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


@dataclass
class ProblemCollector:
    """Collects the problems of one object; one instance per check."""

    object: str
    source: str
    problems: list[Problem] = field(default_factory=list)

    def add(self, path: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.object, path, message, fix, self.source))


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
