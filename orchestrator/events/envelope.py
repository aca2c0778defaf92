"""The CloudEvents 1.0 envelope over the Pub/Sub protocol binding: constants, the two content modes
(structured and binary), decoding a message into an event dict and encoding one back, the
:class:`InvalidEvent` error with its stable reason codes, and the two values every event
carries: its time (:func:`event_time`) and its id (the batch operation id,
:func:`orchestrator.batch_ids.new_batch_operation_id`).

Both content modes end as the same event dict, so the request and migration parsers validate one
shape; a reason about a binary-mode attribute names it as the message carries it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from bridge import timefmt
from bridge.errors import LifecycleError

SPEC_VERSION: Final = "1.0"
REQUEST_TYPE: Final = "dev.tenant-lifecycle.operation.requested"
SUCCEEDED_TYPE: Final = "dev.tenant-lifecycle.operation.succeeded"
FAILED_TYPE: Final = "dev.tenant-lifecycle.operation.failed"
RESULT_SOURCE: Final = "tenant-lifecycle/orchestrator"
JSON_CONTENT_TYPE: Final = "application/json"

# The Pub/Sub protocol binding: a ``content-type`` attribute starting with this media type
# marks structured mode; binary mode carries the attributes as ``ce-<name>``.
CLOUDEVENTS_MEDIA_TYPE: Final = "application/cloudevents"
STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json; charset=utf-8"
CONTENT_TYPE_ATTRIBUTE: Final = "content-type"
BINARY_PREFIX: Final = "ce-"
STRUCTURED: Final = "structured"
BINARY: Final = "binary"
CONTENT_MODES: Final = (STRUCTURED, BINARY)

DEFAULT_MAX_EVENT_BYTES: Final = 256 * 1024
DEFAULT_MAX_DEPTH: Final = 32
DATA_ATTRIBUTES: Final = frozenset({"data", "data_base64"})


class InvalidEvent(LifecycleError):  # noqa: N818 -- the name INTERFACES.md agreed on
    """A message that is not a valid lifecycle request; it is dead-lettered, never retried.

    ``reason_code`` is stable (documented in docs/orchestrator.md); ``field`` is the JSON path of
    the offending attribute ("" for the message as a whole).
    """

    def __init__(
        self, reason_code: str, message: str, *, field: str = "", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.reason_code = reason_code
        self.field = field


def content_mode(data: bytes, attributes: Mapping[str, str] | None) -> str:
    """Which content mode a message uses (the binding's rule, kept compatible with the
    structured messages sent before binary mode existed):

    - a ``content-type`` attribute starting with ``application/cloudevents``: structured;
    - a ``ce-specversion`` attribute: binary;
    - otherwise structured when the body holds ``"specversion"`` (how every earlier producer,
      including ``tenantctl publish`` before ``--mode``, sent its events), binary when other
      ``ce-`` attributes are there (a binary message without ``ce-specversion``), structured
      when neither.
    """
    attrs = attributes or {}
    if _content_type(attrs).lower().startswith(CLOUDEVENTS_MEDIA_TYPE):
        return STRUCTURED
    if f"{BINARY_PREFIX}specversion" in attrs:
        return BINARY
    if any(key.startswith(BINARY_PREFIX) for key in attrs) and b'"specversion"' not in data:
        return BINARY
    return STRUCTURED


def decode_message(
    data: bytes,
    attributes: Mapping[str, str] | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[dict[str, Any], str]:
    """The event a message carries, as a structured-mode dict, and the mode it came in.

    Checks what belongs to the transport (size, encoding, JSON, the two modes agreeing); the
    event itself is validated by :func:`parse_request`. Raises :class:`InvalidEvent`.
    """
    attrs = dict(attributes or {})
    mode = content_mode(data, attrs)
    if len(data) > max_bytes:
        raise InvalidEvent(
            "TooLarge",
            f"the event is {len(data)} bytes, more than the {max_bytes}-byte limit",
            hint="keep the tenant environment and changeset small; large inputs belong in "
            "object storage, referenced from the changeset",
        )
    if mode == BINARY:
        return _decode_binary(data, attrs, max_depth=max_depth), BINARY
    return _decode_structured(data, attrs, max_depth=max_depth), STRUCTURED


def _decode_structured(
    data: bytes, attributes: Mapping[str, str], *, max_depth: int
) -> dict[str, Any]:
    content_type = _content_type(attributes)
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith(CLOUDEVENTS_MEDIA_TYPE) and media != "application/cloudevents+json":
        raise InvalidEvent(
            "UnsupportedContentType",
            f"the message's content-type {content_type!r} is an event format this consumer "
            "does not read",
            field=CONTENT_TYPE_ATTRIBUTE,
            hint=f"send the event as JSON ({STRUCTURED_CONTENT_TYPE!r}) or in binary mode",
        )
    if not data.strip():
        raise InvalidEvent(
            "EmptyBody",
            "the message body is empty: it must hold the CloudEvent as JSON (structured mode), "
            "or the event's data with ce-* attributes (binary mode)",
            hint='send {"specversion": "1.0", "type": ..., "id": ..., "data": {...}}, or '
            "tenantctl publish --mode structured|binary",
        )
    text = _utf8(data, "the event")
    event = _json(
        text,
        max_depth,
        code="NotJSON",
        what="the event",
        hint="send the CloudEvent as JSON (structured mode), or only its data with ce-* "
        "attributes (binary mode)",
    )
    if not isinstance(event, dict):
        raise InvalidEvent(
            "NotAnObject",
            f"the event is a JSON {json_type(event)}, not an object",
            hint='send {"specversion": "1.0", "type": ..., "id": ..., ...}',
        )
    # The binding lets a structured message repeat attributes as ce-* message attributes (we
    # do, for subscription filters); they must say the same as the body.
    for key in sorted(attributes):
        if not key.startswith(BINARY_PREFIX):
            continue
        name = key[len(BINARY_PREFIX) :]
        if name not in event or not isinstance(event[name], str | int | bool):
            continue
        if _canonical(event[name]) != attributes[key]:
            raise InvalidEvent(
                "ConflictingContentMode",
                f"the message attribute {key} is {_shown(attributes[key])} but the structured "
                f"event's {name} is {_shown(_canonical(event[name]))}",
                field=key,
                hint=f"send {key} with the same value as the event's {name}, or leave the "
                "ce-* attributes off a structured message",
            )
    return event


def _decode_binary(data: bytes, attributes: Mapping[str, str], *, max_depth: int) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for key, value in attributes.items():
        if not key.startswith(BINARY_PREFIX):
            continue  # transport attributes (tenant, origin, ...) are not the event's
        name = key[len(BINARY_PREFIX) :]
        if name in DATA_ATTRIBUTES:
            raise InvalidEvent(
                "InvalidExtension",
                f"attribute {key} is not allowed: in binary mode the data is the message body",
                field=key,
                hint=f"put the data in the message body and drop {key}",
            )
        event[name] = value
    content_type = _content_type(attributes)
    declared = event.get("datacontenttype")
    if content_type and declared is not None and declared != content_type:
        raise InvalidEvent(
            "ConflictingContentMode",
            f"the message attributes content-type ({_shown(content_type)}) and "
            f"ce-datacontenttype ({_shown(declared)}) disagree",
            field=CONTENT_TYPE_ATTRIBUTE,
            hint="send one of them (content-type is the binding's)",
        )
    if content_type:
        event["datacontenttype"] = content_type
    try:
        check_content_type(event)
    except InvalidEvent as exc:
        raise as_binary(exc) from None
    if not data.strip():
        raise InvalidEvent(
            "EmptyBody",
            "the message body is empty: in binary mode it holds the event's data, a JSON object",
            field="data",
            hint='send {"operation": "lifecycle.upsert", ...} as the message body',
        )
    text = _utf8(data, "the message body (the event's data)")
    media = content_type or "application/json (the default)"
    body = _json(
        text,
        max_depth,
        code="DataNotJSON",
        what=f"the message body (the event's data, content-type {media})",
        hint='send the data as a JSON object, e.g. {"operation": "lifecycle.upsert"}',
        field="data",
    )
    if isinstance(body, dict) and "specversion" in body:
        raise InvalidEvent(
            "ConflictingContentMode",
            "the message has ce-* attributes (binary mode) but its body is a whole structured "
            "CloudEvent (it has specversion): the two modes are mixed",
            field=f"{BINARY_PREFIX}specversion",
            hint="binary mode: only the data in the body; structured mode: the whole event in "
            f"the body, content-type {STRUCTURED_CONTENT_TYPE!r} and no ce-specversion",
        )
    event["data"] = body
    return event


def _content_type(attributes: Mapping[str, str]) -> str:
    for key, value in attributes.items():
        if key.lower() == CONTENT_TYPE_ATTRIBUTE:
            return value
    return ""


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(
            "NotUTF8",
            f"{what} is not UTF-8 text (invalid byte at offset {exc.start})",
            hint="send the CloudEvent as UTF-8 encoded JSON",
        ) from exc


def _json(text: str, max_depth: int, *, code: str, what: str, hint: str, field: str = "") -> Any:
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise InvalidEvent(
            "TooDeep",
            f"{what} is nested too deeply to parse",
            field=field,
            hint=f"keep nesting under {max_depth} levels",
        ) from exc
    except ValueError as exc:
        raise InvalidEvent(code, f"{what} is not JSON: {exc}", field=field, hint=hint) from exc
    depth = json_depth(value)
    if depth > max_depth:
        raise InvalidEvent(
            "TooDeep",
            f"{what} is nested {depth} levels deep, more than the limit of {max_depth}",
            field=field,
            hint=f"keep nesting under {max_depth} levels",
        )
    _check_unicode(text, value)
    return value


def _canonical(value: str | int | bool) -> str:
    """The CloudEvents canonical string of an attribute value (what binary mode carries)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


