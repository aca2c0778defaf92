"""The lifecycle events on the bus: CloudEvents 1.0 over the Pub/Sub protocol binding.

A request (``dev.tenant-lifecycle.operation.requested``) is parsed and validated by
:func:`parse_request`, which either returns a :class:`LifecycleRequest` or raises
:class:`InvalidEvent` with a stable ``reason_code`` (machine-readable, put on the dead-letter
message as the ``reasonCode`` attribute) and a message naming the field and the fix.

Both content modes of the binding are accepted (:func:`decode_message` tells them apart): in
*structured* mode the message body is the whole event as JSON; in *binary* mode the body is only
``data`` and the other attributes are ``ce-``-prefixed message attributes (``content-type`` is
``datacontenttype``). Both end as the same event dict and go through the same validation, so
the same reason codes apply; a reason about a binary-mode attribute names it as the message
carries it (``ce-id``, ``content-type``). Results are published in structured mode
(:func:`structured_message`, see docs/orchestrator.md).

Results (``dev.tenant-lifecycle.operation.succeeded`` / ``.failed``) carry the *same* ``id`` as
the request (the batch operation id): it is deterministic, so a consumer deduplicates a result
that was published twice (at-least-once publishing after a crash, see docs/orchestrator.md) by
``id`` + ``type``.

Validation is strict on what the orchestrator uses and lenient on what it does not: unknown
top-level attributes are CloudEvents extensions (their names and value types are checked, their
values are ignored); unknown keys inside ``data`` are ignored (forward compatibility).

The package holds one module per part: :mod:`.envelope` (the binding, decoding, encoding, the
error), :mod:`.request`, :mod:`.result` and :mod:`.migration` (the migration request event).
"""

from orchestrator.events.envelope import (
    BINARY,
    BINARY_PREFIX,
    CONTENT_MODES,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_EVENT_BYTES,
    FAILED_TYPE,
    JSON_CONTENT_TYPE,
    REQUEST_TYPE,
    RESULT_SOURCE,
    SPEC_VERSION,
    STRUCTURED,
    STRUCTURED_CONTENT_TYPE,
    SUCCEEDED_TYPE,
    InvalidEvent,
    binary_message,
    content_mode,
    decode_message,
    encode_event,
    event_message,
    event_time,
    json_depth,
    structured_message,
)
from orchestrator.events.request import LifecycleRequest, parse_request, request_event
from orchestrator.events.result import result_event

__all__ = [
    "BINARY",
    "BINARY_PREFIX",
    "CONTENT_MODES",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_EVENT_BYTES",
    "FAILED_TYPE",
    "JSON_CONTENT_TYPE",
    "REQUEST_TYPE",
    "RESULT_SOURCE",
    "SPEC_VERSION",
    "STRUCTURED",
    "STRUCTURED_CONTENT_TYPE",
    "SUCCEEDED_TYPE",
    "InvalidEvent",
    "LifecycleRequest",
    "binary_message",
    "content_mode",
    "decode_message",
    "encode_event",
    "event_message",
    "event_time",
    "json_depth",
    "parse_request",
    "request_event",
    "result_event",
    "structured_message",
]
