"""Streaming responses of the Kubernetes API: a container's log lines and watch events.

Both are read by one thread and may be closed by another (or interrupted from a signal
handler) to stop a blocked read: a follow of a quiet container, a watch with nothing to say.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import TracebackType

import urllib3

from bridge.errors import UnavailableError
from bridge.kube_errors import error_for_status
from bridge.kube_resources import JSON

log = logging.getLogger(__name__)


class _Stream:
    """An open streaming response that another thread may close to interrupt a blocked read."""

    def __init__(self, response: urllib3.BaseHTTPResponse, *, what: str) -> None:
        self._response = response
        self._what = what
        self._closed = False
        self._interrupted = False

    def interrupt(self) -> None:
        """Make a blocked read return (the stream then ends quietly). Takes no lock and does
        no I/O but a socket shutdown: safe from another thread and from a signal handler."""
        self._interrupted = True
        try:
            self._response.shutdown()
        except Exception:  # best effort: the socket may already be gone
            log.debug("shutdown of %s failed", self._what, exc_info=True)

    def close(self) -> None:
        """Stop the stream and give the connection back; call it from the reading thread."""
        if self._closed:
            return
        self._closed = True
        self.interrupt()
        self._response.release_conn()

    @property
    def closed(self) -> bool:
        return self._closed

    def _lines(self) -> Iterator[tuple[bytes, bool]]:
        """(line without newline, whether it ended in a newline); a partial tail comes last."""
        buffer = b""
        try:
            while True:
                chunk = self._response.read1(65536)
                if not chunk:
                    break
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    yield line, True
        except (urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError) as exc:
            # ValueError/AttributeError: the response was shut down under us by close().
            if self._closed or self._interrupted:
                return
            raise UnavailableError(
                f"{self._what}: stream broke: {exc}", status=0, reason="StreamBroken"
            ) from exc
        finally:
            self.close()
        if buffer:
            yield buffer, False

    def __enter__(self) -> _Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LogStream(_Stream):
    """Lines of a container log. With ``keep_ends`` a complete line keeps its trailing "\\n",
    so a caller can tell a line cut by a dropped stream from a complete one."""

    def __init__(
        self, response: urllib3.BaseHTTPResponse, *, what: str, keep_ends: bool = False
    ) -> None:
        super().__init__(response, what=what)
        self._iter = (
            (line + b"\n" if ended and keep_ends else line).decode("utf-8", "replace")
            for line, ended in self._lines()
        )

    def __iter__(self) -> LogStream:
        return self

    def __next__(self) -> str:
        return next(self._iter)


class WatchStream(_Stream):
    """Watch events as (type, object). ERROR events raise (410 -> GoneError); BOOKMARKs only
    advance :attr:`resource_version`, which is where a caller resumes after the stream ends."""

    def __init__(
        self, response: urllib3.BaseHTTPResponse, *, what: str, resource_version: str | None
    ) -> None:
        super().__init__(response, what=what)
        self.resource_version = resource_version
        self._iter = self._events()

    def _events(self) -> Iterator[tuple[str, JSON]]:
        for raw, ended in self._lines():
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                if not ended:  # a cut stream's partial last line: the caller re-watches
                    return
                raise UnavailableError(
                    f"{self._what}: malformed watch event", status=0, reason="BadWatchEvent"
                ) from None
            kind = str(event.get("type", ""))
            obj = event.get("object") or {}
            if kind == "ERROR":
                raise error_for_status(int(obj.get("code") or 500), obj, what=self._what)
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if version:
                self.resource_version = str(version)
            if kind == "BOOKMARK":
                continue
            yield kind, obj

    def __iter__(self) -> WatchStream:
        return self

    def __next__(self) -> tuple[str, JSON]:
        return next(self._iter)
