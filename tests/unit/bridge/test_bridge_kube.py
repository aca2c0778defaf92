"""Unit tests of the Kubernetes adapter: error translation and retry policy.

A tiny scripted HTTP server (``FakeApiServer``) stands in for the API server so each test can
say exactly which statuses come back; the real sandbox is exercised in tests/integration.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import kube
from bridge.errors import (
    APIError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    UnavailableError,
)

Reply = tuple[int, dict[str, str], bytes]


class FakeApiServer:
    """Replies from a script: each request pops the next reply (the last one repeats)."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                server.requests.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                        "body": json.loads(body) if body else None,
                        "auth": self.headers.get("Authorization"),
                        "content_type": self.headers.get("Content-Type"),
                    }
                )
                status, headers, payload = (
                    server.replies.pop(0) if len(server.replies) > 1 else server.replies[0]
                )
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle  # noqa: N815 - http.server API

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def reply(self, status: int, body: Any = None, **headers: str) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
        self.replies.append((status, {k.replace("_", "-"): v for k, v in headers.items()}, payload))


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


@pytest.fixture
def fake_api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def api(fake_api: FakeApiServer, sleeps: list[float]) -> Iterator[kube.Kube]:
    settings = kube.KubeSettings(max_retries=3, backoff_base=0.01, backoff_max=0.05)
    client = kube.Kube(settings=settings, host=fake_api.url, token="t0k", sleep=sleeps.append)
    yield client
    client.close()


POD = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {}}


def test_get_returns_plain_dict_with_bearer_token(fake_api: FakeApiServer, api: kube.Kube) -> None:
    fake_api.reply(200, POD)
    pod = api.get(kube.PODS, "p", namespace="ns")
    assert pod["metadata"]["name"] == "p"
    assert pod["kind"] == "Pod"
    assert fake_api.requests[0]["path"] == "/api/v1/namespaces/ns/pods/p"
    assert fake_api.requests[0]["auth"] == "Bearer t0k"


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [
        (404, "NotFound", NotFoundError),
        (409, "AlreadyExists", ConflictError),
        (410, "Expired", GoneError),
        (422, "Invalid", InvalidError),
    ],
)
def test_error_statuses_translate_without_retry(
    fake_api: FakeApiServer, api: kube.Kube, code: int, reason: str, error: type[APIError]
) -> None:
    fake_api.reply(code, status_body(code, reason, 'jobs.batch "x" oops'))
    with pytest.raises(error) as info:
        api.get(kube.JOBS, "x", namespace="team")
    assert len(fake_api.requests) == 1
    assert info.value.message == f'get jobs team/x: {code} {reason}: jobs.batch "x" oops'
    assert info.value.__cause__ is not None


def test_429_retried_honouring_retry_after(
    fake_api: FakeApiServer, api: kube.Kube, sleeps: list[float]
) -> None:
    fake_api.reply(429, status_body(429, "TooManyRequests", "slow down"), Retry_After="2")
    fake_api.reply(500, status_body(500, "InternalError", "boom"))
    fake_api.reply(200, POD)
    assert api.get(kube.PODS, "p", namespace="ns")["metadata"]["name"] == "p"
    assert len(fake_api.requests) == 3
    assert sleeps[0] >= 2.0  # Retry-After is a floor
    assert 0.0 <= sleeps[1] <= 0.05  # full jitter under the cap


def test_retries_give_up_after_max(
    fake_api: FakeApiServer, api: kube.Kube, sleeps: list[float]
) -> None:
    fake_api.reply(503, status_body(503, "ServiceUnavailable", "down"))
    with pytest.raises(UnavailableError):
        api.get(kube.PODS, "p", namespace="ns")
    assert len(fake_api.requests) == 4
    assert len(sleeps) == 3


def test_forbidden_is_retried_at_most_once(fake_api: FakeApiServer, api: kube.Kube) -> None:
    fake_api.reply(403, status_body(403, "Forbidden", 'pods "p" is forbidden'))
    with pytest.raises(ForbiddenError) as info:
        api.get(kube.PODS, "p", namespace="ns")
    assert len(fake_api.requests) == 2
    assert "forbidden" in str(info.value)
    assert "rbac" in str(info.value).lower()


