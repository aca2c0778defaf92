"""Kinds of bad request message, each with the reason code it must be dead-lettered with.

Shared by the unit tests of the parser and the integration test that sends them all through the
real emulator.
"""

from __future__ import annotations

import json
from typing import Any


def valid_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "type": "dev.tenant-lifecycle.operation.requested",
        "source": "tenant-manager",
        "id": "batch-0001",
        "subject": "tenant-799a",
        "time": "2026-11-22T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "operation": "lifecycle.upsert",
            "region": "eu-west-1",
            "tenantEnvironment": {"applications": ["catalog", "search"]},
            "changeset": {},
        },
    }
    for key, value in overrides.items():
        if value is _DROP:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def with_data(**overrides: Any) -> dict[str, Any]:
    data = dict(valid_event()["data"])
    for key, value in overrides.items():
        if value is _DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return valid_event(data=data)


_DROP = object()


def _encode(event: Any) -> bytes:
    return json.dumps(event).encode()


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


# (name, message bytes, reason code, a word the reason must contain)
BAD_EVENTS: list[tuple[str, bytes, str, str]] = [
    ("not-json", b"lifecycle.upsert please", "NotJSON", "not JSON"),
    ("not-utf8", b'{"id": "\xff\xfe"}', "NotUTF8", "UTF-8"),
    (
        "lone-surrogate-escape",
        _encode(valid_event(source="tenant-\ud800manager")),
        "InvalidUnicode",
        "surrogate",
    ),
    ("empty-body", b"", "EmptyBody", "body is empty"),
    ("blank-body", b" \n", "EmptyBody", "body is empty"),
    ("json-array", b'[{"specversion": "1.0"}]', "NotAnObject", "array"),
    ("json-string", b'"hello"', "NotAnObject", "string"),
    (
        "missing-specversion",
        _encode(valid_event(specversion=_DROP)),
        "MissingSpecVersion",
        "specversion",
    ),
    ("wrong-specversion", _encode(valid_event(specversion="0.3")), "UnsupportedSpecVersion", "0.3"),
    (
        "numeric-specversion",
        _encode(valid_event(specversion=1.0)),
        "UnsupportedSpecVersion",
        "specversion",
    ),
    ("missing-id", _encode(valid_event(id=_DROP)), "MissingAttribute", "id"),
    ("empty-id", _encode(valid_event(id="")), "EmptyAttribute", "id"),
    ("numeric-id", _encode(valid_event(id=42)), "WrongAttributeType", "id"),
    ("id-bad-characters", _encode(valid_event(id="batch 1/../x")), "InvalidId", "id"),
    ("id-too-long", _encode(valid_event(id="b" * 64)), "InvalidId", "63"),
    ("missing-subject", _encode(valid_event(subject=_DROP)), "MissingAttribute", "subject"),
    (
        "subject-bad-characters",
        _encode(valid_event(subject="tenant;drop")),
        "InvalidSubject",
        "subject",
    ),
    ("missing-source", _encode(valid_event(source=_DROP)), "MissingAttribute", "source"),
    ("source-with-space", _encode(valid_event(source="tenant manager")), "InvalidSource", "source"),
    ("missing-type", _encode(valid_event(type=_DROP)), "MissingAttribute", "type"),
    (
        "wrong-type",
        _encode(valid_event(type="dev.tenant-lifecycle.operation.succeeded")),
        "WrongType",
        "type",
    ),
    ("bad-time", _encode(valid_event(time="22/11/2026 10:00")), "InvalidTime", "RFC 3339"),
    ("impossible-time", _encode(valid_event(time="2026-13-45T10:00:00Z")), "InvalidTime", "time"),
    (
        "xml-content-type",
        _encode(valid_event(datacontenttype="application/xml")),
        "UnsupportedContentType",
        "datacontenttype",
    ),
    ("missing-data", _encode(valid_event(data=_DROP)), "MissingData", "data"),
    (
        "data-base64",
        _encode(valid_event(data=_DROP, data_base64="e30=")),
        "DataNotJSON",
        "data_base64",
    ),
    ("data-string", _encode(valid_event(data="lifecycle.upsert")), "DataNotObject", "object"),
    ("empty-data", _encode(valid_event(data={})), "EmptyData", "empty"),
    ("missing-operation", _encode(with_data(operation=_DROP)), "MissingOperation", "operation"),
    (
        "operation-not-string",
        _encode(with_data(operation=["lifecycle.upsert"])),
        "WrongFieldType",
        "operation",
    ),
    ("operation-no-dot", _encode(with_data(operation="upsert")), "MalformedOperation", "dot"),
    (
        "operation-uppercase",
        _encode(with_data(operation="Lifecycle.Upsert")),
        "MalformedOperation",
        "lowercase",
    ),
    (
        "operation-unknown",
        _encode(with_data(operation="lifecycle.explode")),
        "UnknownOperation",
        "unknown",
    ),
    ("region-number", _encode(with_data(region=1)), "InvalidRegion", "region"),
    (
        "environment-list",
        _encode(with_data(tenantEnvironment=["catalog"])),
        "InvalidTenantEnvironment",
        "tenantEnvironment",
    ),
    (
        "applications-string",
        _encode(with_data(tenantEnvironment={"applications": "catalog"})),
        "InvalidApplications",
        "applications",
    ),
    (
        "applications-number",
        _encode(with_data(tenantEnvironment={"applications": ["catalog", 7]})),
        "InvalidApplications",
        "applications[1]",
    ),
    ("changeset-string", _encode(with_data(changeset="v42")), "InvalidChangeset", "changeset"),
    (
        "bad-extension-name",
        _encode(valid_event(**{"Tenant-Id": "x"})),
        "InvalidExtension",
        "extension",
    ),
    (
        "extension-object",
        _encode(valid_event(traceparent={"a": 1})),
        "InvalidExtension",
        "traceparent",
    ),
    ("too-deep", _encode(with_data(changeset=_nested(40))), "TooDeep", "nested"),
    ("oversized", _encode(with_data(changeset={"blob": "x" * (300 * 1024)})), "TooLarge", "limit"),
]


