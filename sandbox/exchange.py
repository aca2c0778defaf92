"""One HTTP exchange as the request handlers see it: the seams of the sandbox's HTTP side.

``sandbox.py`` starts the server (``server.py``), whose connection handler makes a
:class:`sandbox.router.Router` per request; the router hands watches and logs to
``streams.py`` and the non-resource paths to ``endpoints.py``. Each of them calls back into what
made it (the sandbox's parts, the connection's writer, the router's parsed request). They see
those only through the protocols below, so the HTTP modules import each other in one direction.
"""

from __future__ import annotations

import threading
from email.message import Message
from typing import Any, Protocol

from .api import Api
from .faults import Faults
from .rbac import Authorizer, Tokens, User
from .runtime import PodRuntime


class Served(Protocol):
    """The sandbox as its HTTP side sees it (``sandbox.Sandbox``)."""

    @property
    def api(self) -> Api: ...

    @property
    def runtime(self) -> PodRuntime: ...

    @property
    def faults(self) -> Faults: ...

    @property
    def tokens(self) -> Tokens: ...

    @property
    def authorizer(self) -> Authorizer: ...

    @property
    def rbac(self) -> bool: ...

    @property
    def port(self) -> int: ...

    @property
    def stopping(self) -> threading.Event:
        """Set when the sandbox stops: open watches and log streams end."""
        ...


class Responder(Protocol):
    """One connection's request and its ways to answer (``server.Handler``)."""

    @property
    def command(self) -> str:
        """The HTTP method."""
        ...

    @property
    def path(self) -> str: ...

    @property
    def headers(self) -> Message: ...

    @property
    def body(self) -> bytes: ...

    def send_json(
        self,
        code: int,
        obj: Any,
        *,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None: ...

    def send_bytes(self, code: int, data: bytes, content_type: str) -> None: ...

    def start_stream(self, content_type: str) -> None:
        """A 200 with a chunked body, written with ``write_chunk`` and ended by ``end_stream``."""
        ...

    def write_chunk(self, data: bytes) -> None: ...

    def end_stream(self) -> None: ...


class Exchange(Protocol):
    """A parsed, authenticated request (``router.Router``) as the handlers of watches, logs and
    non-resource paths see it."""

    @property
    def h(self) -> Responder: ...

    @property
    def sb(self) -> Served: ...

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def query(self) -> dict[str, list[str]]: ...

    @property
    def accept(self) -> str: ...

    @property
    def user(self) -> User: ...

    def body_json(self) -> Any: ...

    def authorize_path(self) -> None:
        """403 unless the user may use this non-resource path."""
        ...