def test_create_with_fixed_name_retried_and_409_resolved_by_get(
    fake_api: FakeApiServer, api: kube.Kube
) -> None:
    fake_api.reply(500, status_body(500, "InternalError", "etcd timeout"))
    fake_api.reply(409, status_body(409, "AlreadyExists", "exists"))
    fake_api.reply(200, POD)
    created = api.create(kube.PODS, POD, namespace="ns")
    assert created["metadata"]["name"] == "p"
    assert [r["method"] for r in fake_api.requests] == ["POST", "POST", "GET"]
    assert fake_api.requests[0]["body"]["kind"] == "Pod"


def test_create_conflict_on_first_try_is_a_conflict(
    fake_api: FakeApiServer, api: kube.Kube
) -> None:
    fake_api.reply(409, status_body(409, "AlreadyExists", "exists"))
    with pytest.raises(ConflictError):
        api.create(kube.PODS, POD, namespace="ns")


def test_create_with_generate_name_is_not_retried(fake_api: FakeApiServer, api: kube.Kube) -> None:
    fake_api.reply(500, status_body(500, "InternalError", "boom"))
    with pytest.raises(UnavailableError):
        api.create(kube.PODS, {"metadata": {"generateName": "p-"}}, namespace="ns")
    assert len(fake_api.requests) == 1


def test_delete_404_after_retry_counts_as_done(fake_api: FakeApiServer, api: kube.Kube) -> None:
    fake_api.reply(503, status_body(503, "ServiceUnavailable", "down"))
    fake_api.reply(404, status_body(404, "NotFound", "gone"))
    api.delete(kube.PODS, "p", namespace="ns", grace_period_seconds=5)
    assert fake_api.requests[0]["body"]["gracePeriodSeconds"] == 5


def test_patch_is_a_merge_patch(fake_api: FakeApiServer, api: kube.Kube) -> None:
    fake_api.reply(200, POD)
    api.patch(kube.SECRETS, "s", {"metadata": {"labels": {"a": "b"}}}, namespace="ns")
    assert fake_api.requests[0]["content_type"] == "application/merge-patch+json"


def test_list_follows_continue(fake_api: FakeApiServer, api: kube.Kube) -> None:
    fake_api.reply(200, {"metadata": {"continue": "c1", "resourceVersion": "7"}, "items": [POD]})
    fake_api.reply(200, {"metadata": {}, "items": [POD, POD]})
    items, version = api.list_with_version(kube.PODS, namespace="ns", label_selector="a=b")
    assert len(items) == 3
    assert version == "7"
    assert fake_api.requests[0]["query"]["labelSelector"] == "a=b"
    assert fake_api.requests[1]["query"]["continue"] == "c1"


def test_watch_error_event_410_is_gone(fake_api: FakeApiServer, api: kube.Kube) -> None:
    events = [
        {"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "5"}}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "6"}}},
        {"type": "ERROR", "object": status_body(410, "Expired", "too old")},
    ]
    fake_api.reply(200, b"".join(json.dumps(e).encode() + b"\n" for e in events))
    stream = api.watch(kube.PODS, namespace="ns", resource_version="4")
    kind, obj = next(stream)
    assert (kind, obj["metadata"]["name"]) == ("ADDED", "a")
    with pytest.raises(GoneError):
        next(stream)
    assert stream.resource_version == "6"


def test_log_stream_keeps_a_partial_last_line_distinguishable(
    fake_api: FakeApiServer, api: kube.Kube
) -> None:
    fake_api.reply(200, b"2024-01-01T00:00:00.1Z one\n2024-01-01T00:00:00.2Z tw")
    lines = list(api.stream_log("ns", "p", container="c", keep_ends=True))
    assert lines == ["2024-01-01T00:00:00.1Z one\n", "2024-01-01T00:00:00.2Z tw"]
    assert fake_api.requests[0]["query"] == {
        "container": "c",
        "follow": "true",
        "timestamps": "true",
    }


def test_connection_refused_is_unavailable(sleeps: list[float]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = kube.KubeSettings(max_retries=2, backoff_base=0.01)
    api = kube.Kube(settings=settings, host=f"http://127.0.0.1:{port}", sleep=sleeps.append)
    with api, pytest.raises(UnavailableError) as info:
        api.get(kube.NAMESPACES, "x")
    assert "cannot reach" in str(info.value)
    assert len(sleeps) == 2
    assert info.value.__cause__ is not None


@given(
    retry=st.integers(min_value=0, max_value=30),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=1000)),
)
def test_backoff_is_bounded_full_jitter(retry: int, retry_after: float | None) -> None:
    delay = kube.backoff_delay(
        retry, base=0.2, maximum=5.0, retry_after=retry_after, retry_after_max=60.0
    )
    assert delay >= 0
    assert delay <= max(5.0, min(retry_after or 0.0, 60.0))
    if retry_after is not None:
        assert delay >= min(retry_after, 60.0)


