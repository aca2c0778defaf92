"""Request parameters and stream outcomes shared by the sandbox's HTTP modules."""

from __future__ import annotations

import ssl

from .resources import ResourceType
from .status import bad_request

# What a client that went away looks like from the server side (TLS adds its own EOF errors).
DROPPED = (BrokenPipeError, ConnectionResetError, ssl.SSLError)


class AbortStreamError(Exception):
    """The stream was cut: close the connection without a terminating chunk."""


class Route:
    """A parsed resource path."""

    def __init__(
        self, rtype: ResourceType, namespace: str | None, name: str, subresource: str, watch: bool
    ) -> None:
        self.rtype = rtype
        self.namespace = namespace
        self.name = name
        self.subresource = subresource
        self.watch_path = watch


def flag(query: dict[str, list[str]], name: str) -> bool:
    value = query.get(name, [""])[-1].lower()
    return value in ("true", "1", "yes")


def integer(query: dict[str, list[str]], name: str) -> int | None:
    raw = query.get(name, [""])[-1]
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f"invalid value for {name}: {raw!r}") from exc