_BINARY_HINTS: Final = {
    "specversion": 'set the message attribute ce-specversion to "1.0"',
    "id": "set the message attribute ce-id to the batch operation id, e.g. a UUID",
    "source": 'set the message attribute ce-source to who asks, e.g. "tenant-manager"',
    "type": f"set the message attribute ce-type to {REQUEST_TYPE!r}",
    "subject": "set the message attribute ce-subject to the tenant environment id",
    "time": 'set ce-time to an RFC 3339 timestamp, e.g. "2026-11-22T10:00:00Z", or leave it out',
    "datacontenttype": 'set the message attribute content-type to "application/json" or '
    "leave it out",
}


def as_binary(exc: InvalidEvent) -> InvalidEvent:
    """The same problem, named as a binary-mode message carries the attribute."""
    name = exc.field
    if name in {"", "data", "data_base64", CONTENT_TYPE_ATTRIBUTE} or name.startswith(
        ("data.", BINARY_PREFIX)
    ):
        return exc
    carried = CONTENT_TYPE_ATTRIBUTE if name == "datacontenttype" else f"{BINARY_PREFIX}{name}"
    message = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", carried, str(exc.message), count=1)
    return InvalidEvent(
        exc.reason_code, message, field=carried, hint=_BINARY_HINTS.get(name, exc.hint)
    )