def test_resource_paths() -> None:
    assert kube.WORKFLOWS.path(namespace="argo", name="w") == (
        "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows/w"
    )
    assert kube.NAMESPACES.path(name="team") == "/api/v1/namespaces/team"
    assert kube.JOBS.path() == "/apis/batch/v1/jobs"


def quota_race_body() -> dict[str, Any]:
    """What kube-apiserver answers when quota admission loses a race (kubernetes#67761)."""
    body = status_body(
        409,
        "Conflict",
        'Operation cannot be fulfilled on resourcequotas "lifecycle": the object has been '
        "modified; please apply your changes to the latest version and try again",
    )
    body["details"] = {"name": "lifecycle", "kind": "resourcequotas"}
    return body


def test_a_lost_quota_race_on_create_is_retried_not_taken_for_an_existing_object(
    fake_api: FakeApiServer, api: kube.Kube
) -> None:
    # Before: the 409 read as "the pod exists", the bridge attached with a GET and got 404.
    fake_api.reply(409, quota_race_body())
    fake_api.reply(201, POD)
    created = api.create(kube.PODS, POD, namespace="ns")
    assert created["metadata"]["name"] == "p"
    assert [r["method"] for r in fake_api.requests] == ["POST", "POST"]


def test_a_quota_race_then_a_taken_name_is_a_conflict_not_our_own_echo(
    fake_api: FakeApiServer, api: kube.Kube
) -> None:
    # The raced try wrote nothing, so the later 409 is somebody else's pod: no attaching GET.
    fake_api.reply(409, quota_race_body())
    fake_api.reply(409, status_body(409, "AlreadyExists", 'pods "p" already exists'))
    with pytest.raises(ConflictError):
        api.create(kube.PODS, POD, namespace="ns")
    assert [r["method"] for r in fake_api.requests] == ["POST", "POST"]


def test_a_quota_race_is_retried_even_for_a_generated_name(
    fake_api: FakeApiServer, api: kube.Kube, sleeps: list[float]
) -> None:
    fake_api.reply(409, quota_race_body())
    fake_api.reply(429, status_body(429, "TooManyRequests", "slow down"))
    fake_api.reply(201, POD)
    generated = {"metadata": {"generateName": "p-"}, "spec": {}}
    assert api.create(kube.PODS, generated, namespace="ns")["metadata"]["name"] == "p"
    assert len(fake_api.requests) == 3
    assert len(sleeps) == 2


def test_a_generated_name_is_not_retried_after_a_server_error(
    fake_api: FakeApiServer, api: kube.Kube
) -> None:
    # A 500 may have created the object: a second POST could make a second one.
    fake_api.reply(500, status_body(500, "InternalError", "etcd timeout"))
    generated = {"metadata": {"generateName": "p-"}, "spec": {}}
    with pytest.raises(UnavailableError):
        api.create(kube.PODS, generated, namespace="ns")
    assert len(fake_api.requests) == 1


def test_a_quota_race_that_persists_gives_up_as_unavailable_with_the_reason(
    fake_api: FakeApiServer, api: kube.Kube
) -> None:
    fake_api.reply(409, quota_race_body())
    with pytest.raises(UnavailableError) as info:
        api.create(kube.PODS, POD, namespace="ns")
    assert len(fake_api.requests) == 4
    assert info.value.rejected
    assert 'resourcequotas "lifecycle"' in str(info.value)
    assert "kubernetes/kubernetes#67761" in str(info.value)


def test_a_conflict_about_another_kind_is_still_a_conflict(
    fake_api: FakeApiServer, api: kube.Kube
) -> None:
    body = status_body(409, "Conflict", "the object has been modified")
    body["details"] = {"name": "p", "kind": "pods"}
    fake_api.reply(409, body)
    with pytest.raises(ConflictError):
        api.patch(kube.PODS, "p", {"metadata": {"labels": {"a": "b"}}}, namespace="ns")
    assert len(fake_api.requests) == 1
