"""The storage RunHooks against a real SeaweedFS (and moto's STS), without a pod in between."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest

from bridge.errors import RefusedError, StorageError
from bridge.export_manifest import MANIFEST_KEY
from bridge.hooks import RunContext
from bridge.storage import Location, ObjectStore, session_policy
from bridge.storage_hooks import StorageHooks
from bridge.storage_settings import CredentialsSource, StorageSettings
from tests.fixtures.moto_sts import MotoSTS
from tests.fixtures.seaweedfs import SeaweedS3


def _ctx(operation: str, batch: str, source: str | None = None) -> RunContext:
    return RunContext(
        namespace="team-archive",
        job="archive",
        operation=operation,
        tenant_env_id="t-799a",
        batch_operation_id=batch,
        source_batch_operation_id=source,
        workflow_name="lc-" + batch,
    )


@pytest.fixture
def static_settings(seaweedfs: SeaweedS3, seaweedfs_bucket: str) -> StorageSettings:
    return StorageSettings(
        bucket=seaweedfs_bucket,
        endpoint_url=seaweedfs.endpoint_url,
        credentials=CredentialsSource.STATIC,
        access_key_id=seaweedfs.access_key_id,
        secret_access_key=seaweedfs.secret_access_key,
    )


@pytest.fixture
def hooks(static_settings: StorageSettings) -> Iterator[StorageHooks]:
    hooks = StorageHooks(static_settings)
    yield hooks
    hooks.close()


def _pod_store(hooks: StorageHooks, env: dict[str, str], secret_env: dict[str, str]) -> ObjectStore:
    """What a pod would build from its injected env: only the injected values, nothing else."""
    settings = StorageSettings(
        bucket=Location.parse(env["LIFECYCLE_OBJECT_STORE_URL"]).bucket,
        endpoint_url=env["LIFECYCLE_OBJECT_STORE_ENDPOINT"],
        region=env["LIFECYCLE_OBJECT_STORE_REGION"],
        credentials=CredentialsSource.STATIC,
        access_key_id=secret_env["AWS_ACCESS_KEY_ID"],
        secret_access_key=secret_env["AWS_SECRET_ACCESS_KEY"],
    )
    return ObjectStore(settings)


def test_export_then_import_through_the_hooks(hooks: StorageHooks) -> None:
    out = _ctx("lifecycle.migrate-out", "b1")
    injection = hooks.before_pod(out)
    env, secret_env = dict(injection.env), dict(injection.secret_env)
    url = env["LIFECYCLE_OBJECT_STORE_URL"]
    assert (
        url == f"s3://{hooks.settings.bucket}/t-799a/lifecycle.migrate-out/b1/team-archive/archive/"
    )
    assert env["LIFECYCLE_OBJECT_STORE_ACCESS"] == "read-write"
    assert "LIFECYCLE_OBJECT_STORE_SOURCE_URL" not in env
    assert set(secret_env) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert str(hooks.settings.secret_access_key) not in json.dumps(env)

    location = Location.parse(url)
    with _pod_store(hooks, env, secret_env) as pod:
        for index in range(5):
            pod.put_object(location.bucket, location.key(f"rows/{index}.csv"), b"x" * index + b"\n")
    hooks.after_success(out)
    manifest = hooks.store.get_object(location.bucket, location.key(MANIFEST_KEY))
    assert manifest is not None
    document = json.loads(manifest)
    assert document["context"]["batchOperationId"] == "b1"
    assert [o["key"] for o in document["objects"]] == [f"rows/{i}.csv" for i in range(5)]
    assert document["objects"][3]["sha256"] == hashlib.sha256(b"xxx\n").hexdigest()

    into = _ctx("lifecycle.migrate-in", "b2", source="b1")
    injection = hooks.before_pod(into)
    assert injection.env["LIFECYCLE_OBJECT_STORE_SOURCE_URL"] == url
    assert injection.env["LIFECYCLE_OBJECT_STORE_URL"] == url
    assert injection.env["LIFECYCLE_OBJECT_STORE_ACCESS"] == "read-only"
    hooks.after_success(into)  # imports seal nothing


def test_import_is_refused_before_any_pod_when_an_object_changed(hooks: StorageHooks) -> None:
    out = _ctx("lifecycle.backup", "b1")
    location = hooks.location(out)
    assert location is not None
    for name in ("a.bin", "b.bin", "c.bin"):
        hooks.store.put_object(location.bucket, location.key(name), name.encode() * 100)
    hooks.after_success(out)
    hooks.store.put_object(location.bucket, location.key("b.bin"), b"B" + b"b.bin" * 100)
    hooks.store.delete_object(location.bucket, location.key("c.bin"))

    with pytest.raises(RefusedError) as caught:
        hooks.before_pod(_ctx("lifecycle.restore", "b2", source="b1"))
    message = str(caught.value)
    assert "b.bin: size 501 bytes, manifest says 500" in message
    assert "c.bin" in message


def test_import_of_an_export_that_never_completed_is_refused(hooks: StorageHooks) -> None:
    with pytest.raises(RefusedError, match=r"_manifest\.json: no manifest"):
        hooks.before_pod(_ctx("lifecycle.migrate-in", "b2", source="never-ran"))


def test_an_export_that_wrote_nothing_fails_after_success(hooks: StorageHooks) -> None:
    with pytest.raises(StorageError, match="empty: the job exited 0 without writing anything"):
        hooks.after_success(_ctx("lifecycle.migrate-out", "b1"))


def test_sts_hooks_inject_scoped_session_credentials(
    moto_sts: MotoSTS, seaweedfs: SeaweedS3, seaweedfs_bucket: str
) -> None:
    settings = StorageSettings(
        bucket=seaweedfs_bucket,
        endpoint_url=seaweedfs.endpoint_url,
        role_arn=moto_sts.role_arn,
        sts_endpoint_url=moto_sts.endpoint_url,
        session_duration_seconds=1800,
        # The bridge's own keys: real for SeaweedFS; moto's STS accepts any.
        access_key_id=seaweedfs.access_key_id,
        secret_access_key=seaweedfs.secret_access_key,
    )
    hooks = StorageHooks(settings)
    try:
        injection = hooks.before_pod(_ctx("lifecycle.migrate-out", "b1"))
    finally:
        hooks.close()
    [record] = moto_sts.assumed_roles()
    location = Location(seaweedfs_bucket, "t-799a/lifecycle.migrate-out/b1/team-archive/archive/")
    assert record.policy is not None
    assert json.loads(record.policy) == session_policy(location, write=True)
    assert record.session_name == "lc-b1-team-archive-archive"
    assert injection.secret_env["AWS_ACCESS_KEY_ID"] == record.access_key_id
    assert injection.secret_env["AWS_SESSION_TOKEN"]
    assert injection.secret_env["AWS_ACCESS_KEY_ID"] != seaweedfs.access_key_id
