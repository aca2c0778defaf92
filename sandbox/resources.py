"""The resource types the sandbox serves, and how a request path names one.

One registry drives routing, storage keys, RBAC resource names and the discovery documents, so a
type added here is served, listed by ``kubectl api-resources`` and authorizable at once.
Custom resources are stored generically: the server knows nothing of their schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # The status subresource exists: main-endpoint writes keep the stored status.
    has_status: bool = False
    # Deleting without a propagationPolicy orphans dependents (batch/v1 Jobs do, for history).
    default_orphan: bool = False
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def key(self) -> str:
        """Storage key: ``plural.group`` (``pods`` for the core group)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


def _core(plural: str, kind: str, **kwargs: object) -> ResourceType:
    return ResourceType("", "v1", plural, kind, **kwargs)  # type: ignore[arg-type]


BUILTIN: tuple[ResourceType, ...] = (
    _core(
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        subresources=("status", "finalize"),
        has_status=True,
    ),
    _core(
        "pods",
        "Pod",
        short_names=("po",),
        subresources=("status", "log", "eviction"),
        categories=("all",),
        has_status=True,
    ),
    _core("secrets", "Secret"),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",), subresources=("token",)),
    _core("events", "Event", short_names=("ev",)),
    _core(
        "services",
        "Service",
        short_names=("svc",),
        categories=("all",),
        has_status=True,
        subresources=("status",),
    ),
    _core(
        "nodes",
        "Node",
        namespaced=False,
        short_names=("no",),
        has_status=True,
        subresources=("status",),
    ),
    ResourceType(
        "batch",
        "v1",
        "jobs",
        "Job",
        categories=("all",),
        has_status=True,
        subresources=("status",),
        default_orphan=True,
    ),
    ResourceType(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        short_names=("cj",),
        categories=("all",),
        has_status=True,
        subresources=("status",),
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False
    ),
    ResourceType(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        namespaced=False,
        verbs=("create",),
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        namespaced=False,
        verbs=("create",),
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        has_status=True,
        subresources=("status",),
    ),
    ResourceType(
        "argoproj.io",
        "v1alpha1",
        "workflows",
        "Workflow",
        short_names=("wf",),
        categories=("all", "argo"),
    ),
    ResourceType(
        "argoproj.io",
        "v1alpha1",
        "workflowtemplates",
        "WorkflowTemplate",
        short_names=("wftmpl",),
        categories=("argo",),
    ),
    ResourceType(
        "argoproj.io",
        "v1alpha1",
        "clusterworkflowtemplates",
        "ClusterWorkflowTemplate",
        namespaced=False,
        short_names=("clusterwftmpl", "cwft"),
        categories=("argo",),
    ),
    ResourceType(
        "argoproj.io",
        "v1alpha1",
        "cronworkflows",
        "CronWorkflow",
        short_names=("cwf", "cronwf"),
        categories=("argo",),
    ),
    ResourceType(
        "argoproj.io", "v1alpha1", "workflowtaskresults", "WorkflowTaskResult", categories=("argo",)
    ),
    ResourceType(
        "argoproj.io",
        "v1alpha1",
        "eventsources",
        "EventSource",
        short_names=("es",),
        categories=("argo-events",),
    ),
    ResourceType(
        "argoproj.io",
        "v1alpha1",
        "sensors",
        "Sensor",
        short_names=("sn",),
        categories=("argo-events",),
    ),
    ResourceType(
        "argoproj.io",
        "v1alpha1",
        "eventbus",
        "EventBus",
        short_names=("eb",),
        categories=("argo-events",),
    ),
)


@dataclass
class Registry:
    """Resource types by (group, version, plural); custom resource definitions add to it."""

    types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)

    @classmethod
    def default(cls) -> Registry:
        registry = cls()
        for rtype in BUILTIN:
            registry.add(rtype)
        return registry

    def add(self, rtype: ResourceType) -> None:
        self.types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def remove(self, group: str, version: str, plural: str) -> None:
        self.types.pop((group, version, plural), None)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version, plural))

    def by_key(self, key: str) -> ResourceType | None:
        """The type stored under ``key`` (``pods``, ``jobs.batch``)."""
        for rtype in self.types.values():
            if rtype.key == key:
                return rtype
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rtype in self.types.values():
            if rtype.group == group and rtype.version == version and rtype.kind == kind:
                return rtype
        return None

    def groups(self) -> dict[str, list[str]]:
        """group → versions ("" is the core group)."""
        out: dict[str, list[str]] = {}
        for group, version, _ in self.types:
            versions = out.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for (g, v, _), t in sorted(self.types.items()) if g == group and v == version]
