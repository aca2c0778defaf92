"""Object-storage settings: where storage operations read and write, and with which credentials.

One frozen dataclass, loaded once at the entry point (``python -m bridge run`` or ``tenantctl
storage ...``) from an optional YAML file and ``BRIDGE_STORAGE_*`` environment variables (the
environment wins), then passed in. Secrets never come from the YAML file, which usually lives in
a ConfigMap: static keys come from ``BRIDGE_STORAGE_ACCESS_KEY_ID`` /
``BRIDGE_STORAGE_SECRET_ACCESS_KEY`` or from a credentials file mounted from a Secret.

The location of one job's data is ``s3://<bucket>/<prefix template rendered>``; see
:meth:`StorageSettings.render_prefix`. Every placeholder value is checked to be a single, safe
path segment so that no tenant, batch or job name can reach into another job's prefix (the STS
session policy is scoped by that prefix).
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from bridge.errors import UsageError

DEFAULT_PREFIX_TEMPLATE = "{tenant}/{operation}/{batch}/{namespace}/{job}/"
TEMPLATE_FIELDS = ("tenant", "operation", "batch", "namespace", "job")
# A job's location must be unique per tenant, batch and job, or two jobs would seal (and
# overwrite) each other's manifest; the operation is optional because one batch is one operation.
REQUIRED_TEMPLATE_FIELDS = ("tenant", "batch", "namespace", "job")
ENV_PREFIX = "BRIDGE_STORAGE_"

# One path segment: what tenant ids, batch ids, operation names and Kubernetes names are made of.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=@+-]{0,254}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ROLE_ARN = re.compile(r"^arn:[a-z-]+:iam::\d{12}:role/[\w+=,.@/-]+$")

# STS limits for AssumeRole DurationSeconds (the role's MaxSessionDuration may be lower).
MIN_SESSION_SECONDS = 900
MAX_SESSION_SECONDS = 43200


class CredentialsSource(StrEnum):
    """Where the credentials handed to a job's pod come from.

    ``sts`` (default): the bridge calls STS AssumeRole with a session policy that allows only the
    job's prefix; the pod receives short-lived keys. ``static``: the pod receives the static
    keys configured here, NOT scoped to the prefix. It exists for S3-compatible stores without
    STS, and choosing it is the operator's explicit opt-in (see docs/storage.md).
    """

    STS = "sts"
    STATIC = "static"


@dataclass(frozen=True)
class StorageSettings:
    """Everything the bridge and ``tenantctl storage`` need to reach the object store."""

    bucket: str
    prefix_template: str = DEFAULT_PREFIX_TEMPLATE
    endpoint_url: str | None = None  # None: AWS S3; else an S3-compatible endpoint (path-style)
    region: str = "us-east-1"
    credentials: CredentialsSource = CredentialsSource.STS
    role_arn: str | None = None  # sts: the role assumed for each job
    session_duration_seconds: int = 3600  # sts: must cover the job's whole run
    sts_endpoint_url: str | None = None  # sts: None means AWS STS for the region
    # The bridge's own keys (listing, manifests, verification, AssumeRole); None uses boto3's
    # default chain (IRSA, instance profile, AWS_* env). With ``static`` they also go to the pod.
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    export_retention_days: int = 7  # lifecycle.migrate-out locations expire after this
    backup_retention_days: int = 30  # lifecycle.backup locations are kept this long

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise UsageError(
                "invalid storage settings: " + "; ".join(problems),
                hint="see docs/storage.md for every setting",
            )

    def problems(self) -> list[str]:
        """Every problem with these settings, as ``field: message (fix)`` strings."""
        found: list[str] = []
        if not _BUCKET.match(self.bucket or ""):
            found.append(
                f"bucket: {self.bucket!r} is not a valid bucket name "
                "(fix: 3-63 lowercase letters, digits, dots and hyphens)"
            )
        found.extend(_template_problems(self.prefix_template))
        for name in ("endpoint_url", "sts_endpoint_url"):
            url = getattr(self, name)
            if url is not None and not re.match(r"^https?://[^/\s]+/?$", url):
                found.append(
                    f"{name}: {url!r} is not an http(s) URL (fix: e.g. https://s3.example.com)"
                )
        if not self.region:
            found.append(
                "region: empty (fix: e.g. eu-west-1; S3-compatible stores accept us-east-1)"
            )
        if self.role_arn and not _ROLE_ARN.match(self.role_arn):
            found.append(
                f"role_arn: {self.role_arn!r} is not an IAM role ARN "
                "(fix: arn:aws:iam::<account>:role/<name>)"
            )
        if not MIN_SESSION_SECONDS <= self.session_duration_seconds <= MAX_SESSION_SECONDS:
            found.append(
                f"session_duration_seconds: {self.session_duration_seconds} is outside STS's "
                f"{MIN_SESSION_SECONDS}..{MAX_SESSION_SECONDS} (fix: cover the job's deadline)"
            )
        if bool(self.access_key_id) != bool(self.secret_access_key):
            found.append("access_key_id/secret_access_key: set both or neither")
        for name in ("export_retention_days", "backup_retention_days"):
            if getattr(self, name) < 1:
                found.append(f"{name}: must be at least 1 day")
        return found

    def pod_credentials_problems(self) -> list[str]:
        """What is missing to hand credentials to a job's pod (checked by the bridge at start).

        Not part of :meth:`problems`: ``tenantctl storage`` needs only the bridge's own access.
        """
        if self.credentials is CredentialsSource.STS and not self.role_arn:
            return [
                "role_arn: required with credentials=sts "
                "(fix: the ARN of the role the bridge assumes for each job, or opt into "
                "credentials=static for a backend without STS)"
            ]
        if self.credentials is CredentialsSource.STATIC and not (
            self.access_key_id and self.secret_access_key
        ):
            return [
                "access_key_id/secret_access_key: required with credentials=static "
                f"(fix: set {ENV_PREFIX}ACCESS_KEY_ID and {ENV_PREFIX}SECRET_ACCESS_KEY, or "
                f"{ENV_PREFIX}CREDENTIALS_FILE)"
            ]
        return []

    def require_pod_credentials(self) -> None:
        problems = self.pod_credentials_problems()
        if problems:
            raise UsageError(
                "invalid storage settings: " + "; ".join(problems),
                hint="see docs/storage.md, 'Credentials'",
            )

    def render_prefix(
        self, *, tenant: str, operation: str, batch: str, namespace: str, job: str
    ) -> str:
        """The key prefix (ending in ``/``) of one job's data for one operation of one batch."""
        values = {
            "tenant": tenant,
            "operation": operation,
            "batch": batch,
            "namespace": namespace,
            "job": job,
        }
        for name, value in values.items():
            if not _SEGMENT.match(value) or value in (".", ".."):
                raise UsageError(
                    f"storage location: {name} {value!r} cannot be used as a path segment",
                    hint="ids must start with a letter or digit and hold only letters, digits "
                    "and . _ = @ + -",
                )
        return self.prefix_template.format(**values)


