"""docs/fleet.md's retention CronJob is a valid Kubernetes object (strict) running a command
``tenantctl`` accepts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from orchestrator.cli import main

DOC = Path(__file__).resolve().parents[3] / "docs/fleet.md"


def _cronjob() -> dict[str, Any]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    docs = [yaml.safe_load(b) for b in blocks]
    (cronjob,) = [d for d in docs if isinstance(d, dict) and d.get("kind") == "CronJob"]
    return cronjob


def test_the_documented_retention_cronjob_is_valid() -> None:
    cronjob = _cronjob()
    kubernetes_validate.validate(cronjob, "1.30.0", strict=True)
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["tenantctl", "history", "purge"]
    group = main.commands["history"]
    purge = group.commands["purge"]  # type: ignore[attr-defined]
    ctx = purge.make_context("purge", command[3:], parent=None)
    assert ctx.params["older_than"] == "30d"
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["key"] == "url"
