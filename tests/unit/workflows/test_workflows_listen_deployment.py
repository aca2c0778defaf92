"""``tenantctl listen`` as a Deployment (``workflows.install.listen``): strict Kubernetes schema,
a command line and environment the real ``tenantctl listen`` accepts, probes on paths its HTTP
server serves, history that survives a restart unless PostgreSQL is configured."""

from __future__ import annotations

import dataclasses
import os
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from orchestrator.cli import main
from orchestrator.history import open_store
from orchestrator.metrics import Metrics, MetricsServer
from workflows import install
from workflows.render import to_yaml
from workflows.settings import WorkflowSettings

K8S_VERSION = "1.29"  # the oldest Kubernetes the install supports (docs/install.md)


def _objects(settings: WorkflowSettings | None = None) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in install.listen(settings or WorkflowSettings())}


def _container(settings: WorkflowSettings | None = None) -> dict[str, Any]:
    (container,) = _objects(settings)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(container)


@pytest.mark.parametrize("kind", ["ConfigMap", "PersistentVolumeClaim", "Deployment", "Service"])
def test_every_object_passes_kubernetes_validate_strict(kind: str) -> None:
    kubernetes_validate.validate(_objects()[kind], K8S_VERSION, strict=True)


def test_the_disruption_budget_passes_strict_validation_and_never_blocks_a_drain() -> None:
    objects = _objects()
    pdb = objects["PodDisruptionBudget"]
    kubernetes_validate.validate(pdb, K8S_VERSION, strict=True)
    assert pdb["spec"]["maxUnavailable"] >= objects["Deployment"]["spec"]["replicas"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_the_deployment_runs_the_listener_as_the_orchestrator() -> None:
    settings = WorkflowSettings(image="registry.example/tl:9.9", image_pull_policy="Always")
    deployment = _objects(settings)["Deployment"]
    spec = deployment["spec"]
    assert deployment["metadata"]["namespace"] == settings.workflow_namespace
    assert spec["replicas"] == 1
    # One SQLite writer on a ReadWriteOnce volume: the old pod goes before the new one comes.
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == settings.orchestrator_service_account
    container = _container(settings)
    assert (container["image"], container["imagePullPolicy"]) == (settings.image, "Always")
    assert container["command"] == ["tenantctl"]
    assert container["args"][0] == "listen"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])


