"""Decoding the protobuf bodies kubectl's typed clients send, for the few kinds that use them.

kubectl's generators (``kubectl create namespace|configmap|secret|serviceaccount|role|
rolebinding|clusterrole|clusterrolebinding|token``) encode the object as Kubernetes protobuf
(``application/vnd.kubernetes.protobuf``: the ``k8s\\0`` magic, then a ``runtime.Unknown`` holding
TypeMeta and the raw message) and do not fall back to JSON. This module decodes those messages
into the JSON form with a small schema per kind; other kinds answer 415 with a hint to use
``kubectl create -f`` (which sends JSON).
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"

Fields = dict[int, list[tuple[int, Any]]]  # field number → [(wire type, value)]


class ProtobufError(ValueError):
    """The body is not a protobuf message the sandbox can read."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> Fields:
    out: Fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value = data[pos : pos + length]
            pos += length
        elif wire == 1:
            value = data[pos : pos + 8]
            pos += 8
        elif wire == 5:
            value = data[pos : pos + 4]
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.setdefault(number, []).append((wire, value))
    return out


# A schema maps a field number to (json name, type). Types: "str", "bytes" (base64 in JSON),
# "int", "bool", "map" (string→string), "bmap" (string→bytes), "[str]", a nested schema dict,
# or a one-element list holding a nested schema (repeated message).
Schema = dict[int, tuple[str, Any]]

OWNER_REF: Schema = {
    1: ("kind", "str"),
    3: ("name", "str"),
    4: ("uid", "str"),
    5: ("apiVersion", "str"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
OBJECT_META: Schema = {
    1: ("name", "str"),
    2: ("generateName", "str"),
    3: ("namespace", "str"),
    11: ("labels", "map"),
    12: ("annotations", "map"),
    13: ("ownerReferences", [OWNER_REF]),
    14: ("finalizers", "[str]"),
}
POLICY_RULE: Schema = {
    1: ("verbs", "[str]"),
    2: ("apiGroups", "[str]"),
    3: ("resources", "[str]"),
    4: ("resourceNames", "[str]"),
    5: ("nonResourceURLs", "[str]"),
}
SUBJECT: Schema = {
    1: ("kind", "str"),
    2: ("apiGroup", "str"),
    3: ("name", "str"),
    4: ("namespace", "str"),
}
ROLE_REF: Schema = {1: ("apiGroup", "str"), 2: ("kind", "str"), 3: ("name", "str")}
NAME_REF: Schema = {1: ("name", "str")}

SCHEMAS: dict[str, Schema] = {
    "Namespace": {1: ("metadata", OBJECT_META), 2: ("spec", {1: ("finalizers", "[str]")})},
    "ConfigMap": {
        1: ("metadata", OBJECT_META),
        2: ("data", "map"),
        3: ("binaryData", "bmap"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", OBJECT_META),
        2: ("data", "bmap"),
        3: ("type", "str"),
        4: ("stringData", "map"),
        5: ("immutable", "bool"),
    },
    "ServiceAccount": {
        1: ("metadata", OBJECT_META),
        3: ("imagePullSecrets", [NAME_REF]),
        4: ("automountServiceAccountToken", "bool"),
    },
    "Role": {1: ("metadata", OBJECT_META), 2: ("rules", [POLICY_RULE])},
    "ClusterRole": {1: ("metadata", OBJECT_META), 2: ("rules", [POLICY_RULE])},
    "RoleBinding": {
        1: ("metadata", OBJECT_META),
        2: ("subjects", [SUBJECT]),
        3: ("roleRef", ROLE_REF),
    },
    "ClusterRoleBinding": {
        1: ("metadata", OBJECT_META),
        2: ("subjects", [SUBJECT]),
        3: ("roleRef", ROLE_REF),
    },
    "SelfSubjectAccessReview": {
        1: ("metadata", OBJECT_META),
        2: (
            "spec",
            {
                1: (
                    "resourceAttributes",
                    {
                        1: ("namespace", "str"),
                        2: ("verb", "str"),
                        3: ("group", "str"),
                        4: ("version", "str"),
                        5: ("resource", "str"),
                        6: ("subresource", "str"),
                        7: ("name", "str"),
                    },
                ),
                2: ("nonResourceAttributes", {1: ("path", "str"), 2: ("verb", "str")}),
            },
        ),
    },
    "SelfSubjectRulesReview": {
        1: ("metadata", OBJECT_META),
        2: ("spec", {1: ("namespace", "str")}),
    },
    "TokenRequest": {
        1: ("metadata", OBJECT_META),
        2: ("spec", {1: ("audiences", "[str]"), 4: ("expirationSeconds", "int")}),
    },
}


def _map_entries(raw_entries: list[tuple[int, Any]], *, as_bytes: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for _, entry in raw_entries:
        parts = fields(entry)
        key = parts.get(1, [(2, b"")])[0][1].decode()
        value = parts.get(2, [(2, b"")])[0][1]
        out[key] = base64.b64encode(value).decode() if as_bytes else value.decode()
    return out


def decode_message(data: bytes, schema: Schema) -> dict[str, Any]:
    parsed = fields(data)
    out: dict[str, Any] = {}
    for number, (name, kind) in schema.items():
        values = parsed.get(number)
        if not values:
            continue
        if kind == "str":
            out[name] = values[-1][1].decode()
        elif kind == "bytes":
            out[name] = base64.b64encode(values[-1][1]).decode()
        elif kind == "int":
            out[name] = values[-1][1]
        elif kind == "bool":
            out[name] = bool(values[-1][1])
        elif kind == "map":
            out[name] = _map_entries(values, as_bytes=False)
        elif kind == "bmap":
            out[name] = _map_entries(values, as_bytes=True)
        elif kind == "[str]":
            out[name] = [v.decode() for _, v in values]
        elif isinstance(kind, list):
            out[name] = [decode_message(v, kind[0]) for _, v in values]
        else:
            out[name] = decode_message(values[-1][1], kind)
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A ``k8s\\0``-framed object as its JSON form. ProtobufError when it cannot."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    unknown = fields(body[len(MAGIC) :])
    type_meta = fields(unknown.get(1, [(2, b"")])[0][1])
    api_version = type_meta.get(1, [(2, b"")])[0][1].decode()
    kind = type_meta.get(2, [(2, b"")])[0][1].decode()
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise ProtobufError(
            f"the sandbox cannot decode {kind or 'this object'} from protobuf; send JSON "
            "(for kubectl, write a manifest and use kubectl create -f)"
        )
    raw = unknown.get(2, [(2, b"")])[0][1]
    obj = decode_message(raw, schema)
    return {"apiVersion": api_version, "kind": kind, **obj}
