"""The archive example team (lifecycle-jobs/archive): valid contract, valid Kubernetes objects."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from bridge.contract import (
    STORAGE_OPERATIONS,
    ContractSettings,
    check_job,
    is_namespace_opted_in,
)
from bridge.manifests import load_objects

TEAM = Path(__file__).resolve().parents[3] / "lifecycle-jobs" / "archive"


def test_the_archive_job_takes_part_in_every_storage_operation_and_decommission() -> None:
    objects = load_objects([TEAM])
    settings = ContractSettings()
    [namespace] = [o for o in objects if o["kind"] == "Namespace"]
    [job] = [o for o in objects if o["kind"] == "Job"]
    assert is_namespace_opted_in(namespace, settings=settings)
    participant, problems = check_job(job, settings=settings, source=str(TEAM))
    assert problems == []
    assert participant is not None
    assert set(participant.operations) == STORAGE_OPERATIONS | {"lifecycle.decommission"}
    assert job["metadata"]["namespace"] == namespace["metadata"]["name"] == "team-archive"


def test_the_archive_objects_are_valid_kubernetes_objects() -> None:
    import kubernetes_validate

    for obj in load_objects([TEAM]):
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_the_archive_program_parses_and_the_kustomization_builds() -> None:
    [config_map] = [o for o in load_objects([TEAM]) if o["kind"] == "ConfigMap"]
    ast.parse(config_map["data"]["archive.py"], filename="archive.py")
    built = subprocess.run(
        ["kubectl", "kustomize", str(TEAM)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    assert "name: archive" in built.stdout
