"""The storage adapter and export manifests against a real SeaweedFS (and moto's STS server)."""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from collections.abc import Iterator

import pytest

from bridge.errors import StorageError
from bridge.export_manifest import (
    MANIFEST_KEY,
    RETENTION_TAG,
    ExportIncompleteError,
    ManifestVerificationError,
    seal_export,
    verify_location,
)
from bridge.storage import (
    CredentialBroker,
    Location,
    ObjectChangedError,
    ObjectInfo,
    ObjectMissingError,
    ObjectStore,
    session_policy,
)
from bridge.storage_settings import CredentialsSource, StorageSettings
from tests.fixtures.moto_sts import MotoSTS
from tests.fixtures.seaweedfs import SeaweedS3

BIG = 20 * 1024 * 1024


def _settings(server: SeaweedS3, bucket: str, **extra: object) -> StorageSettings:
    values: dict[str, object] = {
        "bucket": bucket,
        "endpoint_url": server.endpoint_url,
        "region": server.region,
        "credentials": CredentialsSource.STATIC,
        "access_key_id": server.access_key_id,
        "secret_access_key": server.secret_access_key,
    }
    values.update(extra)
    return StorageSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def store(seaweedfs: SeaweedS3, seaweedfs_bucket: str) -> Iterator[ObjectStore]:
    with ObjectStore(_settings(seaweedfs, seaweedfs_bucket)) as s3:
        yield s3


def _location(store: ObjectStore) -> Location:
    return Location(store.settings.bucket, "t1/lifecycle.migrate-out/b1/team-archive/archive/")


def _write_objects(store: ObjectStore, location: Location, count: int) -> dict[str, str]:
    """``count`` small objects under data/, returns relative key -> sha256."""
    written = {}
    for index in range(count):
        body = f"object {index} of the tenant\n".encode() * (index + 1)
        key = f"data/{index:03d}.txt"
        store.put_object(location.bucket, location.key(key), body)
        written[key] = hashlib.sha256(body).hexdigest()
    return written


def test_seal_then_verify_checks_every_checksum(store: ObjectStore) -> None:
    # 100 objects with a 20 MB one go through the example team's job (test_storage_bridge_run).
    location = _location(store)
    expected = _write_objects(store, location, 39)
    big = os.urandom(3 * 1024 * 1024)
    store.put_object(location.bucket, location.key("data/big.bin"), big)
    expected["data/big.bin"] = hashlib.sha256(big).hexdigest()
    del big

    manifest = seal_export(store, location, context={"tenantEnvId": "t1"}, retention="export")

    assert [e.key for e in manifest.entries] == sorted(expected)
    assert {e.key: e.sha256 for e in manifest.entries} == expected
    raw = store.get_object(location.bucket, location.key(MANIFEST_KEY))
    assert raw is not None
    document = json.loads(raw)
    assert document["manifestVersion"] == 1
    assert document["objectCount"] == 40
    assert document["location"] == location.url
    assert any(o["size"] == 3 * 1024 * 1024 for o in document["objects"])
    assert store.get_object_tags(location.bucket, location.key("data/big.bin")) == {
        RETENTION_TAG: "export"
    }
    assert store.get_object_tags(location.bucket, location.key(MANIFEST_KEY)) == {
        RETENTION_TAG: "export"
    }

    report = verify_location(store, location)
    assert report.ok, report.failures
    assert report.checked == 40