def binary_parts(**overrides: Any) -> tuple[bytes, dict[str, str]]:
    """A valid request in binary content mode: (body, attributes); ``overrides`` change (or
    with ``_DROP`` remove) message attributes, e.g. ``**{"ce-id": DROP}``."""
    event = valid_event()
    attributes = {
        f"ce-{name}": value
        for name, value in event.items()
        if name not in {"data", "datacontenttype"}
    }
    attributes["content-type"] = event["datacontenttype"]
    attributes["origin"] = "test"
    for key, value in overrides.items():
        if value is _DROP:
            attributes.pop(key, None)
        else:
            attributes[key] = value
    return _encode(event["data"]), attributes


DROP = _DROP
_BODY, _ = binary_parts()

# (name, body, attributes, reason code, a word the reason must contain, field)
BAD_BINARY_EVENTS: list[tuple[str, bytes, dict[str, str], str, str, str]] = [
    (
        "binary-missing-id",
        _BODY,
        binary_parts(**{"ce-id": _DROP})[1],
        "MissingAttribute",
        "ce-id",
        "ce-id",
    ),
    (
        "binary-wrong-specversion",
        _BODY,
        binary_parts(**{"ce-specversion": "0.3"})[1],
        "UnsupportedSpecVersion",
        "ce-specversion",
        "ce-specversion",
    ),
    (
        "binary-unknown-type",
        _BODY,
        binary_parts(**{"ce-type": "com.example.tenant.created"})[1],
        "WrongType",
        "ce-type",
        "ce-type",
    ),
    (
        "binary-data-not-json",
        b"operation=lifecycle.upsert",
        binary_parts()[1],
        "DataNotJSON",
        "application/json",
        "data",
    ),
    (
        "binary-with-structured-body",
        _encode(valid_event(id="batch-0002")),
        binary_parts(**{"ce-id": "batch-0002"})[1],
        "ConflictingContentMode",
        "mixed",
        "ce-specversion",
    ),
    (
        "binary-empty-body",
        b"",
        binary_parts()[1],
        "EmptyBody",
        "body is empty",
        "data",
    ),
    (
        "binary-xml-content-type",
        b"<operation>lifecycle.upsert</operation>",
        binary_parts(**{"content-type": "application/xml"})[1],
        "UnsupportedContentType",
        "content-type",
        "content-type",
    ),
    (
        "binary-bad-subject",
        _BODY,
        binary_parts(**{"ce-subject": "tenant;drop"})[1],
        "InvalidSubject",
        "ce-subject",
        "ce-subject",
    ),
    (
        "binary-bad-extension-name",
        _BODY,
        binary_parts(**{"ce-Tenant_Id": "x"})[1],
        "InvalidExtension",
        "extension",
        "ce-Tenant_Id",
    ),
    (
        "binary-unknown-operation",
        _encode({"operation": "lifecycle.explode"}),
        binary_parts()[1],
        "UnknownOperation",
        "unknown",
        "data.operation",
    ),
    (
        "structured-with-conflicting-ce-id",
        _encode(valid_event(id="batch-0003")),
        {"content-type": "application/cloudevents+json", "ce-id": "batch-9999", "origin": "test"},
        "ConflictingContentMode",
        "ce-id",
        "ce-id",
    ),
]
