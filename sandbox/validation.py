"""The validation the real server does that clients notice: names, labels, required pod fields.

Failures are 422 ``Invalid`` with ``causes`` naming the field, like the real server's, so a
mistake in a team's manifest reads the same against the sandbox as against a cluster.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from .resources import ResourceType
from .status import bad_request, invalid

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_KINDS = {"Namespace", "Service"}  # named by DNS-1123 labels; the rest by subdomains

Cause = tuple[str, str, str]


def _name_causes(rtype: ResourceType, name: str) -> list[Cause]:
    if not name:
        return [
            (
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            )
        ]
    if rtype.kind in _LABEL_KINDS:
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            return [
                (
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower '
                    "case alphanumeric characters or '-', and must start and end with an "
                    "alphanumeric character (at most 63 characters)",
                )
            ]
    elif (
        rtype.group in ("", "batch", "coordination.k8s.io")
        and rtype.kind not in ("Event",)
        and (len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name))
    ):
        return [
            (
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )
        ]
    return []


def _label_causes(labels: Any) -> list[Cause]:
    causes: list[Cause] = []
    if labels is None:
        return causes
    if not isinstance(labels, dict):
        return [("metadata.labels", "FieldValueInvalid", "Invalid value: must be a map")]
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix))) or (
            len(name) > 63 or not _LABEL_NAME.match(name)
        ):
            causes.append(
                (
                    "metadata.labels",
                    "FieldValueInvalid",
                    f'Invalid value: "{key}": name part must consist of alphanumeric '
                    "characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                (
                    "metadata.labels",
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": a valid label must be an empty string or '
                    "consist of alphanumeric characters, '-', '_' or '.', and must start "
                    "and end with an alphanumeric character",
                )
            )
    return causes


def _container_causes(spec: dict[str, Any], field: str) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, container in enumerate(spec.get(field) or []):
        path = f"spec.{field}[{i}]"
        name = container.get("name") or ""
        if not name:
            causes.append((f"{path}.name", "FieldValueRequired", "Required value"))
        elif name in names:
            causes.append((f"{path}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
        names.add(name)
        if not container.get("image"):
            causes.append((f"{path}.image", "FieldValueRequired", "Required value"))
    return causes


def validate(rtype: ResourceType, obj: dict[str, Any]) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    causes = _name_causes(rtype, name) + _label_causes(meta.get("labels"))
    annotations = meta.get("annotations")
    if annotations is not None and (
        not isinstance(annotations, dict)
        or not all(isinstance(v, str) for v in annotations.values())
    ):
        causes.append(
            (
                "metadata.annotations",
                "FieldValueInvalid",
                "Invalid value: annotation values must be strings",
            )
        )
    if rtype.kind == "Pod":
        spec = obj.get("spec") or {}
        if not spec.get("containers"):
            causes.append(("spec.containers", "FieldValueRequired", "Required value"))
        causes += _container_causes(spec, "containers") + _container_causes(spec, "initContainers")
        policy = spec.get("restartPolicy", "Always")
        if policy not in ("Always", "OnFailure", "Never"):
            causes.append(
                (
                    "spec.restartPolicy",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{policy}": supported values: "Always", '
                    '"Never", "OnFailure"',
                )
            )
    if causes:
        raise invalid(rtype.kind, rtype.group, name, causes)


def normalize_secret(obj: dict[str, Any]) -> None:
    """Fold ``stringData`` into ``data`` and check ``data`` is base64, as the server does."""
    data = dict(obj.get("data") or {})
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data '
                f'at key "{key}"'
            ) from exc
    for key, value in (obj.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data or "data" in obj:
        obj["data"] = data
    obj.setdefault("type", "Opaque")
