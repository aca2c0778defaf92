"""Scoped credentials that a real S3 server enforces: SeaweedFS's STS ``AssumeRole`` with the
bridge's session policy (``bridge.storage.session_policy``).

The server runs with an IAM configuration (``-s3.iam.config``): one role whose own policy
allows ``s3:*`` on everything, assumable by the bridge's identity. Every denial below therefore
comes from the session policy the bridge attaches -- the control test shows the same role
without it writing into another tenant's prefix.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

from bridge.kube import PODS, SECRETS, Kube
from bridge.storage import CredentialBroker, Credentials, Location
from bridge.storage_settings import CredentialsSource, StorageSettings
from sandbox import Sandbox
from sandbox.emulators import EmulatorError, SeaweedFS

ROOT = Path(__file__).resolve().parents[3]
TEAM = ROOT / "lifecycle-jobs" / "archive"
NAMESPACE = "team-archive"
BUCKET = "tenant-data"
ROLE_ARN = "arn:aws:iam::000000000000:role/LifecycleJob"
FAST_ENV = {
    "BRIDGE_BACKOFF_BASE": "0.05",
    "BRIDGE_BACKOFF_MAX": "0.2",
    "BRIDGE_STUCK_GRACE": "1",
    "BRIDGE_DELETE_GRACE": "2",
    "PYTHONUNBUFFERED": "1",
}


class SeaweedFSWithSTS(SeaweedFS):
    """``weed server -s3`` with its IAM/STS configuration: the role jobs' credentials come from."""

    def _argv(self) -> tuple[list[str], Path]:
        argv, workdir = super()._argv()
        iam = {
            "sts": {
                "tokenDuration": 3600 * 10**9,
                "maxSessionLength": 12 * 3600 * 10**9,
                "issuer": "seaweedfs-sts",
                "signingKey": base64.b64encode(secrets.token_bytes(32)).decode(),
            },
            "policy": {"defaultEffect": "Deny", "storeType": "memory"},
            "roles": [
                {
                    "roleName": "LifecycleJob",
                    "roleArn": ROLE_ARN,
                    "trustPolicy": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": "*"},
                                "Action": ["sts:AssumeRole"],
                            }
                        ],
                    },
                    "attachedPolicies": ["EverythingS3"],
                }
            ],
            "policies": [
                {
                    "name": "EverythingS3",
                    "document": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                    },
                }
            ],
        }
        path = workdir / "iam.json"
        path.write_text(json.dumps(iam), encoding="utf-8")
        path.chmod(0o600)
        return [*argv, f"-s3.iam.config={path}"], workdir


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFSWithSTS]:
    server = SeaweedFSWithSTS(
        tmp_path_factory.mktemp("weed-sts"),
        access_key="BRIDGE" + secrets.token_hex(6).upper(),
        secret_key="bridge-secret-" + secrets.token_urlsafe(24),
    )
    try:
        server.__enter__()
    except EmulatorError as exc:
        pytest.fail(f"SeaweedFS did not start: {exc}", pytrace=False)
    try:
        admin = s3_client(server, server.access_key, server.secret_key)
        admin.create_bucket(Bucket=BUCKET)
        admin.close()
        yield server
    finally:
        server.__exit__(None, None, None)


def s3_client(server: SeaweedFS, key: str, secret: str, token: str | None = None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(region_name="us-east-1", s3={"addressing_style": "path"}),
    )


def settings_for(server: SeaweedFS, credentials: CredentialsSource) -> StorageSettings:
    return StorageSettings(
        bucket=BUCKET,
        endpoint_url=server.endpoint_url,
        sts_endpoint_url=server.endpoint_url,
        credentials=credentials,
        role_arn=ROLE_ARN,
        session_duration_seconds=900,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
    )


def location(tenant: str, operation: str, batch: str, job: str = "archive") -> Location:
    return Location(BUCKET, f"{tenant}/{operation}/{batch}/{NAMESPACE}/{job}/")


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


