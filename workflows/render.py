"""Render every manifest to YAML files: the Argo objects and the kustomize install tree.

Two output roots (defaults relative to the repository root):

* ``workflows/rendered/`` — Argo objects: ``workflowtemplate.yaml`` (+ a kustomization),
  ``events/`` (EventBus, EventSource, Sensor + a kustomization) and ``fleet/`` (the fleet
  dispatcher WorkflowTemplate and the nightly CronWorkflow + a kustomization; opt-in);
* ``deploy/`` — kustomize: ``base/`` (platform install, the ``tenantctl listen`` Deployment and
  the WorkflowTemplate), ``events/``
  (Argo Events objects), ``team-example/`` (the base plus one managed team namespace, the
  overlay a team copies), ``argo/`` (the workflow-controller ConfigMap patch that turns on
  template-only execution).

Every file starts with :data:`~workflows.settings.GENERATED_HEADER`. Rendering is a pure
function of the settings (:func:`render_tree`), so ``tenantctl render --check`` and the drift
test compare it with the files on disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import events, install
from .fleet_cron import fleet_cron_manifest, fleet_workflow_template_manifest
from .settings import GENERATED_HEADER, WorkflowSettings
from .template import workflow_template_manifest

ARGO_DIR = Path("workflows/rendered")
DEPLOY_DIR = Path("deploy")
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"


class _Dumper(yaml.SafeDumper):
    """Block style, insertion order, long lines kept whole (no folding of JSON defaults)."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def to_yaml(documents: Iterable[Mapping[str, Any]]) -> str:
    """The generated header, then the documents separated by ``---``."""
    parts = [
        yaml.dump(
            dict(doc),
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            width=4096,
        )
        for doc in documents
    ]
    return GENERATED_HEADER + "---\n".join(parts)


def _kustomization(resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"apiVersion": KUSTOMIZE_API, "kind": "Kustomization", "resources": resources, **extra}


@dataclass(frozen=True)
class RenderedFile:
    """One output file: where it goes and the documents in it."""

    path: Path
    documents: tuple[Mapping[str, Any], ...]

    @property
    def text(self) -> str:
        return to_yaml(self.documents)


def render_tree(
    settings: WorkflowSettings, *, argo_dir: Path = ARGO_DIR, deploy_dir: Path = DEPLOY_DIR
) -> list[RenderedFile]:
    """Every file to write, in a stable order."""
    # kustomize loads another directory as a resource (the base/overlay pattern), so the
    # install tree points at the rendered Argo directory instead of copying it.
    argo_rel = Path(os.path.relpath(argo_dir, deploy_dir / "base")).as_posix()
    files: list[tuple[Path, Sequence[Mapping[str, Any]]]] = [
        (argo_dir / "workflowtemplate.yaml", [workflow_template_manifest(settings)]),
        (argo_dir / "kustomization.yaml", [_kustomization(["workflowtemplate.yaml"])]),
        (argo_dir / "events" / "eventbus.yaml", [events.event_bus_manifest(settings)]),
        (argo_dir / "events" / "eventsource.yaml", [events.event_source_manifest(settings)]),
        (argo_dir / "events" / "sensor.yaml", [events.sensor_manifest(settings)]),
        (
            argo_dir / "events" / "kustomization.yaml",
            [_kustomization(["eventbus.yaml", "eventsource.yaml", "sensor.yaml"])],
        ),
        # Opt-in, not in the base install: the reviewed fleet dispatcher template and a nightly
        # backup of every tenant that only references it (templateReferencing: Strict).
        (
            argo_dir / "fleet" / "workflowtemplate-fleet.yaml",
            [fleet_workflow_template_manifest(settings)],
        ),
        (argo_dir / "fleet" / "cronworkflow-nightly-backup.yaml", [fleet_cron_manifest(settings)]),
        (
            argo_dir / "fleet" / "kustomization.yaml",
            [_kustomization(["workflowtemplate-fleet.yaml", "cronworkflow-nightly-backup.yaml"])],
        ),
    ]
    base = deploy_dir / "base"
    base_files = {
        "namespace.yaml": install.namespaces(settings),
        "serviceaccounts.yaml": install.service_accounts(settings),
        "rbac-discovery.yaml": install.discovery_rbac(settings),
        "rbac-bridge.yaml": install.bridge_rbac(settings),
        "rbac-workflow.yaml": install.workflow_rbac(settings),
        "rbac-sweeper.yaml": install.sweeper_rbac(settings),
        "rbac-operator.yaml": install.operator_rbac(settings),
        "cronjob-sweep.yaml": install.sweep_cron_job(settings),
        "configmaps.yaml": install.settings_config_maps(settings),
        "listen.yaml": install.listen(settings),
    }
    files += [(base / name, list(docs)) for name, docs in base_files.items()]
    files.append((base / "kustomization.yaml", [_kustomization([*base_files, argo_rel])]))
    files.append(
        (deploy_dir / "events" / "kustomization.yaml", [_kustomization([f"{argo_rel}/events"])])
    )
    team = deploy_dir / settings.example_team_namespace
    team_docs = install.team_namespace(settings, settings.example_team_namespace)
    files.append((team / "team.yaml", team_docs))
    files.append((team / "kustomization.yaml", [_kustomization(["../base", "team.yaml"])]))
    argo = deploy_dir / "argo"
    files += [
        (argo / "workflow-controller-configmap.yaml", [install.controller_config_map()]),
        (argo / "template-referencing-strict.yaml", [install.template_referencing_patch()]),
        (
            argo / "kustomization.yaml",
            [
                _kustomization(
                    ["workflow-controller-configmap.yaml"],
                    patches=[{"path": "template-referencing-strict.yaml"}],
                )
            ],
        ),
    ]
    return [RenderedFile(path, tuple(docs)) for path, docs in files]


def write_tree(files: Iterable[RenderedFile]) -> list[Path]:
    """Write the files (creating directories); returns the paths whose content changed."""
    changed: list[Path] = []
    for rendered in files:
        text = rendered.text
        if rendered.path.is_file() and rendered.path.read_text(encoding="utf-8") == text:
            continue
        rendered.path.parent.mkdir(parents=True, exist_ok=True)
        rendered.path.write_text(text, encoding="utf-8")
        changed.append(rendered.path)
    return changed


def drifted(files: Iterable[RenderedFile], *, roots: Iterable[Path] = ()) -> list[str]:
    """Lines describing every file that differs from what rendering gives.

    A file under one of ``roots`` that rendering no longer produces (a stale leftover) counts
    as drift too, so a renamed manifest cannot linger in the install tree.
    """
    problems: list[str] = []
    expected: set[Path] = set()
    for rendered in files:
        expected.add(rendered.path.resolve())
        if not rendered.path.is_file():
            problems.append(f"{rendered.path}: missing")
        elif rendered.path.read_text(encoding="utf-8") != rendered.text:
            problems.append(f"{rendered.path}: differs from the rendered output")
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.yaml")):
            if path.resolve() not in expected:
                problems.append(f"{path}: not produced by rendering (stale)")
    return problems
