"""The **region map** is a YAML file (``tenantctl listen --regions FILE``, ``tenantctl migrate
--regions FILE``)::

    defaultRegion: eu-west-1          # optional: where a request without data.region goes
    regions:
      eu-west-1:
        cluster:                      # a kubeconfig (and context) ...
          kubeconfig: /etc/tenantctl/clusters.kubeconfig
          context: eu-west-1
        workflowNamespace: argo       # default: argo
        engine: argo                  # argo (default) | local
        maxInFlight: 4                # submissions to this region at once (default 4)
      us-east-1:
        cluster: {inCluster: true}    # ... or the pod's own service account
        engine: local
        storageConfig: /etc/tenantctl/storage-us.yaml   # local engine: the bridges' storage file

It loads into frozen dataclasses (:class:`RegionMap`, :class:`Region`, :class:`ClusterRef`);
every mistake is a :class:`RegionMapError` naming the file, the region and the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from bridge.errors import UsageError
from bridge.kube import KubeSettings
from orchestrator.events import InvalidEvent
from orchestrator.naming import DEFAULT_WORKFLOW_NAMESPACE

ENGINES: Final = ("argo", "local")
DEFAULT_MAX_IN_FLIGHT: Final = 4
UNKNOWN_REGION: Final = "unknown-region"
MISSING_REGION: Final = "missing-region"

_REGION_NAME_HINT = "lower-case letters, digits and '-', e.g. eu-west-1"
_NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


class RegionMapError(UsageError):
    """The region map file is unreadable or wrong; the message names file, region and field."""


class UnroutableRequest(InvalidEvent):
    """A valid request no configured region can take (reason code ``unknown-region`` or
    ``missing-region``)."""


# --------------------------------------------------------------------------------------------
# the map
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterRef:
    """How to reach one region's Kubernetes API."""

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False

    def kube_settings(self, base: KubeSettings | None = None) -> KubeSettings:
        """``base`` (timeouts, retries) pointed at this cluster."""
        return dataclasses.replace(
            base or KubeSettings(),
            kubeconfig=self.kubeconfig,
            context=self.context,
            in_cluster=self.in_cluster,
        )


@dataclass(frozen=True)
class Region:
    name: str
    cluster: ClusterRef
    workflow_namespace: str = DEFAULT_WORKFLOW_NAMESPACE
    engine: str = "argo"
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    storage_config: str | None = None


@dataclass(frozen=True)
class RegionMap:
    regions: tuple[Region, ...]
    default_region: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        names = [r.name for r in self.regions]
        if not names:
            raise RegionMapError(
                f"{self.source or 'region map'}: regions: no region is configured",
                hint="add at least one region under regions:",
            )
        if len(set(names)) != len(names):
            raise RegionMapError(f"{self.source or 'region map'}: regions: a name is repeated")
        if self.default_region is not None and self.default_region not in names:
            raise RegionMapError(
                f"{self.source or 'region map'}: defaultRegion: {self.default_region!r} is not "
                "one of the regions",
                hint=f"use one of {', '.join(names)}, or leave defaultRegion out",
            )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    def __iter__(self) -> Iterator[Region]:
        return iter(self.regions)

    def get(self, name: str) -> Region:
        """The region called ``name``; :class:`RegionMapError` (a UsageError) otherwise."""
        for region in self.regions:
            if region.name == name:
                return region
        raise RegionMapError(
            f"region {name!r} is not in the region map {self.source}".rstrip(),
            hint=f"use one of {', '.join(self.names)}",
        )

    def resolve(self, region: str | None) -> Region:
        """The region a request goes to; :class:`UnroutableRequest` when there is none."""
        if region is None:
            if self.default_region is None:
                raise UnroutableRequest(
                    MISSING_REGION,
                    "data.region is missing and no default region is configured",
                    field="data.region",
                    hint=f"set data.region to one of {', '.join(self.names)}",
                )
            return self.get(self.default_region)
        for candidate in self.regions:
            if candidate.name == region:
                return candidate
        raise UnroutableRequest(
            UNKNOWN_REGION,
            f"data.region {region!r} is not a region this orchestrator serves",
            field="data.region",
            hint=f"use one of {', '.join(self.names)}",
        )


