"""Tenant inventory: YAML, CSV and an HTTP endpoint (a real local http.server), selectors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bridge.errors import UsageError
from orchestrator.fleet.inventory import (
    FileInventory,
    HttpInventory,
    InventoryError,
    Tenant,
    open_inventory,
    parse_selector,
    read_tenant_ids,
    resolve_ids,
)

YAML = """\
tenants:
  - id: t1
    region: eu-west-1
    applications: [catalog, search]
    labels: {tier: gold}
  - id: t2
    region: us-east-1
    applications: [catalog]
    labels: {tier: silver, legacy: "yes"}
  - id: t3
    region: eu-west-1
    labels: {tier: bronze}
"""

CSV = """\
id,region,applications,tier,legacy
t1,eu-west-1,catalog;search,gold,
t2,us-east-1,catalog,silver,yes
t3,eu-west-1,,bronze,
"""

EXPECTED = [
    Tenant("t1", "eu-west-1", ("catalog", "search"), {"tier": "gold"}),
    Tenant("t2", "us-east-1", ("catalog",), {"tier": "silver", "legacy": "yes"}),
    Tenant("t3", "eu-west-1", (), {"tier": "bronze"}),
]


@pytest.mark.parametrize(("name", "text"), [("tenants.yaml", YAML), ("tenants.csv", CSV)])
def test_file_inventories_read_the_same_tenants(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert open_inventory(str(path)).tenants() == EXPECTED


def test_a_bare_yaml_list_and_the_request_environment(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text("- id: 799a\n  applications: catalog, search\n")
    (tenant,) = FileInventory(path).tenants()
    assert tenant == Tenant("799a", None, ("catalog", "search"), {})
    assert tenant.environment() == {"applications": ["catalog", "search"]}
    assert EXPECTED[0].environment() == {
        "applications": ["catalog", "search"],
        "labels": {"tier": "gold"},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tenants: 3\n", "expected a list of tenants"),
        ("tenants:\n  - region: x\n", r"tenants\[0\]: field 'id' is missing"),
        ("tenants:\n  - id: a\n    applications: {x: 1}\n", "'applications' must be a list"),
        ("tenants:\n  - id: a\n    labels: [x]\n", "'labels' must be a mapping"),
        ("tenants:\n  - id: a\n  - id: a\n", "tenant 'a' is listed twice"),
        ("tenants: [\n", "not valid YAML"),
        ("tenants:\n  - just-a-string\n", "a tenant must be a mapping"),
    ],
)
def test_malformed_yaml_is_named_precisely(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError, match=message) as caught:
        FileInventory(path).tenants()
    assert str(path) in str(caught.value)


def test_csv_without_an_id_column_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,region\nx,eu\n")
    with pytest.raises(InventoryError, match="no 'id' column"):
        FileInventory(path).tenants()
    path.write_text("id,region\n,eu\n")
    with pytest.raises(InventoryError, match="line 2: field 'id' is missing"):
        FileInventory(path).tenants()
    with pytest.raises(InventoryError, match="cannot read"):
        FileInventory(tmp_path / "missing.yaml").tenants()
    with pytest.raises(UsageError, match="unsupported scheme"):
        open_inventory("ftp://x/tenants")


@pytest.mark.parametrize(
    ("expression", "ids"),
    [
        ("region=eu-west-1", ["t1", "t3"]),
        ("region==eu-west-1,tier in (gold,silver)", ["t1"]),
        ("tier in (gold, silver)", ["t1", "t2"]),
        ("tier notin (gold)", ["t2", "t3"]),
        ("region!=eu-west-1", ["t2"]),
        ("legacy", ["t2"]),
        ("!legacy", ["t1", "t3"]),
        ("application=search", ["t1"]),
        ("applications in (catalog)", ["t1", "t2"]),
        ("id in (t2,t3),!legacy", ["t3"]),
    ],
)
def test_selectors(expression: str, ids: list[str]) -> None:
    assert [t.id for t in parse_selector(expression).select(EXPECTED)] == ids


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "selector is empty"),
        ("tier in gold", "values must be in parentheses"),
        ("tier in (gold", "'\\(' is never closed"),
        ("tier in gold)", "'\\)' without '\\('"),
        ("region=", "no value after '='"),
        ("region=a,,tier=b", "empty term"),
        ("tier in ()", "the value list is empty"),
        ("region=a=b", "is not understood"),
        ("tier ~ gold", "is not understood"),
    ],
)
def test_bad_selectors_name_the_term_and_the_fix(expression: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_selector(expression)
    assert caught.value.hint


def test_tenant_id_files_and_resolution(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("# canaries first\nt3\n\nt1  # gold\nt3\n")
    assert read_tenant_ids(path) == ["t3", "t1"]
    inventory = FileInventory(tmp_path / "inv.yaml")
    (tmp_path / "inv.yaml").write_text(YAML)
    assert resolve_ids(["t3", "t1"], inventory) == [EXPECTED[2], EXPECTED[0]]
    assert resolve_ids(["x"], None) == [Tenant("x")]
    with pytest.raises(UsageError, match=r"1 tenant id\(s\) are not in inventory .*: nope"):
        resolve_ids(["t1", "nope"], inventory)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UsageError, match="no tenant ids"):
        read_tenant_ids(tmp_path / "empty.txt")


class _Handler(BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, Any]] = {}
    seen_auth: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).seen_auth.append(self.headers.get("Authorization"))
        body = type(self).pages.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def inventory_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_inventory_follows_pages_and_sends_the_token(inventory_server: str) -> None:
    _Handler.pages = {
        "/tenants": {
            "tenants": [
                {
                    "id": "t1",
                    "region": "eu-west-1",
                    "applications": ["catalog", "search"],
                    "labels": {"tier": "gold"},
                },
            ],
            "next": "/tenants?page=2",
        },
        "/tenants?page=2": {
            "tenants": [
                {
                    "id": "t2",
                    "region": "us-east-1",
                    "applications": ["catalog"],
                    "labels": {"tier": "silver", "legacy": "yes"},
                },
                {"id": "t3", "region": "eu-west-1", "labels": {"tier": "bronze"}},
            ],
            "next": None,
        },
        "/broken": "<html>oops</html>",
        "/loop": {"tenants": [], "next": "/loop"},
    }
    _Handler.seen_auth = []
    inventory = open_inventory(f"{inventory_server}/tenants", token="s3cret")
    assert isinstance(inventory, HttpInventory)
    assert inventory.tenants() == EXPECTED
    assert _Handler.seen_auth == ["Bearer s3cret", "Bearer s3cret"]

    with pytest.raises(InventoryError, match="HTTP 404") as caught:
        HttpInventory(f"{inventory_server}/missing", token="s3cret").tenants()
    assert "s3cret" not in str(caught.value)
    with pytest.raises(InventoryError, match="not JSON"):
        HttpInventory(f"{inventory_server}/broken").tenants()
    with pytest.raises(InventoryError, match="pagination does not end"):
        HttpInventory(f"{inventory_server}/loop").tenants()


def test_http_inventory_that_is_down() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(InventoryError, match="cannot connect"):
        HttpInventory(f"http://127.0.0.1:{port}/tenants", timeout=2).tenants()