def test_a_jobs_credentials_reach_only_its_own_prefix_and_operation(
    weed: SeaweedFSWithSTS,
) -> None:
    export = location("t1", "lifecycle.migrate-out", "b1")
    neighbours = {
        "another tenant": location("t2", "lifecycle.migrate-out", "b1"),
        "another job": location("t1", "lifecycle.migrate-out", "b1", job="billing"),
        "another operation": location("t1", "lifecycle.backup", "b1"),
        "another batch": location("t1", "lifecycle.migrate-out", "b0"),
    }
    admin = s3_client(weed, weed.access_key, weed.secret_key)
    for other in neighbours.values():
        admin.put_object(Bucket=BUCKET, Key=other.key("data.bin"), Body=b"not yours")
    broker = CredentialBroker(settings_for(weed, CredentialsSource.STS))
    try:
        writer = broker.assume_role_for(export, session_name="lc-b1-team-archive", write=True)
        reader = broker.assume_role_for(export, session_name="lc-b1-in", write=False)
    finally:
        broker.close()
    assert writer.session_token
    assert reader.session_token
    assert writer.access_key_id != weed.access_key

    def client(creds: Credentials) -> Any:
        return s3_client(weed, creds.access_key_id, creds.secret_access_key, creds.session_token)

    job, reading = client(writer), client(reader)
    own = export.key("documents/a.txt")
    # inside its prefix: write, read, list, delete
    assert outcome(lambda: job.put_object(Bucket=BUCKET, Key=own, Body=b"mine")) == "ok"
    assert outcome(lambda: job.get_object(Bucket=BUCKET, Key=own)) == "ok"
    listed = job.list_objects_v2(Bucket=BUCKET, Prefix=export.prefix)
    assert [o["Key"] for o in listed["Contents"]] == [own]
    # one prefix over, in every direction: refused by the server
    for what, other in neighbours.items():
        key = other.key("data.bin")
        attempts = {
            "get": partial(job.get_object, Bucket=BUCKET, Key=key),
            "put": partial(job.put_object, Bucket=BUCKET, Key=key, Body=b"x"),
            "delete": partial(job.delete_object, Bucket=BUCKET, Key=key),
            "list": partial(job.list_objects_v2, Bucket=BUCKET, Prefix=other.prefix),
        }
        for verb, call in attempts.items():
            assert outcome(call) == "AccessDenied", (what, verb)
    assert outcome(lambda: job.list_objects_v2(Bucket=BUCKET)) == "AccessDenied"
    # read-only credentials (migrate-in, restore): read and list, never write or delete
    assert outcome(lambda: reading.get_object(Bucket=BUCKET, Key=own)) == "ok"
    assert outcome(lambda: reading.list_objects_v2(Bucket=BUCKET, Prefix=export.prefix)) == "ok"
    assert outcome(lambda: reading.put_object(Bucket=BUCKET, Key=own, Body=b"x")) == (
        "AccessDenied"
    )
    assert outcome(lambda: reading.delete_object(Bucket=BUCKET, Key=own)) == "AccessDenied"
    assert admin.get_object(Bucket=BUCKET, Key=own)["Body"].read() == b"mine"
    for each in (job, reading, admin):
        each.close()


def test_the_denials_come_from_the_session_policy(weed: SeaweedFSWithSTS) -> None:
    import boto3

    sts = boto3.session.Session().client(
        "sts",
        endpoint_url=weed.endpoint_url,
        aws_access_key_id=weed.access_key,
        aws_secret_access_key=weed.secret_key,
        region_name="us-east-1",
    )
    try:
        unscoped = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="control")["Credentials"]
        refused = outcome(lambda: sts.assume_role(RoleArn=ROLE_ARN[:-3], RoleSessionName="xx"))
    finally:
        sts.close()
    job = s3_client(
        weed, unscoped["AccessKeyId"], unscoped["SecretAccessKey"], unscoped["SessionToken"]
    )
    other = location("t9", "lifecycle.backup", "b9").key("x")
    assert outcome(lambda: job.put_object(Bucket=BUCKET, Key=other, Body=b"x")) == "ok"
    job.close()
    assert refused == "AccessDenied"  # a role that does not exist


