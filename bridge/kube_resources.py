"""Where each kind lives in the Kubernetes REST API, and how a call on it is named.

:class:`Resource` descriptors let one generic adapter (:mod:`bridge.kube`) cover core, batch
and custom resources (Argo Workflows) alike; the constants are the kinds the product uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

JSON = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API. ``group`` is "" for the core group."""

    group: str
    version: str
    plural: str
    namespaced: bool = True
    kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        return base


NAMESPACES: Final = Resource("", "v1", "namespaces", namespaced=False, kind="Namespace")
JOBS: Final = Resource("batch", "v1", "jobs", kind="Job")
PODS: Final = Resource("", "v1", "pods", kind="Pod")
SECRETS: Final = Resource("", "v1", "secrets", kind="Secret")
CONFIGMAPS: Final = Resource("", "v1", "configmaps", kind="ConfigMap")
SERVICEACCOUNTS: Final = Resource("", "v1", "serviceaccounts", kind="ServiceAccount")
EVENTS: Final = Resource("", "v1", "events", kind="Event")
WORKFLOWS: Final = Resource("argoproj.io", "v1alpha1", "workflows", kind="Workflow")
WORKFLOWTEMPLATES: Final = Resource(
    "argoproj.io", "v1alpha1", "workflowtemplates", kind="WorkflowTemplate"
)


def describe(resource: Resource, verb: str, namespace: str | None, name: str | None) -> str:
    """What a call does, for its error messages: "get jobs team-a/schema"."""
    where = f"{namespace}/{name}" if namespace and name else (name or namespace or "")
    return f"{verb} {resource.plural}{' ' + where if where else ''}"


def fill_type(obj: JSON, resource: Resource) -> None:
    # List items come without kind/apiVersion; fill them so messages can say "Job team/name".
    if resource.kind:
        obj.setdefault("kind", resource.kind)
        obj.setdefault("apiVersion", resource.api_version)
