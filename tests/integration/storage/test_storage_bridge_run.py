"""Storage operations end to end: ``python -m bridge run`` on the sandbox, the example team's
job (lifecycle-jobs/archive) as the pod, a real SeaweedFS as the object store.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.export_manifest import MANIFEST_KEY, seal_export
from bridge.kube import JOBS, PODS, Kube
from bridge.storage import Location, ObjectStore
from bridge.storage_settings import CredentialsSource, StorageSettings
from sandbox import Sandbox
from tests.fixtures.seaweedfs import SeaweedS3

ROOT = Path(__file__).resolve().parents[3]
TEAM = ROOT / "lifecycle-jobs" / "archive"
NAMESPACE = "team-archive"
BIG = 20 * 1024 * 1024
FAST_ENV = {
    "BRIDGE_BACKOFF_BASE": "0.05",
    "BRIDGE_BACKOFF_MAX": "0.2",
    "BRIDGE_STUCK_GRACE": "1",
    "BRIDGE_DELETE_GRACE": "2",
    "BRIDGE_LOG_RECONNECT_DELAY": "0.05",
    "PYTHONUNBUFFERED": "1",
}


@pytest.fixture(scope="module")
def storage_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox for this module, with the example team installed; state on a temp dir."""
    state = tmp_path_factory.mktemp("archive-state")
    with Sandbox(rbac=False, workdir=tmp_path_factory.mktemp("storage-sandbox")) as sb:
        objects: list[dict[str, Any]] = []
        for name in ("namespace.yaml", "jobs.yaml"):
            objects += [d for d in yaml.safe_load_all((TEAM / name).read_text()) if d]
        for obj in objects:
            if obj["kind"] == "Job":
                for volume in obj["spec"]["template"]["spec"]["volumes"]:
                    if volume["name"] == "state":
                        volume["hostPath"]["path"] = str(state)
        sb.apply(objects)
        sb.state_dir = state  # type: ignore[attr-defined]
        sb.archive_job = next(o for o in objects if o["kind"] == "Job")  # type: ignore[attr-defined]
        yield sb


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any]


