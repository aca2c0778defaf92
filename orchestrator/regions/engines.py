"""Building one region's engine: the one place that does, for ``tenantctl listen`` (one cluster
or a region map) and ``tenantctl migrate`` alike.

An Argo region's engine submits Workflows through the region's Kubernetes client; a local
region's engine runs discovery, waves and bridges in this process against the region's cluster,
with the region's storage file for the bridges' storage hooks.
"""

from __future__ import annotations

from bridge.kube import Kube
from orchestrator.argo.submit import ArgoEngine
from orchestrator.engine import BridgeSettings, EngineSettings, LocalEngine
from orchestrator.engine import local_engine as build_local_engine
from orchestrator.naming import DEFAULT_TEMPLATE
from orchestrator.regions.map import Region
from orchestrator.submit import DEFAULT_PARALLELISM


def argo_engine(
    region: Region,
    kube: Kube,
    *,
    template: str = DEFAULT_TEMPLATE,
    parallelism: int = DEFAULT_PARALLELISM,
) -> ArgoEngine:
    """Workflows from ``template`` in the region's workflow namespace, through ``kube``."""
    return ArgoEngine(
        kube, namespace=region.workflow_namespace, template=template, parallelism=parallelism
    )


def local_engine(region: Region, *, parallelism: int = DEFAULT_PARALLELISM) -> LocalEngine:
    """The local engine against the region's cluster (its kubeconfig and context), the
    bridges given the region's storage file when it has one."""
    env = {"BRIDGE_STORAGE_CONFIG": region.storage_config} if region.storage_config else {}
    bridge = BridgeSettings(
        kubeconfig=region.cluster.kubeconfig, context=region.cluster.context, env=env
    )
    return build_local_engine(bridge, settings=EngineSettings(parallelism=parallelism))
