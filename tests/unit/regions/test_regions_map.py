"""The region map file: what loads, and the one-line error for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import UsageError
from orchestrator.regions import (
    MISSING_REGION,
    UNKNOWN_REGION,
    ClusterRef,
    RegionMapError,
    UnroutableRequest,
    load_region_map,
    parse_region_map,
)

GOOD = """
defaultRegion: eu-west-1
regions:
  eu-west-1:
    cluster: {kubeconfig: eu.kubeconfig, context: eu}
    workflowNamespace: workflows
    engine: argo
    maxInFlight: 2
  us-east-1:
    cluster: {inCluster: true}
    engine: local
    storageConfig: /etc/storage.yaml
"""


def test_a_good_map_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "regions.yaml"
    path.write_text(GOOD)
    regions = load_region_map(path)
    assert regions.names == ("eu-west-1", "us-east-1")
    eu, us = regions.get("eu-west-1"), regions.get("us-east-1")
    assert eu.cluster == ClusterRef(kubeconfig=str(tmp_path / "eu.kubeconfig"), context="eu")
    assert (eu.workflow_namespace, eu.engine, eu.max_in_flight) == ("workflows", "argo", 2)
    assert us.cluster.in_cluster
    assert us.engine == "local"
    assert us.workflow_namespace == "tenant-lifecycle"
    assert us.max_in_flight == 4
    assert us.storage_config == "/etc/storage.yaml"
    kube = eu.cluster.kube_settings()
    assert (kube.kubeconfig, kube.context, kube.in_cluster) == (eu.cluster.kubeconfig, "eu", False)


def test_resolve_uses_the_default_region_and_refuses_unknown_ones() -> None:
    regions = parse_region_map(
        {"defaultRegion": "a", "regions": {"a": {"cluster": {"context": "a"}}}}, source="r.yaml"
    )
    assert regions.resolve(None).name == "a"
    with pytest.raises(UnroutableRequest) as caught:
        regions.resolve("mars-1")
    assert caught.value.reason_code == UNKNOWN_REGION
    assert caught.value.field == "data.region"
    assert "'mars-1'" in str(caught.value)
    assert "a" in str(caught.value.hint)


def test_no_region_and_no_default_is_missing_region() -> None:
    regions = parse_region_map({"regions": {"a": {"cluster": {"context": "a"}}}})
    with pytest.raises(UnroutableRequest) as caught:
        regions.resolve(None)
    assert caught.value.reason_code == MISSING_REGION


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "expected a mapping with regions:"),
        ({"regions": {}}, "regions: expected a mapping of region name"),
        ({"regions": {"a": {}}, "extra": 1}, "unknown key 'extra'"),
        ({"regions": {"EU_1": {"cluster": {"context": "x"}}}}, "'EU_1' is not a region name"),
        ({"regions": {"a": {}}}, "regions.a.cluster: missing"),
        ({"regions": {"a": {"cluster": {}}}}, "regions.a.cluster: says neither"),
        (
            {"regions": {"a": {"cluster": {"inCluster": True, "context": "x"}}}},
            "regions.a.cluster: inCluster cannot be combined",
        ),
        ({"regions": {"a": {"cluster": {"ctx": "x"}}}}, "regions.a.cluster: unknown key 'ctx'"),
        (
            {"regions": {"a": {"cluster": {"context": "x"}, "engine": "k8s"}}},
            "regions.a.engine: 'k8s' is not an engine",
        ),
        (
            {"regions": {"a": {"cluster": {"context": "x"}, "maxInFlight": 0}}},
            "regions.a.maxInFlight: 0 must be a whole number",
        ),
        (
            {"regions": {"a": {"cluster": {"context": "x"}, "workflowNamespace": "Argo!"}}},
            "regions.a.workflowNamespace: 'Argo!' is not a namespace name",
        ),
        (
            {"regions": {"a": {"cluster": {"context": "x"}}}, "defaultRegion": "b"},
            "defaultRegion: 'b' is not one of the regions",
        ),
    ],
)
def test_every_mistake_names_the_file_region_and_field(document: object, expected: str) -> None:
    with pytest.raises(RegionMapError) as caught:
        parse_region_map(document, source="regions.yaml")
    assert isinstance(caught.value, UsageError)
    assert str(caught.value).startswith("regions.yaml")
    assert expected in str(caught.value)


def test_an_unreadable_or_invalid_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(RegionMapError, match="cannot read the region map"):
        load_region_map(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions: [\n")
    with pytest.raises(RegionMapError, match=r"bad\.yaml line 2: invalid YAML"):
        load_region_map(bad)