def _check_unicode(text: str, event: Any) -> None:
    """Refuse a lone UTF-16 surrogate escape (``"\\ud800"``): valid JSON, but a string that
    cannot be encoded as UTF-8 again -- publishing the dead-letter reason, an annotation or a
    history row would fail on it, and the message would come back forever."""
    if "\\ud" not in text.lower():
        return  # raw UTF-8 text cannot hold a surrogate; only an escape can
    try:
        json.dumps(event, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEvent(
            "InvalidUnicode",
            "the event contains a lone UTF-16 surrogate escape (\\ud800-\\udfff without its "
            "pair), which is not a Unicode character",
            hint="escape characters outside the BMP as a surrogate pair, or send them as UTF-8",
        ) from exc


def check_content_type(event: Mapping[str, Any]) -> None:
    if "datacontenttype" not in event or event["datacontenttype"] is None:
        return  # structured JSON mode: data is JSON by default
    value = event["datacontenttype"]
    media = value.split(";", 1)[0].strip().lower() if isinstance(value, str) else None
    if media is None or not (
        media in {"application/json", "text/json"}
        or (media.startswith("application/") and media.endswith("+json"))
    ):
        raise InvalidEvent(
            "UnsupportedContentType",
            f"datacontenttype {value!r} is not JSON",
            field="datacontenttype",
            hint='set "datacontenttype": "application/json" or leave it out',
        )


def json_depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (scalars are 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Sequence[Any] = list(current.values())
        elif isinstance(current, list):
            children = current
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------


def event_time(moment: datetime) -> str:
    """An event's ``time`` (and every time the orchestrator writes beside one): RFC 3339,
    ``2026-11-22T10:00:00Z``, with microseconds only when the moment has them, so a request's
    time goes back out as it was given. :func:`bridge.timefmt.rfc3339` spells it."""
    return timefmt.rfc3339(moment, precision="auto")


def encode_event(event: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the structured-mode wire format."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def structured_message(event: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Structured content mode: the whole event as the body, ``content-type`` naming the JSON
    event format (so a receiver following the binding does not read it as binary mode), and
    ``ce-type`` / ``ce-id`` repeated as attributes for subscription filters (the binding allows
    it; the consumer checks that they agree with the body)."""
    return encode_event(event), {
        CONTENT_TYPE_ATTRIBUTE: STRUCTURED_CONTENT_TYPE,
        f"{BINARY_PREFIX}type": str(event["type"]),
        f"{BINARY_PREFIX}id": str(event["id"]),
    }


def binary_message(event: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Binary content mode: only ``data`` in the body (JSON); every other attribute as a
    ``ce-<name>`` message attribute in its canonical string form, ``datacontenttype`` as
    ``content-type``."""
    attributes: dict[str, str] = {}
    for name, value in event.items():
        if name in DATA_ATTRIBUTES or value is None:
            continue
        if name == "datacontenttype" and not str(value).lower().startswith(CLOUDEVENTS_MEDIA_TYPE):
            attributes[CONTENT_TYPE_ATTRIBUTE] = str(value)
        elif name == "datacontenttype":
            # As content-type it would mark the message structured: the binding's rule.
            attributes[f"{BINARY_PREFIX}datacontenttype"] = str(value)
        elif isinstance(value, str | int | bool):
            attributes[f"{BINARY_PREFIX}{name}"] = _canonical(value)
        else:
            raise ValueError(f"attribute {name} is a {type(value).__name__}, not a scalar")
    if f"{BINARY_PREFIX}datacontenttype" not in attributes:
        attributes.setdefault(CONTENT_TYPE_ATTRIBUTE, JSON_CONTENT_TYPE)
    body = json.dumps(event.get("data"), separators=(",", ":"), ensure_ascii=False)
    return body.encode("utf-8"), attributes


def event_message(event: Mapping[str, Any], mode: str) -> tuple[bytes, dict[str, str]]:
    """The event as a Pub/Sub message in ``mode`` (:data:`STRUCTURED` or :data:`BINARY`)."""
    if mode == BINARY:
        return binary_message(event)
    if mode == STRUCTURED:
        return structured_message(event)
    raise ValueError(f"content mode must be one of {', '.join(CONTENT_MODES)}, not {mode!r}")
