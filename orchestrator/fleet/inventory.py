"""Tenant inventory: which tenant environments exist, their region, applications and labels.

One interface (:class:`Inventory`), three sources:

* a YAML file — ``{"tenants": [{"id", "region", "applications": [...], "labels": {...}}]}``
  or the bare list;
* a CSV file — header ``id,region,applications,<label>...``; ``applications`` is
  ``;``-separated and every other column is a label;
* an HTTP(S) endpoint — ``GET`` returns JSON ``{"tenants": [...], "next": URL|null}`` (the same
  tenant objects as YAML; ``next``, absolute or relative, is followed for pagination).

``Selector`` picks tenants with a Kubernetes-style expression over ``id``, ``region``,
``application`` (matches when any of the tenant's applications does) and labels:
``region=eu-west-1,tier in (gold,silver),!legacy``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from bridge.errors import LifecycleError, UsageError

_FORMAT_HINT = "see docs/fleet.md#tenant-inventory for the format"


class InventoryError(LifecycleError):
    """The inventory could not be read (a file or an endpoint), or is malformed."""


@dataclass(frozen=True)
class Tenant:
    """One tenant environment as the inventory knows it."""

    id: str
    region: str | None = None
    applications: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, Any]:
        """The request event's ``tenantEnvironment``: what jobs filter on (applications)."""
        env: dict[str, Any] = {"applications": list(self.applications)}
        if self.labels:
            env["labels"] = dict(self.labels)
        return env

    def field_values(self, key: str) -> tuple[str, ...] | None:
        """Values of ``key`` for selectors; ``None`` when the tenant has no such key."""
        if key == "id":
            return (self.id,)
        if key == "region":
            return None if self.region is None else (self.region,)
        if key in ("application", "applications"):
            return self.applications or None
        value = self.labels.get(key)
        return None if value is None else (value,)


class Inventory(Protocol):
    """Where tenants come from. ``source`` names it in messages."""

    source: str

    def tenants(self) -> list[Tenant]:
        """Every tenant, in the source's order (fleet runs keep that order: canaries first)."""
        ...


# -- parsing -------------------------------------------------------------------------------


def tenant_from_json(item: Any, *, where: str) -> Tenant:
    """One tenant object (YAML or JSON) into a :class:`Tenant`, with a clear error."""
    if not isinstance(item, Mapping):
        raise InventoryError(
            f"{where}: a tenant must be a mapping with an 'id', got {type(item).__name__}",
            hint=_FORMAT_HINT,
        )
    tenant_id = item.get("id")
    if not isinstance(tenant_id, str | int) or not str(tenant_id).strip():
        raise InventoryError(f"{where}: field 'id' is missing or empty", hint=_FORMAT_HINT)
    region = item.get("region")
    if region is not None and not isinstance(region, str):
        raise InventoryError(f"{where} ({tenant_id}): field 'region' must be a string")
    applications = item.get("applications") or []
    if isinstance(applications, str):
        applications = _split_list(applications)
    if not isinstance(applications, list) or not all(isinstance(a, str) for a in applications):
        raise InventoryError(
            f"{where} ({tenant_id}): field 'applications' must be a list of strings",
            hint="e.g. applications: [catalog, search]",
        )
    labels = item.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise InventoryError(
            f"{where} ({tenant_id}): field 'labels' must be a mapping",
            hint="e.g. labels: {tier: gold}",
        )
    return Tenant(
        id=str(tenant_id).strip(),
        region=region or None,
        applications=tuple(applications),
        labels={str(k): str(v) for k, v in labels.items()},
    )


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[;,\s]+", text) if part.strip()]


def _tenant_list(document: Any, *, where: str) -> list[Any]:
    if isinstance(document, Mapping):
        document = document.get("tenants")
    if not isinstance(document, list):
        raise InventoryError(
            f"{where}: expected a list of tenants or a mapping with 'tenants:'",
            hint=_FORMAT_HINT,
        )
    return document


