"""Sealing an export with ``_manifest.json`` and verifying it before an import.

An export (``lifecycle.migrate-out``, ``lifecycle.backup``) is *sealed* by the bridge after the
job succeeded: it lists the job's location, hashes every object, checks that nothing is still
being written, and writes ``_manifest.json`` last. The manifest is the proof that the export is
complete; an import (``lifecycle.migrate-in``, ``lifecycle.restore``) refuses to start unless
every object it lists is present with the same size and sha256.

"Still being written" means any of (docs/storage.md):

* a multipart upload under the location that is neither completed nor aborted;
* a key ending in ``.partial`` (the convention for "written, then renamed when complete");
* the location changed while it was being sealed: an object appeared, disappeared or got a new
  ETag between the first listing and the second one taken after hashing, or an object changed
  between listing and reading it (reads are conditional on the listed ETag).

Manifest format (version 1), keys relative to the location, sorted::

    {"manifestVersion": 1, "location": "s3://bucket/prefix/", "createdAt": "RFC3339",
     "context": {"tenantEnvId": ..., "operation": ..., ...},
     "objectCount": 2, "totalBytes": 123,
     "objects": [{"key": "a.bin", "size": 100, "sha256": "<hex>"}, ...]}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.errors import StorageError
from bridge.storage import (
    Location,
    ObjectChangedError,
    ObjectInfo,
    ObjectMissingError,
    ObjectStore,
)
from bridge.timefmt import rfc3339

MANIFEST_KEY = "_manifest.json"
MANIFEST_VERSION = 1
PARTIAL_SUFFIX = ".partial"
RETENTION_TAG = "tenant-lifecycle.dev/retention"
HASH_WORKERS = 4
_SHOWN = 5  # failing keys spelled out in a one-line message


class ExportIncompleteError(StorageError):
    """The export produced nothing, or something under it is still being written."""


class ManifestFormatError(StorageError):
    """``_manifest.json`` is not valid JSON or not a manifest this version understands."""


class ManifestVerificationError(StorageError):
    """A manifest does not match the objects at its location."""

    def __init__(self, report: VerificationReport) -> None:
        first = report.failures[0]
        more = len(report.failures) - 1
        tail = f" (+{more} more: {', '.join(f.key for f in report.failures[1 : _SHOWN + 1])}"
        tail += ", ...)" if more > _SHOWN else ")" if more else ""
        super().__init__(
            f"source {report.location} failed verification: {first.key}: {first.problem}"
            + (tail if more else ""),
            hint="the export is incomplete or was modified; re-run the export for a new batch",
        )
        self.report = report


@dataclass(frozen=True)
class ManifestEntry:
    key: str  # relative to the location
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    location: Location
    entries: tuple[ManifestEntry, ...]
    created_at: str
    context: Mapping[str, str]
    version: int = MANIFEST_VERSION

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "manifestVersion": self.version,
            "location": self.location.url,
            "createdAt": self.created_at,
            "context": dict(self.context),
            "objectCount": len(self.entries),
            "totalBytes": self.total_bytes,
            "objects": [{"key": e.key, "size": e.size, "sha256": e.sha256} for e in self.entries],
        }

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n").encode()

    @property
    def sha256(self) -> str:
        """:func:`manifest_sha256` of the bytes :func:`seal_export` writes (:meth:`dumps`)."""
        return manifest_sha256(self.dumps())

    @classmethod
    def from_json(cls, data: Any, *, location: Location) -> Manifest:
        """Parse and check a manifest read from ``location``; StorageError names what is wrong."""
        where = location.key(MANIFEST_KEY)

        def bad(message: str) -> StorageError:
            return ManifestFormatError(
                f"s3://{location.bucket}/{where}: {message}",
                hint="the manifest is written by the bridge only; re-run the export",
            )

        if not isinstance(data, dict):
            raise bad("not a JSON object")
        version = data.get("manifestVersion")
        if version != MANIFEST_VERSION:
            raise bad(f"manifestVersion {version!r} is not supported (expected {MANIFEST_VERSION})")
        objects = data.get("objects")
        if not isinstance(objects, list):
            raise bad("objects: not a list")
        entries = []
        for index, item in enumerate(objects):
            try:
                key, size, digest = item["key"], item["size"], item["sha256"]
            except (KeyError, TypeError):
                raise bad(f"objects[{index}]: needs key, size and sha256") from None
            valid = isinstance(key, str) and key and not key.startswith("/")
            if not valid or not isinstance(size, int) or not isinstance(digest, str):
                raise bad(f"objects[{index}]: malformed entry")
            entries.append(ManifestEntry(key=key, size=size, sha256=digest))
        context = data.get("context") or {}
        return cls(
            location=location,
            entries=tuple(entries),
            created_at=str(data.get("createdAt", "")),
            context={str(k): str(v) for k, v in context.items()},
            version=version,
        )


@dataclass(frozen=True)
class Failure:
    key: str  # relative to the location
    problem: str


@dataclass(frozen=True)
class VerificationReport:
    location: str
    checked: int
    failures: tuple[Failure, ...]
    total_bytes: int = 0  # the manifest's, when there is a readable one
    manifest_sha256: str = ""  # of the manifest object's bytes, when there is one

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def first_failure(self) -> Failure | None:
        return self.failures[0] if self.failures else None

    def raise_for_failures(self) -> None:
        if self.failures:
            raise ManifestVerificationError(self)


def _hash_all(
    store: ObjectStore, location: Location, objects: Iterable[ObjectInfo], *, check_etag: bool
) -> dict[str, tuple[str, int] | StorageError]:
    """sha256 of each object, a few in parallel; per key the digest or the error."""

    def one(info: ObjectInfo) -> tuple[str, tuple[str, int] | StorageError]:
        try:
            etag = info.etag if check_etag else None
            return info.key, store.sha256(location.bucket, info.key, if_match=etag)
        except (ObjectChangedError, ObjectMissingError) as exc:
            return info.key, exc

    with ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="sha256") as pool:
        return dict(pool.map(one, objects))


def _listing(store: ObjectStore, location: Location) -> dict[str, ObjectInfo]:
    manifest = location.key(MANIFEST_KEY)
    return {o.key: o for o in store.list_objects(location) if o.key != manifest}


def _names(keys: Iterable[str], location: Location) -> str:
    ordered = sorted(k.removeprefix(location.prefix) for k in keys)
    shown = ", ".join(ordered[:_SHOWN])
    return shown + (f" (+{len(ordered) - _SHOWN} more)" if len(ordered) > _SHOWN else "")


def seal_export(
    store: ObjectStore,
    location: Location,
    *,
    context: Mapping[str, str],
    retention: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Manifest:
    """Check the export at ``location`` is complete, tag it and write ``_manifest.json``.

    Raises :class:`ExportIncompleteError` (empty, or still being written) without writing a
    manifest. ``retention`` (``export``/``backup``) is set as the :data:`RETENTION_TAG` tag on
    every object and the manifest, which the bucket lifecycle rules select on.
    """
    uploads = store.list_multipart_uploads(location)
    if uploads:
        raise ExportIncompleteError(
            f"export {location} is still being written: multipart upload(s) in progress for "
            + _names({u.key for u in uploads}, location),
            hint="the job must complete (or abort) every upload before it exits 0",
        )
    first = _listing(store, location)
    if not first:
        raise ExportIncompleteError(
            f"export {location} is empty: the job exited 0 without writing anything",
            hint="the job must write its data under LIFECYCLE_OBJECT_STORE_URL",
        )
    partial = [k for k in first if k.endswith(PARTIAL_SUFFIX)]
    if partial:
        raise ExportIncompleteError(
            f"export {location} is still being written: {PARTIAL_SUFFIX} object(s) "
            + _names(partial, location),
            hint=f"write the final key once complete and delete the {PARTIAL_SUFFIX} one",
        )
    hashed = _hash_all(store, location, first.values(), check_etag=True)
    digests = {k: v for k, v in hashed.items() if not isinstance(v, StorageError)}
    changed = [k for k in hashed if k not in digests]
    second = _listing(store, location)
    changed += [
        k for k in first.keys() | second.keys() if (k in first) != (k in second)
    ]  # appeared or vanished
    changed += [
        k
        for k in first.keys() & second.keys()
        if (first[k].etag, first[k].size) != (second[k].etag, second[k].size)
    ]
    if changed or store.list_multipart_uploads(location):
        raise ExportIncompleteError(
            f"export {location} is still being written: changed while the bridge sealed it: "
            + (_names(set(changed), location) if changed else "a multipart upload started"),
            hint="something still writes after the job's pod finished; stop it before exiting",
        )
    entries = []
    for key in sorted(first):
        digest, size = digests[key]
        entries.append(
            ManifestEntry(key=key.removeprefix(location.prefix), size=size, sha256=digest)
        )
    manifest = Manifest(
        location=location,
        entries=tuple(entries),
        created_at=rfc3339(now()),
        context=dict(context),
    )
    if retention:
        tags = {RETENTION_TAG: retention}
        with ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="tag") as pool:
            list(pool.map(lambda k: store.put_object_tags(location.bucket, k, tags), sorted(first)))
    store.put_object(
        location.bucket,
        location.key(MANIFEST_KEY),
        manifest.dumps(),
        content_type="application/json",
    )
    if retention:
        store.put_object_tags(
            location.bucket, location.key(MANIFEST_KEY), {RETENTION_TAG: retention}
        )
    return manifest


def manifest_sha256(raw: bytes) -> str:
    """The checksum of a manifest as stored (hex sha256 of the object's bytes): what a result
    event reports, and what ``sha256sum _manifest.json`` prints for the downloaded object."""
    return hashlib.sha256(raw).hexdigest()


def read_manifest(store: ObjectStore, location: Location) -> Manifest | None:
    """The manifest at ``location``, or None when there is none."""
    found = read_manifest_bytes(store, location)
    return None if found is None else found[0]


def read_manifest_bytes(store: ObjectStore, location: Location) -> tuple[Manifest, bytes] | None:
    """The manifest at ``location`` and the bytes it was read from, or None when there is none."""
    raw = store.get_object(location.bucket, location.key(MANIFEST_KEY))
    if raw is None:
        return None
    return _parse_manifest(raw, location), raw


def _parse_manifest(raw: bytes, location: Location) -> Manifest:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ManifestFormatError(
            f"{location.url}{MANIFEST_KEY}: not valid JSON",
            hint="the manifest is written by the bridge only; re-run the export",
        ) from exc
    return Manifest.from_json(data, location=location)


def verify_location(store: ObjectStore, location: Location) -> VerificationReport:
    """Check every object of the manifest at ``location``: present, same size, same sha256.

    Failures come in manifest (key) order, so the first failure is the first bad key. A missing
    or unreadable manifest is one failure on ``_manifest.json`` itself.
    """
    try:
        found = read_manifest_bytes(store, location)
    except ManifestFormatError as exc:
        return VerificationReport(location.url, 0, (Failure(MANIFEST_KEY, exc.message),))
    if found is None:
        return VerificationReport(
            location.url,
            0,
            (Failure(MANIFEST_KEY, "no manifest: the export never completed, or wrong source"),),
        )
    manifest, raw = found
    present = _listing(store, location)
    failures: dict[str, Failure] = {}
    to_hash: list[ObjectInfo] = []
    for entry in manifest.entries:
        info = present.get(location.key(entry.key))
        if info is None:
            failures[entry.key] = Failure(entry.key, "missing")
        elif info.size != entry.size:
            failures[entry.key] = Failure(
                entry.key, f"size {info.size} bytes, manifest says {entry.size}"
            )
        else:
            to_hash.append(info)
    expected = {location.key(e.key): e for e in manifest.entries}
    for full_key, result in _hash_all(store, location, to_hash, check_etag=False).items():
        entry = expected[full_key]
        if isinstance(result, StorageError):
            failures[entry.key] = Failure(entry.key, "missing (vanished while verifying)")
        elif result[0] != entry.sha256:
            failures[entry.key] = Failure(
                entry.key, f"sha256 {result[0][:12]}..., manifest says {entry.sha256[:12]}..."
            )
        elif result[1] != entry.size:
            failures[entry.key] = Failure(
                entry.key, f"read {result[1]} bytes, manifest says {entry.size}"
            )
    ordered = tuple(failures[e.key] for e in manifest.entries if e.key in failures)
    return VerificationReport(
        location.url,
        len(manifest.entries),
        ordered,
        total_bytes=manifest.total_bytes,
        manifest_sha256=manifest_sha256(raw),
    )


# -- retention ---------------------------------------------------------------------------------
RULE_ID_PREFIX = "tenant-lifecycle-"


def retention_rules(
    *, export_retention_days: int, backup_retention_days: int
) -> list[dict[str, Any]]:
    """The bucket lifecycle rules for sealed exports and backups (S3 JSON shape).

    Rules select on the :data:`RETENTION_TAG` object tag that :func:`seal_export` sets, not on a
    key prefix: the default location template starts with the tenant id, so no prefix groups
    "every migration export". Expiration counts from each object's creation. Incomplete
    multipart uploads (a crashed export job) are aborted after a day everywhere in the bucket.
    """
    return [
        {
            "ID": f"{RULE_ID_PREFIX}exports",
            "Status": "Enabled",
            "Filter": {"Tag": {"Key": RETENTION_TAG, "Value": "export"}},
            "Expiration": {"Days": export_retention_days},
        },
        {
            "ID": f"{RULE_ID_PREFIX}backups",
            "Status": "Enabled",
            "Filter": {"Tag": {"Key": RETENTION_TAG, "Value": "backup"}},
            "Expiration": {"Days": backup_retention_days},
        },
        {
            "ID": f"{RULE_ID_PREFIX}incomplete-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
    ]


def merge_rules(
    existing: Iterable[Mapping[str, Any]], ours: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``ours`` replacing our previous rules; rules the operator added by hand are kept."""
    kept = [dict(r) for r in existing if not str(r.get("ID", "")).startswith(RULE_ID_PREFIX)]
    return kept + [dict(r) for r in ours]