def _template_problems(template: str) -> list[str]:
    try:
        names = [n for _, n, _, _ in string.Formatter().parse(template) if n is not None]
    except ValueError as exc:
        return [f"prefix_template: {template!r}: {exc} (fix: placeholders look like {{tenant}})"]
    found = []
    unknown = sorted(set(names) - set(TEMPLATE_FIELDS))
    if unknown:
        found.append(
            f"prefix_template: unknown placeholder(s) {', '.join(unknown)} "
            f"(fix: use only {', '.join('{' + n + '}' for n in TEMPLATE_FIELDS)})"
        )
    missing = [n for n in REQUIRED_TEMPLATE_FIELDS if n not in names]
    if missing:
        found.append(
            f"prefix_template: missing {', '.join('{' + n + '}' for n in missing)} "
            "(fix: every job needs its own location)"
        )
    if not template.endswith("/") or template.startswith("/") or "//" in template:
        found.append(
            f"prefix_template: {template!r} must end with '/', not start with one, and have no "
            "empty segment (fix: e.g. " + DEFAULT_PREFIX_TEMPLATE + ")"
        )
    return found


_INT_FIELDS = {"session_duration_seconds", "export_retention_days", "backup_retention_days"}
_SECRET_FIELDS = {"access_key_id", "secret_access_key"}
_FILE_FIELDS = {f.name for f in fields(StorageSettings)} - _SECRET_FIELDS


def load_storage_settings(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> StorageSettings:
    """Settings from a YAML file (optional) overlaid with ``BRIDGE_STORAGE_*`` env variables.

    YAML keys are the field names (``bucket``, ``prefix_template``, ...). ``credentials_file``
    (YAML key or ``BRIDGE_STORAGE_CREDENTIALS_FILE``) names a YAML file holding
    ``access_key_id`` and ``secret_access_key``, typically mounted from a Secret. ``defaults``
    fill what neither the file nor the environment sets (e.g. the bucket of a URL).
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    source = "environment"
    if path is not None:
        source = str(path)
        raw = _read_yaml_mapping(Path(path), what="storage settings file")
        unknown = sorted(set(raw) - _FILE_FIELDS - {"credentials_file"})
        if unknown:
            raise UsageError(
                f"{path}: unknown storage setting(s) {', '.join(unknown)}",
                hint="known settings: "
                + ", ".join(sorted(_FILE_FIELDS | {"credentials_file"}))
                + "; keys belong in the environment or a credentials file, never here",
            )
    for name in [*_FILE_FIELDS, *_SECRET_FIELDS, "credentials_file"]:
        value = env.get(ENV_PREFIX + name.upper())
        if value not in (None, ""):
            raw[name] = value
    for name, value in (defaults or {}).items():
        raw.setdefault(name, value)
    credentials_file = raw.pop("credentials_file", None)
    if credentials_file:
        keys = _read_yaml_mapping(Path(str(credentials_file)), what="storage credentials file")
        for name in _SECRET_FIELDS:
            if name in keys and name not in raw:
                raw[name] = str(keys[name])
    if "bucket" not in raw:
        raise UsageError(
            f"storage settings ({source}): bucket is not set",
            hint=f"set bucket in the settings file or {ENV_PREFIX}BUCKET",
        )
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _INT_FIELDS:
            try:
                values[name] = int(value)
            except (TypeError, ValueError):
                raise UsageError(
                    f"storage settings ({source}): {name}: {value!r} is not an integer",
                    hint="write a whole number",
                ) from None
        elif name == "credentials":
            try:
                values[name] = CredentialsSource(str(value))
            except ValueError:
                raise UsageError(
                    f"storage settings ({source}): credentials: {value!r} is not a credentials "
                    "source",
                    hint="use sts (default, scoped to the job's prefix) or static (opt-in, "
                    "unscoped, for backends without STS)",
                ) from None
        else:
            values[name] = None if value is None else str(value)
    return StorageSettings(**values)


def _read_yaml_mapping(path: Path, *, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(
            f"{what} {path}: cannot read: {exc.strerror}", hint="check the path"
        ) from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{what} {path}: not valid YAML", hint=str(exc).splitlines()[0]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path}: expected a mapping of settings", hint="key: value lines")
    return {str(k): v for k, v in data.items()}