def _unique(tenants: Iterable[Tenant], *, source: str) -> list[Tenant]:
    seen: set[str] = set()
    result = []
    for tenant in tenants:
        if tenant.id in seen:
            raise InventoryError(
                f"{source}: tenant {tenant.id!r} is listed twice", hint="keep one entry per id"
            )
        seen.add(tenant.id)
        result.append(tenant)
    return result


# -- sources -------------------------------------------------------------------------------


class FileInventory:
    """A YAML (``.yaml``/``.yml``/``.json``) or CSV (``.csv``) file, read on each call."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.source = str(self.path)

    def tenants(self) -> list[Tenant]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InventoryError(
                f"inventory {self.source}: cannot read: {exc.strerror or exc}",
                hint="pass an existing file with --inventory",
            ) from exc
        if self.path.suffix.lower() == ".csv":
            return _unique(self._csv(text), source=self.source)
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InventoryError(f"inventory {self.source}: not valid YAML: {exc}") from exc
        items = _tenant_list(document, where=f"inventory {self.source}")
        return _unique(
            (
                tenant_from_json(item, where=f"inventory {self.source}: tenants[{n}]")
                for n, item in enumerate(items)
            ),
            source=self.source,
        )

    def _csv(self, text: str) -> Iterator[Tenant]:
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or "id" not in reader.fieldnames:
            raise InventoryError(
                f"inventory {self.source}: the CSV header has no 'id' column",
                hint="first line e.g. id,region,applications,tier",
            )
        for line, row in enumerate(reader, start=2):
            labels = {
                key: value
                for key, value in row.items()
                if key not in ("id", "region", "applications") and key and value
            }
            yield tenant_from_json(
                {
                    "id": row.get("id") or "",
                    "region": row.get("region") or None,
                    "applications": _split_list(row.get("applications") or ""),
                    "labels": labels,
                },
                where=f"inventory {self.source}: line {line}",
            )


class HttpInventory:
    """An HTTP(S) lookup endpoint returning JSON, following ``next`` links."""

    def __init__(
        self, url: str, *, token: str | None = None, timeout: float = 10.0, max_pages: int = 1000
    ) -> None:
        self.url = url
        self.source = url
        self._token = token  # sent as a bearer token, never logged
        self._timeout = timeout
        self._max_pages = max_pages

    def _get(self, url: str) -> Any:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                body = response.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            raise InventoryError(
                f"inventory {url}: HTTP {exc.code} {exc.reason}",
                hint="check the URL and the token (--inventory-token)",
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InventoryError(
                f"inventory {url}: cannot connect: {reason}",
                hint="is the inventory service reachable from here?",
            ) from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise InventoryError(
                f"inventory {url}: the response is not JSON", hint=_FORMAT_HINT
            ) from exc

    def tenants(self) -> list[Tenant]:
        tenants: list[Tenant] = []
        url: str | None = self.url
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) >= self._max_pages:
                raise InventoryError(f"inventory {self.url}: pagination does not end at {url}")
            seen.add(url)
            document = self._get(url)
            items = _tenant_list(document, where=f"inventory {url}")
            tenants.extend(
                tenant_from_json(item, where=f"inventory {url}: tenants[{n}]")
                for n, item in enumerate(items)
            )
            link = document.get("next") if isinstance(document, Mapping) else None
            url = urllib.parse.urljoin(url, link) if link else None
        return _unique(tenants, source=self.source)


def open_inventory(source: str, *, token: str | None = None, timeout: float = 10.0) -> Inventory:
    """A file path or an ``http(s)://`` URL."""
    if source.startswith(("http://", "https://")):
        return HttpInventory(source, token=token, timeout=timeout)
    if "://" in source:
        raise UsageError(
            f"inventory {source!r}: unsupported scheme", hint="use a file path or an http(s) URL"
        )
    return FileInventory(source)


