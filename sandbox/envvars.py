"""A container's environment and argv, resolved from the pod spec like the kubelet does.

``value`` (with ``$(VAR)`` expansion of earlier variables), ``valueFrom`` (configMapKeyRef,
secretKeyRef, fieldRef for the pod's name, namespace, uid, labels, annotations, node, service
account and IPs), and ``envFrom`` (configMapRef, secretRef, with prefix). A missing non-optional
reference raises :class:`ConfigError`, which the runtime shows as ``CreateContainerConfigError``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

Obj = dict[str, Any]
Lookup = Callable[[str, str], Obj | None]  # (kind "secrets"|"configmaps", name) → object

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ConfigError(Exception):
    """A container's configuration refers to something missing."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined names expand, ``$$`` escapes, the rest stays."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REF.sub(sub, text)


def _data(obj: Obj, kind: str) -> dict[str, str]:
    if kind == "secrets":
        return {
            k: base64.b64decode(v).decode(errors="replace")
            for k, v in (obj.get("data") or {}).items()
        }
    out = dict(obj.get("data") or {})
    for k, v in (obj.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v).decode(errors="replace")
    return out


def field_value(pod: Obj, path: str) -> str:
    meta = pod.get("metadata") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName") or "sandbox",
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
        "status.podIPs": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path] or "")
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(path.split(".", 1)[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
    raise ConfigError(f'unsupported fieldRef fieldPath "{path}"')


def resolve_env(
    pod: Obj, container: Obj, lookup: Lookup, base: Mapping[str, str]
) -> dict[str, str]:
    namespace = pod["metadata"].get("namespace", "")
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, ref_key, label in (
            ("configmaps", "configMapRef", "configmap"),
            ("secrets", "secretRef", "secret"),
        ):
            ref = source.get(ref_key)
            if not ref:
                continue
            obj = lookup(kind, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{label} "{ref.get("name", "")}" not found')
            for key, value in _data(obj, kind).items():
                env[prefix + key] = value
    for var in container.get("env") or []:
        name = var.get("name", "")
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        source = var["valueFrom"] or {}
        if "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"].get("fieldPath", ""))
            continue
        if "resourceFieldRef" in source:
            env[name] = "0"
            continue
        for kind, ref_key, label, title in (
            ("configmaps", "configMapKeyRef", "configmap", "ConfigMap"),
            ("secrets", "secretKeyRef", "secret", "Secret"),
        ):
            ref = source.get(ref_key)
            if not ref:
                continue
            obj = lookup(kind, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    break
                raise ConfigError(f'{label} "{ref.get("name", "")}" not found')
            data = _data(obj, kind)
            key = ref.get("key", "")
            if key not in data:
                if ref.get("optional"):
                    break
                raise ConfigError(
                    f"couldn't find key {key} in {title} {namespace}/{ref.get('name', '')}"
                )
            env[name] = data[key]
            break
    return env


def argv(container: Obj, env: Mapping[str, str]) -> list[str]:
    """command + args with ``$(VAR)`` expansion. The image's entrypoint is unknown here."""
    parts = list(container.get("command") or []) + list(container.get("args") or [])
    return [expand(str(p), env) for p in parts]