def test_hashing_a_20mb_object_streams_instead_of_holding_it(store: ObjectStore) -> None:
    location = _location(store)
    big = os.urandom(BIG)
    store.put_object(location.bucket, location.key("big.bin"), big)
    expected = hashlib.sha256(big).hexdigest()
    del big

    tracemalloc.start()
    try:
        digest, size = store.sha256(location.bucket, location.key("big.bin"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (digest, size) == (expected, BIG)
    assert peak < BIG // 2, f"peak {peak} bytes while hashing a {BIG} byte object"


def test_listing_follows_pagination(store: ObjectStore) -> None:
    location = _location(store)
    _write_objects(store, location, 23)
    keys = [o.key for o in store.list_objects(location, page_size=5)]
    assert len(keys) == 23
    assert keys == sorted(keys)


@pytest.mark.parametrize("damage", ["changed-byte", "missing", "truncated"])
def test_verification_names_the_damaged_key(store: ObjectStore, damage: str) -> None:
    location = _location(store)
    _write_objects(store, location, 12)
    seal_export(store, location, context={})
    victim = location.key("data/007.txt")
    if damage == "missing":
        store.delete_object(location.bucket, victim)
    else:
        body = store.get_object(location.bucket, victim)
        assert body is not None
        flipped = body[:3] + bytes([body[3] ^ 0x01]) + body[4:]
        body = flipped if damage == "changed-byte" else body[:-1]
        store.put_object(location.bucket, victim, body)

    report = verify_location(store, location)

    assert not report.ok
    assert report.first_failure is not None
    assert report.first_failure.key == "data/007.txt"
    assert [f.key for f in report.failures] == ["data/007.txt"]
    with pytest.raises(ManifestVerificationError, match=r"data/007\.txt"):
        report.raise_for_failures()


def test_verification_reports_the_first_and_all_failing_keys(store: ObjectStore) -> None:
    location = _location(store)
    _write_objects(store, location, 12)
    seal_export(store, location, context={})
    for key in ("data/010.txt", "data/002.txt", "data/005.txt"):
        store.delete_object(location.bucket, location.key(key))

    report = verify_location(store, location)

    assert [f.key for f in report.failures] == ["data/002.txt", "data/005.txt", "data/010.txt"]
    with pytest.raises(ManifestVerificationError) as caught:
        report.raise_for_failures()
    assert "data/002.txt: missing" in str(caught.value)
    assert "data/010.txt" in str(caught.value)


def test_a_location_without_manifest_fails_verification(store: ObjectStore) -> None:
    location = _location(store)
    _write_objects(store, location, 3)
    report = verify_location(store, location)
    assert [f.key for f in report.failures] == [MANIFEST_KEY]


def test_an_export_that_wrote_nothing_is_not_sealed(store: ObjectStore) -> None:
    location = _location(store)
    with pytest.raises(ExportIncompleteError, match="empty"):
        seal_export(store, location, context={})
    assert store.head_object(location.bucket, location.key(MANIFEST_KEY)) is None


def test_a_multipart_upload_in_progress_fails_the_export(
    store: ObjectStore, seaweedfs: SeaweedS3
) -> None:
    location = _location(store)
    _write_objects(store, location, 2)
    client = seaweedfs.client()
    try:
        client.create_multipart_upload(Bucket=location.bucket, Key=location.key("data/huge.bin"))
    finally:
        client.close()
    with pytest.raises(ExportIncompleteError, match=r"multipart.*data/huge\.bin"):
        seal_export(store, location, context={})
    assert store.head_object(location.bucket, location.key(MANIFEST_KEY)) is None


def test_a_partial_object_fails_the_export(store: ObjectStore) -> None:
    location = _location(store)
    _write_objects(store, location, 2)
    store.put_object(location.bucket, location.key("data/last.bin.partial"), b"half")
    with pytest.raises(ExportIncompleteError, match=r"data/last\.bin\.partial"):
        seal_export(store, location, context={})


class WriterStillRunningStore(ObjectStore):
    """The real adapter, plus a writer that adds an object while the bridge hashes."""

    wrote = False

    def sha256(self, bucket: str, key: str, *, if_match: str | None = None) -> tuple[str, int]:
        if not self.wrote:
            self.wrote = True
            self.put_object(bucket, key.rsplit("/", 1)[0] + "/late.txt", b"late")
        return super().sha256(bucket, key, if_match=if_match)


def test_an_object_written_while_sealing_fails_the_export(
    seaweedfs: SeaweedS3, seaweedfs_bucket: str
) -> None:
    with WriterStillRunningStore(_settings(seaweedfs, seaweedfs_bucket)) as store:
        location = _location(store)
        _write_objects(store, location, 3)
        with pytest.raises(ExportIncompleteError, match=r"changed while.*data/late\.txt"):
            seal_export(store, location, context={})
        assert store.head_object(location.bucket, location.key(MANIFEST_KEY)) is None


def test_wrong_credentials_are_refused_and_never_echoed(
    seaweedfs: SeaweedS3, seaweedfs_bucket: str
) -> None:
    wrong = "not-the-secret-" + "x" * 20
    store = ObjectStore(_settings(seaweedfs, seaweedfs_bucket, secret_access_key=wrong))
    try:
        with pytest.raises(StorageError) as caught:
            list(store.list_objects(_location(store)))
    finally:
        store.close()
    assert "SignatureDoesNotMatch" in str(caught.value)
    assert wrong not in str(caught.value)
    assert isinstance(caught.value.__cause__, Exception)


def test_lifecycle_rules_are_put_and_read_back(store: ObjectStore) -> None:
    rules = [
        {
            "ID": "exports",
            "Status": "Enabled",
            "Filter": {"Tag": {"Key": RETENTION_TAG, "Value": "export"}},
            "Expiration": {"Days": 7},
        }
    ]
    assert store.get_lifecycle_rules(store.settings.bucket) == []
    store.put_lifecycle_rules(store.settings.bucket, rules)
    assert store.get_lifecycle_rules(store.settings.bucket) == rules


def test_sts_assume_role_carries_a_session_policy_for_the_prefix_only(
    moto_sts: MotoSTS,
) -> None:
    settings = StorageSettings(
        bucket="tenant-data",
        region="us-east-1",
        role_arn=moto_sts.role_arn,
        sts_endpoint_url=moto_sts.endpoint_url,
        access_key_id="bridge-key",
        secret_access_key="bridge-secret",  # moto accepts any
        session_duration_seconds=900,
    )
    location = Location("tenant-data", "t1/lifecycle.migrate-out/b1/team-archive/archive/")
    broker = CredentialBroker(settings)
    try:
        creds = broker.assume_role_for(location, session_name="lc-b1-archive", write=True)
    finally:
        broker.close()

    [record] = moto_sts.assumed_roles()
    assert record.role_arn == moto_sts.role_arn
    assert record.access_key_id == creds.access_key_id
    assert creds.session_token
    assert creds.secret_access_key not in repr(creds)
    assert record.policy is not None
    policy = json.loads(record.policy)
    assert policy == session_policy(location, write=True)
    resources = [r for s in policy["Statement"] for r in s["Resource"]]
    assert resources == [
        "arn:aws:s3:::tenant-data",
        "arn:aws:s3:::tenant-data/t1/lifecycle.migrate-out/b1/team-archive/archive/*",
    ]
    [list_statement] = [s for s in policy["Statement"] if s["Action"] == ["s3:ListBucket"]]
    assert list_statement["Condition"] == {
        "StringLike": {"s3:prefix": ["t1/lifecycle.migrate-out/b1/team-archive/archive/*"]}
    }


def test_object_info_carries_size_and_etag(store: ObjectStore) -> None:
    location = _location(store)
    store.put_object(location.bucket, location.key("a"), b"abc")
    info = store.head_object(location.bucket, location.key("a"))
    assert isinstance(info, ObjectInfo)
    assert info.size == 3
    assert info.etag
    assert store.head_object(location.bucket, location.key("nope")) is None


def test_a_read_conditional_on_a_stale_etag_reports_the_change(store: ObjectStore) -> None:
    location = _location(store)
    store.put_object(location.bucket, location.key("a"), b"first")
    listed = store.head_object(location.bucket, location.key("a"))
    assert listed is not None
    store.put_object(location.bucket, location.key("a"), b"second")
    with pytest.raises(ObjectChangedError, match="changed since it was listed"):
        store.sha256(location.bucket, location.key("a"), if_match=listed.etag)
    with pytest.raises(ObjectMissingError):
        store.sha256(location.bucket, location.key("gone"))
