"""The files commands read from the user: a tenant environment and a changeset.

One reader for every command (``plan``, ``run``, ``publish``, ``migrate``, ``fleet``), so the
same mistake -- a missing file, bad YAML, a list where a mapping belongs -- gets the same
one-line message naming the flag, the file and the fix, wherever it is made.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from bridge.errors import ContractError, UsageError
from bridge.planner import environment_applications

ENVIRONMENT_EXAMPLE = "applications: [catalog, search]"

# The options that name those files, declared once so every command says the same thing.
environment_option = click.option(
    "--environment",
    metavar="FILE",
    type=click.Path(dir_okay=False, exists=True),
    help="tenant environment YAML (applications: [..]); filters jobs by application",
)
changeset_option = click.option(
    "--changeset",
    metavar="FILE",
    type=click.Path(dir_okay=False, exists=True),
    help="changeset YAML handed to every job",
)
CHANGESET_EXAMPLE = "catalog: {schemaVersion: 42}"


def load_mapping(path: str, flag: str, *, example: str | None = None) -> dict[str, Any]:
    """A YAML (or JSON) mapping from ``path`` (``-`` reads stdin); ``{}`` for an empty file."""
    hint = (
        f"give {flag} a YAML file such as: {example}"
        if example
        else (f"give {flag} a YAML or JSON file holding a mapping")
    )
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {flag} {path}: {exc.strerror or exc}", hint=hint) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{flag} {path}{where}: invalid YAML", hint=hint) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{flag} {path}: expected a mapping, got {type(data).__name__}", hint=hint)
    return data


def load_environment(path: str) -> dict[str, Any]:
    """A tenant environment file: ``applications: [...]`` (the request's
    ``tenantEnvironment``); a whole request body with a ``tenantEnvironment`` key also works."""
    data = load_mapping(path, "--environment", example=ENVIRONMENT_EXAMPLE)
    if isinstance(data.get("tenantEnvironment"), dict):
        data = data["tenantEnvironment"]
    try:
        environment_applications(data)
    except ContractError as exc:
        raise UsageError(f"--environment {path}: {exc.message}", hint=exc.hint) from exc
    return data


def load_changeset(path: str) -> dict[str, Any]:
    """A changeset file: a YAML/JSON mapping handed to every job as ``changeset.yaml``."""
    return load_mapping(path, "--changeset", example=CHANGESET_EXAMPLE)