def test_the_pod_is_non_root_on_a_read_only_root_filesystem() -> None:
    pod = _objects()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == install.PRODUCT_UID
    assert pod["securityContext"]["fsGroup"] == install.PRODUCT_UID  # the history volume
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = _container()["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsUser"] == install.PRODUCT_UID
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container()["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def _kubelet_env(settings: WorkflowSettings, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: ``envFrom`` in order (a later
    source wins), then ``env`` (wins over ``envFrom``; an optional key of a missing Secret is
    not set at all)."""
    config_maps = {
        doc["metadata"]["name"]: doc["data"]
        for doc in [*install.settings_config_maps(settings), *install.listen(settings)]
        if doc["kind"] == "ConfigMap"
    }
    container = _container(settings)
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            ref = source["configMapRef"]
            assert ref["name"] in config_maps or ref.get("optional"), ref
            env.update(config_maps.get(ref["name"], {}))
        else:
            ref = source["secretRef"]
            assert ref["name"] in secrets or ref.get("optional"), ref
            env.update(secrets.get(ref["name"], {}))
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        key = var["valueFrom"]["secretKeyRef"]
        if key["name"] in secrets:
            env[var["name"]] = secrets[key["name"]][key["key"]]
        else:
            assert key.get("optional"), key
    return env


def _listen_params(
    monkeypatch: pytest.MonkeyPatch,
    settings: WorkflowSettings,
    secrets: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    for name in [n for n in os.environ if n.startswith("TENANTCTL_")]:
        monkeypatch.delenv(name)
    for name, value in _kubelet_env(settings, secrets or {}).items():
        monkeypatch.setenv(name, value)
    args = _container(settings)["args"]
    command = main.commands[args[0]]
    return dict(command.make_context(args[0], list(args[1:]), parent=None).params)


def test_the_real_listen_command_takes_its_settings_from_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = WorkflowSettings(workflow_namespace="lifecycle", pubsub_project="acme-prod")
    params = _listen_params(monkeypatch, settings)
    assert params["project"] == "acme-prod"
    assert params["workflow_namespace"] == "lifecycle"
    assert params["template"] == settings.template_name
    assert params["results_topic"] == settings.pubsub_results_topic
    assert params["engine"] == "argo"
    # Reachable from the kubelet and Prometheus, on the port the probes and Service name.
    assert params["metrics_host"] == "0.0.0.0"
    service = _objects(settings)["Service"]
    (port,) = _container(settings)["ports"]
    assert params["metrics_port"] == port["containerPort"] == service["spec"]["ports"][0]["port"]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_history_is_on_by_default_in_sqlite_on_the_claimed_volume(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    defaults = install.ListenDeployment()
    params = _listen_params(monkeypatch, WorkflowSettings())
    url = params["history_store"]
    assert url == defaults.history_url
    # The file is on the PersistentVolumeClaim's mount, not on the (read-only) image.
    objects = _objects()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    mount = next(m for m in _container()["volumeMounts"] if m["name"] in claims)
    assert url.startswith(f"sqlite:///{mount['mountPath']}/")
    assert claims[mount["name"]] == objects["PersistentVolumeClaim"]["metadata"]["name"]
    assert objects["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    # The URL's spelling opens a file at that absolute path (here moved under tmp_path).
    moved = url.replace(mount["mountPath"], str(tmp_path))
    store = open_store(moved)
    store.close()
    assert (tmp_path / "history.db").is_file()


def test_the_history_secret_switches_the_listener_to_postgresql(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql://lifecycle:secret@db.internal:5432/lifecycle"
    secrets = {install.HISTORY_SECRET: {install.HISTORY_SECRET_KEY: url}}
    assert _listen_params(monkeypatch, WorkflowSettings(), secrets)["history_store"] == url


def test_the_operator_s_optional_secret_overrides_the_listen_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = {
        install.ListenDeployment().env_secret: {
            "TENANTCTL_PROJECT": "from-secret",
            "TENANTCTL_HANDLER_THREADS": "3",
        }
    }
    params = _listen_params(monkeypatch, WorkflowSettings(), secrets)
    assert params["project"] == "from-secret"
    assert params["handler_threads"] == 3


def test_the_probes_and_the_service_use_paths_the_listener_serves() -> None:
    objects = _objects()
    container = _container()
    paths = [
        container["readinessProbe"]["httpGet"]["path"],
        container["livenessProbe"]["httpGet"]["path"],
        objects["Service"]["metadata"]["annotations"]["prometheus.io/path"],
    ]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == container["ports"][0]["name"]
    server = MetricsServer(Metrics(), host="127.0.0.1", port=0)
    try:
        for path in paths:
            with urllib.request.urlopen(f"{server.url}{path}", timeout=5) as reply:
                assert reply.status == 200, path
    finally:
        server.close()


def test_the_rendered_yaml_has_no_anchors_or_aliases() -> None:
    # A dict shared between two places would be dumped as &id001 / *id001.
    text = to_yaml(install.listen(WorkflowSettings()))
    assert "&id" not in text
    assert "*id" not in text


def test_the_service_and_the_budget_select_the_listener_pods() -> None:
    objects = _objects()
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert objects["Deployment"]["spec"]["selector"]["matchLabels"] == labels
    assert objects["Service"]["spec"]["selector"] == labels
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    # Nothing else in the namespace carries the listener's labels.
    for doc in install.sweep_cron_job(WorkflowSettings()):
        pod_labels = doc["spec"]["jobTemplate"]["spec"]["template"].get("metadata", {})
        assert pod_labels.get("labels") != labels


def test_a_longer_shutdown_than_the_listener_s_own_timeouts() -> None:
    from orchestrator.settings import ListenSettings

    pod = _objects()["Deployment"]["spec"]["template"]["spec"]
    timeout = {f.name: f.default for f in dataclasses.fields(ListenSettings)}["shutdown_timeout"]
    # handlers in flight, then the tracker: each may take the shutdown timeout
    assert pod["terminationGracePeriodSeconds"] > 2 * float(timeout)  # type: ignore[arg-type]