@dataclass
class StorageWorld:
    sb: Sandbox
    s3: SeaweedS3
    settings: StorageSettings
    tmp: Path

    @property
    def state_dir(self) -> Path:
        return Path(self.sb.state_dir)  # type: ignore[attr-defined]

    def bridge(
        self,
        operation: str,
        *,
        tenant: str,
        batch: str,
        source: str | None = None,
        job: str = "archive",
        storage_config: Path | None = None,
    ) -> Run:
        result_path = self.tmp / f"result-{tenant}-{batch}.json"
        argv = [
            sys.executable,
            "-m",
            "bridge",
            "run",
            "--kubeconfig",
            str(self.sb.kubeconfig_path()),
            "--namespace",
            NAMESPACE,
            "--job",
            job,
            "--operation",
            operation,
            "--tenant-env-id",
            tenant,
            "--batch-operation-id",
            batch,
            "--result",
            str(result_path),
        ]
        if source:
            argv += ["--source-batch-operation-id", source]
        env = self.bridge_env()
        if storage_config is not None:  # the file holds the settings, the env only the keys
            argv += ["--storage-config", str(storage_config)]
            for name in ("BUCKET", "ENDPOINT_URL", "CREDENTIALS"):
                del env[f"BRIDGE_STORAGE_{name}"]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env=env, check=False
        )
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
        return Run(done.returncode, done.stdout, done.stderr, result)

    def bridge_env(self) -> dict[str, str]:
        """The environment of a bridge (or tenantctl) process: fast retries, static S3 keys."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_STORAGE_")}
        env.update(FAST_ENV)
        env.update(
            {
                "BRIDGE_STORAGE_BUCKET": self.settings.bucket,
                "BRIDGE_STORAGE_ENDPOINT_URL": self.s3.endpoint_url,
                "BRIDGE_STORAGE_CREDENTIALS": "static",
                "BRIDGE_STORAGE_ACCESS_KEY_ID": self.s3.access_key_id,
                "BRIDGE_STORAGE_SECRET_ACCESS_KEY": self.s3.secret_access_key,
            }
        )
        return env

    def export_location(self, tenant: str, batch: str) -> Location:
        prefix = self.settings.render_prefix(
            tenant=tenant,
            operation="lifecycle.migrate-out",
            batch=batch,
            namespace=NAMESPACE,
            job="archive",
        )
        return Location(self.settings.bucket, prefix)

    def pods(self, batch: str) -> list[dict[str, Any]]:
        with Kube(host=self.sb.url, token=self.sb.admin_token) as kube:
            return list(
                kube.list(
                    PODS, namespace=NAMESPACE, label_selector=f"tenant-lifecycle.dev/batch={batch}"
                )
            )


@pytest.fixture
def world(
    storage_sandbox: Sandbox, seaweedfs: SeaweedS3, seaweedfs_bucket: str, tmp_path: Path
) -> StorageWorld:
    settings = StorageSettings(
        bucket=seaweedfs_bucket,
        endpoint_url=seaweedfs.endpoint_url,
        credentials=CredentialsSource.STATIC,
        access_key_id=seaweedfs.access_key_id,
        secret_access_key=seaweedfs.secret_access_key,
    )
    return StorageWorld(storage_sandbox, seaweedfs, settings, tmp_path)


def _tree_digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _assert_no_secret(world: StorageWorld, *runs: Run) -> None:
    secret = world.s3.secret_access_key
    for run in runs:
        assert secret not in run.stdout
        assert secret not in run.stderr
        assert secret not in json.dumps(run.result)


def test_migrate_out_then_in_round_trips_100_objects_with_every_checksum_verified(
    world: StorageWorld,
) -> None:
    archive = world.state_dir / "tenants" / "t-round" / "archive"
    (archive / "2026").mkdir(parents=True)
    for index in range(98):
        body = f"document {index}\n".encode() * (index + 1)
        (archive / "2026" / f"{index:03d}.txt").write_bytes(body)
    (archive / "big.bin").write_bytes(os.urandom(BIG))
    before = _tree_digests(archive)
    assert len(before) == 99

    out = world.bridge("lifecycle.migrate-out", tenant="t-round", batch="b-out")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.result["status"] == "succeeded"
    assert "[archive] exported 99 document(s)" in out.stdout

    location = world.export_location("t-round", "b-out")
    with ObjectStore(world.settings) as store:
        raw = store.get_object(location.bucket, location.key(MANIFEST_KEY))
    assert raw is not None
    manifest = json.loads(raw)
    assert manifest["objectCount"] == 100  # 99 documents + archive-info.json
    listed = {o["key"]: o for o in manifest["objects"]}
    assert listed["documents/big.bin"]["size"] == BIG
    for relative, digest in before.items():
        assert listed[f"documents/{relative}"]["sha256"] == digest, relative
    # The job's result names what it wrote: where, how much, and the sealed manifest's checksum.
    sealed = {
        "location": location.url,
        "access": "write",
        "objectCount": 100,
        "bytes": sum(o["size"] for o in manifest["objects"]),
        "manifest": location.url + MANIFEST_KEY,
        "manifestSha256": hashlib.sha256(raw).hexdigest(),
    }
    assert out.result["storage"] == sealed
    assert sealed["bytes"] > BIG

    shutil.rmtree(archive)  # the tenant arrives in a region that has nothing of it

    into = world.bridge("lifecycle.migrate-in", tenant="t-round", batch="b-in", source="b-out")
    assert into.returncode == 0, into.stdout + into.stderr
    assert into.result["status"] == "succeeded"
    assert "[archive] imported 99 document(s), every sha256 verified" in into.stdout
    assert _tree_digests(archive) == before
    assert into.result["storage"] == {**sealed, "access": "read"}  # the source it verified
    _assert_no_secret(world, out, into)


def test_a_damaged_export_refuses_migrate_in_before_any_pod_naming_the_keys(
    world: StorageWorld,
) -> None:
    location = world.export_location("t-damaged", "b-out")
    with ObjectStore(world.settings) as store:
        for index in range(6):
            key = location.key(f"documents/{index}.txt")
            store.put_object(location.bucket, key, f"row {index}\n".encode() * 50)
        store.put_object(location.bucket, location.key("archive-info.json"), b"{}")
        seal_export(store, location, context={})
        changed = location.key("documents/2.txt")
        body = store.get_object(location.bucket, changed)
        assert body is not None
        store.put_object(location.bucket, changed, body[:10] + b"X" + body[11:])  # same size
        store.delete_object(location.bucket, location.key("documents/4.txt"))

    config = world.tmp / "storage.yaml"
    config.write_text(
        f"bucket: {world.settings.bucket}\n"
        f"endpoint_url: {world.s3.endpoint_url}\n"
        "credentials: static\n"
    )
    run = world.bridge(
        "lifecycle.migrate-in",
        tenant="t-damaged",
        batch="b-in",
        source="b-out",
        storage_config=config,
    )

    assert run.returncode == 2, run.stdout + run.stderr
    assert run.result["status"] == "refused"
    message = run.result["message"]
    assert "failed verification: documents/2.txt: sha256" in message  # the first failing key
    assert "+1 more: documents/4.txt" in message
    assert "documents/2.txt" in run.stderr
    assert world.pods("b-in") == []
    _assert_no_secret(world, run)


def test_an_export_job_that_exits_0_without_writing_fails(world: StorageWorld) -> None:
    job = copy.deepcopy(world.sb.archive_job)  # type: ignore[attr-defined]
    job["metadata"]["name"] = "archive-forgetful"
    job["metadata"]["annotations"]["tenant-lifecycle.dev/operations"] = "lifecycle.migrate-out"
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["python3", "-c", "print('exported everything (not really)')"]
    world.sb.apply([job])
    try:
        run = world.bridge(
            "lifecycle.migrate-out", tenant="t-empty", batch="b-empty", job="archive-forgetful"
        )
        [pod] = world.pods("b-empty")
    finally:
        with Kube(host=world.sb.url, token=world.sb.admin_token) as kube:
            kube.delete(JOBS, "archive-forgetful", namespace=NAMESPACE)

    assert run.returncode != 0
    assert run.result["status"] == "failed"
    assert run.result["reason"] == "StorageVerificationFailed"
    assert "exited 0 without writing anything" in run.result["message"]
    # The pod is kept (delete-policy succeeded); the keys reached it only by secretKeyRef.
    assert world.s3.secret_access_key not in json.dumps(pod)
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert "secretKeyRef" in env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]
    assert env["LIFECYCLE_OBJECT_STORE_URL"]["value"].startswith(f"s3://{world.settings.bucket}/")
    _assert_no_secret(world, run)


def test_restore_through_the_local_engine_keeps_keys_out_of_the_result_event(
    world: StorageWorld,
) -> None:
    # A sealed backup of batch bk-1, written as the archive job writes one (the job itself
    # exported in the round trip above; here the point is the engine's result).
    documents = {name: f"{name} of t-backup\n".encode() * 10 for name in ("a.pdf", "b.txt")}
    location = Location(
        world.settings.bucket,
        world.settings.render_prefix(
            tenant="t-backup",
            operation="lifecycle.backup",
            batch="bk-1",
            namespace=NAMESPACE,
            job="archive",
        ),
    )
    with ObjectStore(world.settings) as store:
        for name, body in documents.items():
            store.put_object(location.bucket, location.key(f"documents/{name}"), body)
        info = json.dumps({"documents": len(documents)}).encode()
        store.put_object(location.bucket, location.key("archive-info.json"), info)
        seal_export(store, location, context={}, retention="backup")
        manifest_raw = store.get_object(location.bucket, location.key(MANIFEST_KEY))
    assert manifest_raw is not None

    argv = [str(Path(sys.executable).parent / "tenantctl"), "run", "lifecycle.restore"]
    argv += ["--tenant-env-id", "t-backup", "--batch-operation-id", "rs-1"]
    argv += ["--source-batch-operation-id", "bk-1", "-o", "json"]
    argv += ["--kubeconfig", str(world.sb.kubeconfig_path())]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env=world.bridge_env(), check=False
    )

    assert done.returncode == 0, done.stdout + done.stderr
    event_data = json.loads(done.stdout)
    [job] = event_data["jobs"]
    assert (job["namespace"], job["job"], job["status"]) == (NAMESPACE, "archive", "succeeded")
    assert job["storage"] == {
        "location": location.url,
        "access": "read",
        "objectCount": 3,
        "bytes": sum(map(len, documents.values())) + len(info),
        "manifest": location.url + MANIFEST_KEY,
        "manifestSha256": hashlib.sha256(manifest_raw).hexdigest(),
    }
    restored = world.state_dir / "tenants" / "t-backup" / "archive"
    assert {p.name: p.read_bytes() for p in restored.iterdir()} == documents
    assert world.s3.secret_access_key not in done.stdout + done.stderr
