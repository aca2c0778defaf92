"""``tenantctl storage lifecycle-policy --apply`` and ``tenantctl storage verify`` on SeaweedFS."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bridge.export_manifest import RETENTION_TAG, seal_export
from bridge.storage import Location, ObjectStore
from bridge.storage_settings import CredentialsSource, StorageSettings
from orchestrator.cli import main
from tests.fixtures.seaweedfs import SeaweedS3


def _env(seaweedfs: SeaweedS3) -> dict[str, str]:
    return {
        "BRIDGE_STORAGE_ENDPOINT_URL": seaweedfs.endpoint_url,
        "BRIDGE_STORAGE_CREDENTIALS": "static",
        "BRIDGE_STORAGE_ACCESS_KEY_ID": seaweedfs.access_key_id,
        "BRIDGE_STORAGE_SECRET_ACCESS_KEY": seaweedfs.secret_access_key,
    }


def test_lifecycle_policy_is_applied_and_read_back(
    seaweedfs: SeaweedS3, seaweedfs_bucket: str, tmp_path: Path
) -> None:
    config = tmp_path / "storage.yaml"
    config.write_text(
        f"bucket: {seaweedfs_bucket}\nexport_retention_days: 5\nbackup_retention_days: 45\n"
    )
    client = seaweedfs.client()
    try:  # a rule the operator added by hand must survive --apply
        client.put_bucket_lifecycle_configuration(
            Bucket=seaweedfs_bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "operator-logs",
                        "Status": "Enabled",
                        "Filter": {"Prefix": "logs/"},
                        "Expiration": {"Days": 3},
                    }
                ]
            },
        )
        result = CliRunner().invoke(
            main,
            ["storage", "lifecycle-policy", "--config", str(config), "--apply"],
            env=_env(seaweedfs),
        )
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout)
        server_rules = client.get_bucket_lifecycle_configuration(Bucket=seaweedfs_bucket)["Rules"]
    finally:
        client.close()
    by_id = {r["ID"]: r for r in server_rules}
    assert set(by_id) == {
        "operator-logs",
        "tenant-lifecycle-exports",
        "tenant-lifecycle-backups",
        "tenant-lifecycle-incomplete-uploads",
    }
    assert by_id["tenant-lifecycle-exports"]["Expiration"] == {"Days": 5}
    assert by_id["tenant-lifecycle-exports"]["Filter"] == {
        "Tag": {"Key": RETENTION_TAG, "Value": "export"}
    }
    assert by_id["tenant-lifecycle-backups"]["Expiration"] == {"Days": 45}
    assert {r["ID"] for r in printed["Rules"]} == set(by_id)
    assert seaweedfs.secret_access_key not in result.output


def test_lifecycle_policy_renders_without_touching_the_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["storage", "lifecycle-policy"],
        env={"BRIDGE_STORAGE_BUCKET": "tenant-data", "BRIDGE_STORAGE_EXPORT_RETENTION_DAYS": "2"},
    )
    assert result.exit_code == 0, result.output
    rules = json.loads(result.stdout)["Rules"]
    assert rules[0]["Expiration"] == {"Days": 2}


def test_verify_reports_ok_then_the_damaged_key(
    seaweedfs: SeaweedS3, seaweedfs_bucket: str
) -> None:
    settings = StorageSettings(
        bucket=seaweedfs_bucket,
        endpoint_url=seaweedfs.endpoint_url,
        credentials=CredentialsSource.STATIC,
        access_key_id=seaweedfs.access_key_id,
        secret_access_key=seaweedfs.secret_access_key,
    )
    location = Location(seaweedfs_bucket, "t1/lifecycle.backup/b1/team-archive/archive/")
    with ObjectStore(settings) as store:
        for name in ("one", "two"):
            store.put_object(location.bucket, location.key(name), name.encode())
        seal_export(store, location, context={})
        ok = CliRunner().invoke(main, ["storage", "verify", location.url], env=_env(seaweedfs))
        assert ok.exit_code == 0, ok.output
        assert "2 object(s)" in ok.stdout

        store.put_object(location.bucket, location.key("two"), b"TWO")
        bad = CliRunner().invoke(
            main, ["storage", "verify", "-o", "json", location.url], env=_env(seaweedfs)
        )
    assert bad.exit_code == 1
    document = json.loads(bad.stdout)
    assert document["ok"] is False
    assert [f["key"] for f in document["failures"]] == ["two"]
    assert "error: source" in bad.stderr
    assert "two: sha256" in bad.stderr
    assert "Traceback" not in bad.output


def test_verify_with_a_bad_url_is_a_one_line_error() -> None:
    result = CliRunner().invoke(main, ["storage", "verify", "https://nope/"], env={})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: storage location 'https://nope/' is not an s3:// URL")
