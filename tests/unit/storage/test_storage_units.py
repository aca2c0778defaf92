"""Storage settings, locations, session policies, manifests and the hook mapping (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import RefusedError, StorageError, UsageError
from bridge.export_manifest import (
    MANIFEST_KEY,
    Failure,
    Manifest,
    ManifestFormatError,
    ManifestVerificationError,
    VerificationReport,
    merge_rules,
    retention_rules,
)
from bridge.hooks import RunContext
from bridge.storage import Credentials, Location, session_name_for, session_policy
from bridge.storage_hooks import (
    StorageHooks,
    UnconfiguredStorageHooks,
    endpoint_for,
    storage_hooks_from,
)
from bridge.storage_settings import (
    DEFAULT_PREFIX_TEMPLATE,
    CredentialsSource,
    StorageSettings,
    load_storage_settings,
)

ROLE = "arn:aws:iam::123456789012:role/tenant-lifecycle-jobs"


def _ctx(operation: str, *, source: str | None = None, tenant: str = "t1") -> RunContext:
    return RunContext(
        namespace="team-archive",
        job="archive",
        operation=operation,
        tenant_env_id=tenant,
        batch_operation_id="b2",
        source_batch_operation_id=source,
        workflow_name=None,
    )


# -- settings ------------------------------------------------------------------------------------
def test_settings_load_from_yaml_and_env_with_env_winning(tmp_path: Path) -> None:
    config = tmp_path / "storage.yaml"
    config.write_text(
        "bucket: tenant-data\n"
        "endpoint_url: http://127.0.0.1:8333\n"
        "region: eu-west-1\n"
        f"role_arn: {ROLE}\n"
        "export_retention_days: 3\n"
    )
    settings = load_storage_settings(
        config,
        env={"BRIDGE_STORAGE_REGION": "eu-central-1", "BRIDGE_STORAGE_BACKUP_RETENTION_DAYS": "90"},
    )
    assert settings.bucket == "tenant-data"
    assert settings.region == "eu-central-1"
    assert settings.export_retention_days == 3
    assert settings.backup_retention_days == 90
    assert settings.credentials is CredentialsSource.STS
    assert settings.prefix_template == DEFAULT_PREFIX_TEMPLATE


def test_static_keys_come_from_a_credentials_file_and_never_show_in_repr(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("access_key_id: AKIDEXAMPLE\nsecret_access_key: very-secret-value\n")
    settings = load_storage_settings(
        None,
        env={
            "BRIDGE_STORAGE_BUCKET": "tenant-data",
            "BRIDGE_STORAGE_CREDENTIALS": "static",
            "BRIDGE_STORAGE_CREDENTIALS_FILE": str(keys),
        },
    )
    assert settings.secret_access_key == "very-secret-value"
    assert "very-secret-value" not in repr(settings)
    assert "AKIDEXAMPLE" not in repr(settings)
    settings.require_pod_credentials()


def test_keys_in_the_settings_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "storage.yaml"
    config.write_text("bucket: tenant-data\nsecret_access_key: oops\n")
    with pytest.raises(UsageError, match="secret_access_key"):
        load_storage_settings(config, env={})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"bucket": "No_Such"}, "bucket"),
        ({"prefix_template": "{tenant}/{job}/"}, "missing {batch}, {namespace}"),
        ({"prefix_template": "{tenant}/{batch}/{namespace}/{job}"}, "must end with '/'"),
        ({"prefix_template": "{tenant}/{batch}/{namespace}/{job}/{oops}/"}, "unknown placeholder"),
        ({"endpoint_url": "127.0.0.1:8333"}, "endpoint_url"),
        ({"role_arn": "my-role"}, "role_arn"),
        ({"session_duration_seconds": 60}, "session_duration_seconds"),
        ({"export_retention_days": 0}, "export_retention_days"),
        ({"access_key_id": "only-half"}, "set both or neither"),
    ],
)
def test_invalid_settings_name_the_field(changes: dict[str, object], field: str) -> None:
    values: dict[str, object] = {"bucket": "tenant-data", "role_arn": ROLE}
    values.update(changes)
    with pytest.raises(UsageError, match=field.replace("{", r"\{").replace("}", r"\}")):
        StorageSettings(**values)  # type: ignore[arg-type]


def test_missing_bucket_and_bad_credentials_source_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="bucket is not set"):
        load_storage_settings(None, env={})
    with pytest.raises(UsageError, match="credentials: 'vault'"):
        load_storage_settings(
            None, env={"BRIDGE_STORAGE_BUCKET": "b-1", "BRIDGE_STORAGE_CREDENTIALS": "vault"}
        )


def test_pod_credentials_need_a_role_or_the_static_opt_in() -> None:
    with pytest.raises(UsageError, match="role_arn: required with credentials=sts"):
        StorageSettings(bucket="tenant-data").require_pod_credentials()
    with pytest.raises(UsageError, match="required with credentials=static"):
        StorageSettings(
            bucket="tenant-data", credentials=CredentialsSource.STATIC
        ).require_pod_credentials()
    with pytest.raises(UsageError, match="role_arn"):
        StorageHooks(StorageSettings(bucket="tenant-data"))


@pytest.mark.parametrize("bad", ["..", "a/b", "", "t1/../t2", " t1", "-x"])
def test_ids_that_are_not_one_path_segment_are_refused(bad: str) -> None:
    settings = StorageSettings(bucket="tenant-data", role_arn=ROLE)
    with pytest.raises(UsageError):
        settings.render_prefix(tenant=bad, operation="o", batch="b", namespace="n", job="j")
    hooks = StorageHooks(settings)
    with pytest.raises(RefusedError):
        hooks.location(_ctx("lifecycle.migrate-out", tenant=bad))


# -- locations and policies ------------------------------------------------------------------
def test_location_parse_and_url() -> None:
    location = Location.parse("s3://tenant-data/t1/x")
    assert location == Location("tenant-data", "t1/x/")
    assert location.url == "s3://tenant-data/t1/x/"
    assert location.key("a.bin") == "t1/x/a.bin"
    assert Location.parse("s3://tenant-data").prefix == ""
    with pytest.raises(StorageError, match="not an s3:// URL"):
        Location.parse("https://tenant-data/t1/")


def test_read_session_policy_cannot_write_and_is_limited_to_the_prefix() -> None:
    policy = session_policy(Location("b-1", "t1/op/b1/ns/job/"), write=False)
    actions = sorted(a for s in policy["Statement"] for a in s["Action"])
    assert actions == ["s3:GetObject", "s3:ListBucket"]
    assert policy["Statement"][1]["Resource"] == ["arn:aws:s3:::b-1/t1/op/b1/ns/job/*"]


def test_session_names_fit_sts_limits() -> None:
    name = session_name_for("lc", "b" * 80, "team-archive", "archive")
    assert len(name) == 64
    assert session_name_for("lc", "b1 x", "ns", "j") == "lc-b1-x-ns-j"


def test_credentials_repr_hides_the_secret_and_token() -> None:
    creds = Credentials("AKID", "the-secret", "the-token")
    assert "the-secret" not in repr(creds)
    assert "the-token" not in repr(creds)


# -- manifests -------------------------------------------------------------------------------
def test_manifest_json_round_trip_and_rejects_garbage() -> None:
    location = Location("b-1", "p/")
    data = {
        "manifestVersion": 1,
        "objects": [{"key": "a", "size": 1, "sha256": "00"}],
        "context": {"tenantEnvId": "t1"},
        "createdAt": "2026-11-26T08:00:00Z",
    }
    manifest = Manifest.from_json(data, location=location)
    assert manifest.to_json()["objects"] == data["objects"]
    assert manifest.to_json()["objectCount"] == 1
    with pytest.raises(ManifestFormatError, match="manifestVersion 2"):
        Manifest.from_json({**data, "manifestVersion": 2}, location=location)
    with pytest.raises(ManifestFormatError, match=r"objects\[0\]"):
        Manifest.from_json({**data, "objects": [{"key": "a"}]}, location=location)


def test_verification_error_names_the_first_key_and_counts_the_rest() -> None:
    report = VerificationReport(
        "s3://b-1/p/",
        10,
        (Failure("a.bin", "missing"), Failure("b.bin", "missing"), Failure("c.bin", "missing")),
    )
    error = ManifestVerificationError(report)
    assert str(error).startswith("source s3://b-1/p/ failed verification: a.bin: missing (+2 more")
    assert report.first_failure == Failure("a.bin", "missing")
    assert MANIFEST_KEY == "_manifest.json"


def test_retention_rules_replace_ours_and_keep_the_operators() -> None:
    ours = retention_rules(export_retention_days=7, backup_retention_days=30)
    assert [r["ID"] for r in ours] == [
        "tenant-lifecycle-exports",
        "tenant-lifecycle-backups",
        "tenant-lifecycle-incomplete-uploads",
    ]
    assert ours[0]["Expiration"] == {"Days": 7}
    assert ours[1]["Expiration"] == {"Days": 30}
    theirs = {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}}
    old = {**ours[0], "Expiration": {"Days": 1}}
    merged = merge_rules([theirs, old], ours)
    assert merged == [theirs, *ours]


# -- the hook mapping ------------------------------------------------------------------------
def test_exports_write_their_own_location_and_imports_read_the_exports() -> None:
    hooks = StorageHooks(StorageSettings(bucket="tenant-data", role_arn=ROLE))
    assert hooks.location(_ctx("lifecycle.migrate-out")) == Location(
        "tenant-data", "t1/lifecycle.migrate-out/b2/team-archive/archive/"
    )
    assert hooks.location(_ctx("lifecycle.migrate-in", source="b1")) == Location(
        "tenant-data", "t1/lifecycle.migrate-out/b1/team-archive/archive/"
    )
    assert hooks.location(_ctx("lifecycle.restore", source="b0")) == Location(
        "tenant-data", "t1/lifecycle.backup/b0/team-archive/archive/"
    )
    assert hooks.location(_ctx("lifecycle.upsert")) is None
    with pytest.raises(RefusedError, match="no source batch operation id"):
        hooks.location(_ctx("lifecycle.migrate-in"))


def test_non_storage_operations_are_a_no_op() -> None:
    hooks = StorageHooks(StorageSettings(bucket="tenant-data", role_arn=ROLE))
    injection = hooks.before_pod(_ctx("lifecycle.upsert"))
    assert dict(injection.env) == {}
    assert dict(injection.secret_env) == {}
    hooks.after_success(_ctx("lifecycle.upsert"))


def test_without_settings_storage_operations_are_refused_and_others_run() -> None:
    hooks = storage_hooks_from(None, env={})
    assert isinstance(hooks, UnconfiguredStorageHooks)
    with pytest.raises(RefusedError, match="no storage settings"):
        hooks.before_pod(_ctx("lifecycle.backup"))
    assert dict(hooks.before_pod(_ctx("lifecycle.upsert")).env) == {}
    configured = storage_hooks_from(
        None, env={"BRIDGE_STORAGE_BUCKET": "tenant-data", "BRIDGE_STORAGE_ROLE_ARN": ROLE}
    )
    assert isinstance(configured, StorageHooks)


def test_endpoint_defaults_to_aws_regional() -> None:
    settings = StorageSettings(bucket="tenant-data", region="eu-west-1")
    assert endpoint_for(settings) == "https://s3.eu-west-1.amazonaws.com"


def test_hooks_from_env_reads_the_config_file_named_in_the_environment(tmp_path: Path) -> None:
    from bridge.storage_hooks import hooks_from_env

    config = tmp_path / "storage.yaml"
    config.write_text(f"bucket: from-file\nrole_arn: {ROLE}\n")
    hooks = hooks_from_env({"BRIDGE_STORAGE_CONFIG": str(config)})
    assert isinstance(hooks, StorageHooks)
    assert hooks.settings.bucket == "from-file"
    assert isinstance(hooks_from_env({}), UnconfiguredStorageHooks)


def test_botocore_errors_become_storage_errors_that_say_what_to_do() -> None:
    import botocore.exceptions

    from bridge.storage import StorageUnavailableError, _translate

    def client_error(code: str, status: int) -> Exception:
        return botocore.exceptions.ClientError(
            {
                "Error": {"Code": code, "Message": f"{code} happened"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            "GetObject",
        )

    denied = _translate(client_error("AccessDenied", 403), "reading s3://b-1/k")
    assert type(denied) is StorageError
    assert str(denied) == (
        "reading s3://b-1/k: AccessDenied: AccessDenied happened "
        "(the bridge's credentials may not do this; check its IAM policy)"
    )
    assert isinstance(_translate(client_error("SlowDown", 503), "x"), StorageUnavailableError)
    unreachable = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    assert isinstance(_translate(unreachable, "x"), StorageUnavailableError)
    assert "no credentials" in str(_translate(botocore.exceptions.NoCredentialsError(), "x"))