def load_region_map(path: str | Path) -> RegionMap:
    """Read and check the region map file (relative paths in it are relative to the file)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RegionMapError(
            f"cannot read the region map {source}: {exc.strerror or exc}",
            hint="pass --regions with a YAML file (docs/regions.md)",
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RegionMapError(f"{source}{where}: invalid YAML", hint="see docs/regions.md") from exc
    return parse_region_map(data, source=source, base_dir=Path(path).resolve().parent)


def parse_region_map(data: Any, *, source: str = "", base_dir: Path | None = None) -> RegionMap:
    """Check the decoded YAML document and build the :class:`RegionMap`."""
    where = source or "region map"
    if not isinstance(data, Mapping):
        raise RegionMapError(
            f"{where}: expected a mapping with regions:, got {_type(data)}",
            hint="see docs/regions.md",
        )
    unknown = sorted(set(data) - {"regions", "defaultRegion"})
    if unknown:
        raise RegionMapError(
            f"{where}: unknown key {unknown[0]!r}", hint="the keys are regions and defaultRegion"
        )
    raw_regions = data.get("regions")
    if not isinstance(raw_regions, Mapping) or not raw_regions:
        raise RegionMapError(
            f"{where}: regions: expected a mapping of region name to settings, got "
            f"{_type(raw_regions)}",
            hint="regions: {eu-west-1: {cluster: {context: eu-west-1}}}",
        )
    regions = tuple(
        _parse_region(name, body, where=where, base_dir=base_dir)
        for name, body in raw_regions.items()
    )
    default = data.get("defaultRegion")
    if default is not None and not isinstance(default, str):
        raise RegionMapError(
            f"{where}: defaultRegion: expected a region name, got {_type(default)}"
        )
    return RegionMap(regions=regions, default_region=default, source=source)


_REGION_KEYS = frozenset({"cluster", "workflowNamespace", "engine", "maxInFlight", "storageConfig"})
_CLUSTER_KEYS = frozenset({"kubeconfig", "context", "inCluster"})


def _parse_region(name: Any, body: Any, *, where: str, base_dir: Path | None) -> Region:
    if not isinstance(name, str) or not _valid_region_name(name):
        raise RegionMapError(
            f"{where}: regions: {name!r} is not a region name", hint=_REGION_NAME_HINT
        )
    at = f"{where}: regions.{name}"
    if not isinstance(body, Mapping):
        raise RegionMapError(f"{at}: expected a mapping, got {_type(body)}", hint="cluster: ...")
    unknown = sorted(set(body) - _REGION_KEYS)
    if unknown:
        raise RegionMapError(
            f"{at}: unknown key {unknown[0]!r}",
            hint=f"the keys are {', '.join(sorted(_REGION_KEYS))}",
        )
    cluster = _parse_cluster(body.get("cluster"), at=f"{at}.cluster", base_dir=base_dir)
    namespace = body.get("workflowNamespace", DEFAULT_WORKFLOW_NAMESPACE)
    if not isinstance(namespace, str) or not _valid_namespace(namespace):
        raise RegionMapError(
            f"{at}.workflowNamespace: {namespace!r} is not a namespace name",
            hint="lower-case letters, digits and '-', e.g. argo",
        )
    engine = body.get("engine", "argo")
    if engine not in ENGINES:
        raise RegionMapError(
            f"{at}.engine: {engine!r} is not an engine", hint=f"use one of {', '.join(ENGINES)}"
        )
    limit = body.get("maxInFlight", DEFAULT_MAX_IN_FLIGHT)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise RegionMapError(f"{at}.maxInFlight: {limit!r} must be a whole number, 1 or more")
    storage = _optional_path(body.get("storageConfig"), at=f"{at}.storageConfig", base=base_dir)
    return Region(
        name=name,
        cluster=cluster,
        workflow_namespace=namespace,
        engine=str(engine),
        max_in_flight=limit,
        storage_config=storage,
    )


def _parse_cluster(body: Any, *, at: str, base_dir: Path | None) -> ClusterRef:
    if body is None:
        raise RegionMapError(
            f"{at}: missing",
            hint="give cluster: {kubeconfig: FILE, context: NAME} or {inCluster: true}",
        )
    if not isinstance(body, Mapping):
        raise RegionMapError(f"{at}: expected a mapping, got {_type(body)}")
    unknown = sorted(set(body) - _CLUSTER_KEYS)
    if unknown:
        raise RegionMapError(
            f"{at}: unknown key {unknown[0]!r}", hint="the keys are kubeconfig, context, inCluster"
        )
    in_cluster = body.get("inCluster", False)
    if not isinstance(in_cluster, bool):
        raise RegionMapError(f"{at}.inCluster: expected true or false, got {in_cluster!r}")
    kubeconfig = _optional_path(body.get("kubeconfig"), at=f"{at}.kubeconfig", base=base_dir)
    context = body.get("context")
    if context is not None and (not isinstance(context, str) or not context):
        raise RegionMapError(f"{at}.context: expected a context name, got {context!r}")
    if in_cluster and (kubeconfig or context):
        raise RegionMapError(
            f"{at}: inCluster cannot be combined with kubeconfig/context",
            hint="the pod's own cluster is inCluster, every other one is reached by kubeconfig",
        )
    if not in_cluster and not kubeconfig and not context:
        raise RegionMapError(
            f"{at}: says neither kubeconfig, context nor inCluster",
            hint="give kubeconfig: FILE and/or context: NAME, or inCluster: true",
        )
    return ClusterRef(kubeconfig=kubeconfig, context=context, in_cluster=in_cluster)


def _optional_path(value: Any, *, at: str, base: Path | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RegionMapError(f"{at}: expected a file path, got {value!r}")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path)


def _valid_region_name(name: str) -> bool:
    return (
        0 < len(name) <= 63 and set(name) <= _NAMESPACE_CHARS and name[0] != "-" and name[-1] != "-"
    )


def _valid_namespace(name: str) -> bool:
    return _valid_region_name(name)


def _type(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