# -- the bridge end to end: sts credentials on a real run ----------------------------------------


@pytest.fixture(scope="module")
def archive_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The example archive team in a sandbox, its pods kept after success (to read them)."""
    state = tmp_path_factory.mktemp("archive-state")
    with Sandbox(rbac=False, workdir=tmp_path_factory.mktemp("sts-sandbox")) as sb:
        objects: list[dict[str, Any]] = []
        for name in ("namespace.yaml", "jobs.yaml"):
            objects += [d for d in yaml.safe_load_all((TEAM / name).read_text()) if d]
        for obj in objects:
            if obj["kind"] == "Job":
                annotations = obj["metadata"].setdefault("annotations", {})
                annotations["tenant-lifecycle.dev/delete-policy"] = "never"
                for volume in obj["spec"]["template"]["spec"]["volumes"]:
                    if volume["name"] == "state":
                        volume["hostPath"]["path"] = str(state)
        sb.apply(objects)
        sb.state_dir = state  # type: ignore[attr-defined]
        yield sb


def bridge(
    sb: Sandbox,
    weed: SeaweedFS,
    tmp: Path,
    operation: str,
    *,
    batch: str,
    source: str | None = None,
) -> tuple[int, str, dict[str, Any]]:
    result_path = tmp / f"result-{batch}.json"
    argv = [sys.executable, "-m", "bridge", "run", "--kubeconfig", str(sb.kubeconfig_path())]
    argv += ["--namespace", NAMESPACE, "--job", "archive", "--operation", operation]
    argv += ["--tenant-env-id", "t-sts", "--batch-operation-id", batch]
    argv += ["--result", str(result_path)]
    if source:
        argv += ["--source-batch-operation-id", source]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_STORAGE_")}
    env.update(FAST_ENV)
    env.update(
        {
            "BRIDGE_STORAGE_BUCKET": BUCKET,
            "BRIDGE_STORAGE_ENDPOINT_URL": weed.endpoint_url,
            "BRIDGE_STORAGE_STS_ENDPOINT_URL": weed.endpoint_url,
            "BRIDGE_STORAGE_CREDENTIALS": "sts",
            "BRIDGE_STORAGE_ROLE_ARN": ROLE_ARN,
            "BRIDGE_STORAGE_SESSION_DURATION_SECONDS": "900",
            "BRIDGE_STORAGE_ACCESS_KEY_ID": weed.access_key,
            "BRIDGE_STORAGE_SECRET_ACCESS_KEY": weed.secret_key,
        }
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    return done.returncode, done.stdout + done.stderr, result


def test_a_migration_runs_on_scoped_credentials_whose_secret_shows_nowhere(
    archive_sandbox: Sandbox, weed: SeaweedFSWithSTS, tmp_path: Path
) -> None:
    archive = Path(archive_sandbox.state_dir) / "tenants" / "t-sts" / "archive"  # type: ignore[attr-defined]
    archive.mkdir(parents=True)
    documents = {f"{index:02d}.txt": f"document {index}\n".encode() * 50 for index in range(5)}
    for name, body in documents.items():
        (archive / name).write_bytes(body)

    code, out_log, out = bridge(
        archive_sandbox, weed, tmp_path, "lifecycle.migrate-out", batch="s-out"
    )
    assert code == 0, out_log
    assert out["storage"]["objectCount"] == len(documents) + 1  # + archive-info.json
    for name in documents:
        (archive / name).unlink()
    code, in_log, into = bridge(
        archive_sandbox, weed, tmp_path, "lifecycle.migrate-in", batch="s-in", source="s-out"
    )
    assert code == 0, in_log
    assert {p.name: p.read_bytes() for p in archive.iterdir()} == documents
    assert into["storage"]["manifestSha256"] == out["storage"]["manifestSha256"]

    with Kube(host=archive_sandbox.url, token=archive_sandbox.admin_token) as kube:
        pods = list(kube.list(PODS, namespace=NAMESPACE))
        secrets_ = list(kube.list(SECRETS, namespace=NAMESPACE))
    assert len(pods) == 2  # delete-policy never: both pods kept, to read their spec
    minted: list[str] = []
    for secret in secrets_:  # the per-run Secrets: where the minted keys live, and only there
        data = secret.get("data") or {}
        if "AWS_SECRET_ACCESS_KEY" in data:
            minted.append(base64.b64decode(data["AWS_SECRET_ACCESS_KEY"]).decode())
            assert "AWS_SESSION_TOKEN" in data
    assert len(minted) == 2
    assert weed.secret_key not in minted  # scoped keys, not the bridge's
    specs = json.dumps(pods)
    for secret_value in [weed.secret_key, *minted]:
        for text in (out_log, in_log, json.dumps(out), json.dumps(into), specs):
            assert secret_value not in text
    for pod in pods:
        for container in pod["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
            assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]


def test_a_backup_and_restore_through_the_local_engine_keep_every_key_out_of_the_event(
    archive_sandbox: Sandbox, weed: SeaweedFSWithSTS, tmp_path: Path
) -> None:
    state = Path(archive_sandbox.state_dir)  # type: ignore[attr-defined]
    archive = state / "tenants" / "t-engine" / "archive"
    archive.mkdir(parents=True)
    (archive / "contract.pdf").write_bytes(b"%PDF contract of t-engine\n" * 40)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_STORAGE_")}
    env.update(FAST_ENV)
    env.update(
        {
            "BRIDGE_STORAGE_BUCKET": BUCKET,
            "BRIDGE_STORAGE_ENDPOINT_URL": weed.endpoint_url,
            "BRIDGE_STORAGE_STS_ENDPOINT_URL": weed.endpoint_url,
            "BRIDGE_STORAGE_ROLE_ARN": ROLE_ARN,  # credentials: sts, the default
            "BRIDGE_STORAGE_SESSION_DURATION_SECONDS": "900",
            "BRIDGE_STORAGE_ACCESS_KEY_ID": weed.access_key,
            "BRIDGE_STORAGE_SECRET_ACCESS_KEY": weed.secret_key,
        }
    )
    tenantctl = str(Path(sys.executable).parent / "tenantctl")
    outputs: list[str] = []
    events: dict[str, dict[str, Any]] = {}
    for operation, batch, extra in (
        ("lifecycle.backup", "e-bk", []),
        ("lifecycle.restore", "e-rs", ["--source-batch-operation-id", "e-bk"]),
    ):
        if operation == "lifecycle.restore":
            (archive / "contract.pdf").unlink()
        argv = [tenantctl, "run", operation, "--tenant-env-id", "t-engine"]
        argv += ["--batch-operation-id", batch, *extra, "-o", "json"]
        argv += ["--kubeconfig", str(archive_sandbox.kubeconfig_path())]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env=env, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done.stdout + done.stderr)
        events[operation] = json.loads(done.stdout)
    assert (archive / "contract.pdf").read_bytes() == b"%PDF contract of t-engine\n" * 40
    [backed_up] = events["lifecycle.backup"]["jobs"]
    [restored] = events["lifecycle.restore"]["jobs"]
    assert backed_up["storage"]["access"] == "write"
    assert restored["storage"]["access"] == "read"
    assert restored["storage"]["manifestSha256"] == backed_up["storage"]["manifestSha256"]
    with Kube(host=archive_sandbox.url, token=archive_sandbox.admin_token) as kube:
        secrets_ = list(kube.list(SECRETS, namespace=NAMESPACE))
    minted = [
        base64.b64decode(s["data"]["AWS_SECRET_ACCESS_KEY"]).decode()
        for s in secrets_
        if (s["metadata"].get("labels") or {}).get("tenant-lifecycle.dev/batch") in {"e-bk", "e-rs"}
        and "AWS_SECRET_ACCESS_KEY" in (s.get("data") or {})
    ]
    assert len(minted) == 2
    text = json.dumps(events) + "".join(outputs)
    for secret_value in [weed.secret_key, *minted]:
        assert secret_value not in text
