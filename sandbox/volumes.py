"""Pod volumes materialized as directories under the pod's own directory in the sandbox workdir.

configMap, secret, downwardAPI and projected volumes become files (``items`` with ``path`` and
``mode``, ``defaultMode``); emptyDir an empty directory; hostPath the host path itself. A missing
non-optional source raises :class:`MissingSourceError` (the kubelet keeps the pod in
ContainerCreating and retries); an unsupported volume type raises :class:`UnsupportedVolumeError`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .envvars import ConfigError, field_value

Obj = dict[str, Any]
Lookup = Callable[[str, str], Obj | None]
TokenIssuer = Callable[[str], str]  # user name → bearer token


class MissingSourceError(Exception):
    """A secret or config map a volume needs does not exist (yet)."""


class UnsupportedVolumeError(Exception):
    """A volume type the sandbox does not emulate."""


def _write(base: Path, rel: str, content: bytes, mode: int) -> None:
    if rel.startswith("/") or ".." in Path(rel).parts:
        raise ConfigError(f"volume item path {rel!r} must be relative and must not contain '..'")
    target = base / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    os.chmod(target, mode)


def _key_data(obj: Obj, kind: str) -> dict[str, bytes]:
    if kind == "secrets":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    out = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def _keyed(
    base: Path, source: Obj, kind: str, name: str, *, lookup: Lookup, default_mode: int
) -> None:
    obj = lookup(kind, name)
    label = "secret" if kind == "secrets" else "configmap"
    if obj is None:
        if source.get("optional"):
            return
        raise MissingSourceError(f'{label} "{name}" not found')
    data = _key_data(obj, kind)
    items = source.get("items")
    if items:
        for item in items:
            key = item.get("key", "")
            if key not in data:
                if source.get("optional"):
                    continue
                raise MissingSourceError(f'{label} "{name}": key "{key}" not found')
            _write(base, item.get("path", key), data[key], int(item.get("mode", default_mode)))
    else:
        for key, value in data.items():
            _write(base, key, value, default_mode)


def _downward(base: Path, items: list[Obj], pod: Obj, default_mode: int) -> None:
    for item in items or []:
        ref = item.get("fieldRef") or {}
        value = field_value(pod, ref.get("fieldPath", "")) if ref else "0"
        _write(base, item.get("path", ""), value.encode(), int(item.get("mode", default_mode)))


def materialize(
    volume: Obj, base: Path, pod: Obj, lookup: Lookup, issue_token: TokenIssuer
) -> Path:
    """Create the volume's content in ``base`` (or return the hostPath) and return its path."""
    namespace = pod["metadata"].get("namespace", "")
    if "hostPath" in volume:
        path = Path((volume["hostPath"] or {}).get("path", ""))
        kind = (volume["hostPath"] or {}).get("type", "")
        if kind in ("DirectoryOrCreate",):
            path.mkdir(parents=True, exist_ok=True)
        return path
    base.mkdir(parents=True, exist_ok=True)
    if "emptyDir" in volume:
        os.chmod(base, 0o777)  # noqa: S103 - emptyDir is world-writable, as on a node
        return base
    if "secret" in volume:
        src = volume["secret"] or {}
        _keyed(
            base,
            src,
            "secrets",
            src.get("secretName", ""),
            lookup=lookup,
            default_mode=int(src.get("defaultMode", 0o644)),
        )
        return base
    if "configMap" in volume:
        src = volume["configMap"] or {}
        _keyed(
            base,
            src,
            "configmaps",
            src.get("name", ""),
            lookup=lookup,
            default_mode=int(src.get("defaultMode", 0o644)),
        )
        return base
    if "downwardAPI" in volume:
        src = volume["downwardAPI"] or {}
        _downward(base, src.get("items") or [], pod, int(src.get("defaultMode", 0o644)))
        return base
    if "projected" in volume:
        src = volume["projected"] or {}
        mode = int(src.get("defaultMode", 0o644))
        for part in src.get("sources") or []:
            if "secret" in part:
                _keyed(
                    base,
                    part["secret"],
                    "secrets",
                    part["secret"].get("name", ""),
                    lookup=lookup,
                    default_mode=mode,
                )
            elif "configMap" in part:
                _keyed(
                    base,
                    part["configMap"],
                    "configmaps",
                    part["configMap"].get("name", ""),
                    lookup=lookup,
                    default_mode=mode,
                )
            elif "downwardAPI" in part:
                _downward(base, (part["downwardAPI"] or {}).get("items") or [], pod, mode)
            elif "serviceAccountToken" in part:
                token_src = part["serviceAccountToken"] or {}
                account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
                token = issue_token(f"system:serviceaccount:{namespace}:{account}")
                _write(base, token_src.get("path", "token"), token.encode(), mode)
            elif "clusterTrustBundle" in part:
                continue
        return base
    kinds = sorted(k for k in volume if k != "name")
    raise UnsupportedVolumeError(
        f'volume "{volume.get("name", "")}" of type {", ".join(kinds) or "unknown"} is not '
        "emulated by the sandbox (use emptyDir, configMap, secret, projected, downwardAPI or "
        "hostPath)"
    )