def read_tenant_ids(path: str | Path) -> list[str]:
    """A ``--tenants`` file: one tenant id per line; blank lines and ``#`` comments ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"--tenants {path}: cannot read: {exc.strerror or exc}",
            hint="pass a file with one tenant id per line",
        ) from exc
    ids = []
    for line in text.splitlines():
        tenant_id = line.split("#", 1)[0].strip()
        if tenant_id and tenant_id not in ids:
            ids.append(tenant_id)
    if not ids:
        raise UsageError(f"--tenants {path}: no tenant ids in the file", hint="one id per line")
    return ids


# -- selectors -----------------------------------------------------------------------------

_SELECTOR_HINT = "e.g. --selector 'region=eu-west-1,tier in (gold,silver),!legacy'"
_KEY = r"[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?"
_SET_RE = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ_RE = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>[^=!,()\s]*)$")
_EXISTS_RE = re.compile(rf"^(?P<neg>!?)\s*(?P<key>{_KEY})$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "in" | "notin" | "exists" | "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, tenant: Tenant) -> bool:
        have = tenant.field_values(self.key)
        if self.operator == "exists":
            return have is not None
        if self.operator == "!exists":
            return have is None
        hit = have is not None and any(v in self.values for v in have)
        return hit if self.operator == "in" else not hit


@dataclass(frozen=True)
class Selector:
    """A parsed selector; every requirement must match (comma means AND)."""

    expression: str
    requirements: tuple[Requirement, ...]

    def matches(self, tenant: Tenant) -> bool:
        return all(r.matches(tenant) for r in self.requirements)

    def select(self, tenants: Iterable[Tenant]) -> list[Tenant]:
        return [t for t in tenants if self.matches(t)]


def _split_terms(expression: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in expression:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise UsageError(f"selector {expression!r}: ')' without '('", hint=_SELECTOR_HINT)
        if char == "," and depth == 0:
            terms.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise UsageError(f"selector {expression!r}: '(' is never closed", hint=_SELECTOR_HINT)
    terms.append("".join(current).strip())
    return terms


def parse_selector(expression: str) -> Selector:
    """Parse ``key=value``, ``key!=value``, ``key in (a,b)``, ``key notin (a,b)``, ``key``,
    ``!key`` terms joined by commas; raise :class:`UsageError` naming the bad term."""
    if not expression.strip():
        raise UsageError("selector is empty", hint=_SELECTOR_HINT)
    requirements = []
    for term in _split_terms(expression):
        if not term:
            raise UsageError(
                f"selector {expression!r}: empty term (two commas in a row?)", hint=_SELECTOR_HINT
            )
        if match := _SET_RE.match(term):
            values = frozenset(_split_list(match["values"]))
            if not values:
                raise UsageError(
                    f"selector term {term!r}: the value list is empty",
                    hint=f"list at least one value: {match['key']} {match['op']} (a,b)",
                )
            requirements.append(Requirement(match["key"], match["op"], values))
        elif match := _EQ_RE.match(term):
            if not match["value"]:
                raise UsageError(
                    f"selector term {term!r}: no value after {match['op']!r}",
                    hint=f"write {match['key']}{match['op']}VALUE",
                )
            operator = "notin" if match["op"] == "!=" else "in"
            requirements.append(Requirement(match["key"], operator, frozenset([match["value"]])))
        elif match := _EXISTS_RE.match(term):
            operator = "!exists" if match["neg"] else "exists"
            requirements.append(Requirement(match["key"], operator))
        elif re.match(rf"^{_KEY}\s+(in|notin)\b", term):
            raise UsageError(
                f"selector term {term!r}: the values must be in parentheses",
                hint="e.g. tier in (gold,silver)",
            )
        else:
            raise UsageError(
                f"selector term {term!r} is not understood",
                hint="use key=value, key!=value, key in (a,b), key notin (a,b), key or !key",
            )
    return Selector(expression, tuple(requirements))


def resolve_ids(tenant_ids: Sequence[str], inventory: Inventory | None) -> list[Tenant]:
    """Tenants for explicit ids, looked up in the inventory when there is one."""
    if inventory is None:
        return [Tenant(id=tenant_id) for tenant_id in tenant_ids]
    known = {t.id: t for t in inventory.tenants()}
    missing = [t for t in tenant_ids if t not in known]
    if missing:
        shown = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
        raise UsageError(
            f"{len(missing)} tenant id(s) are not in inventory {inventory.source}: {shown}",
            hint="fix the --tenants file or the inventory",
        )
    return [known[t] for t in tenant_ids]
