"""``tenantctl migrate`` across two regions: two sandboxes (each with the example archive team
and its own node state), one SeaweedFS bucket between them, result events on the Pub/Sub
emulator, the operation history in SQLite.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bridge.kube import PODS, Kube
from orchestrator.cli import main
from orchestrator.pubsub import pull_now
from sandbox import Sandbox
from tests.fixtures.seaweedfs import SeaweedS3

ROOT = Path(__file__).resolve().parents[3]
TEAM = ROOT / "lifecycle-jobs" / "archive"
NAMESPACE = "team-archive"
TENANT = "t-move"
FAST_ENV = {
    "BRIDGE_BACKOFF_BASE": "0.05",
    "BRIDGE_BACKOFF_MAX": "0.2",
    "BRIDGE_STUCK_GRACE": "1",
    "BRIDGE_DELETE_GRACE": "2",
    "BRIDGE_LOG_RECONNECT_DELAY": "0.05",
}


def team_objects(state: Path) -> list[dict[str, Any]]:
    """The archive team's manifests with the node state on ``state``."""
    objects: list[dict[str, Any]] = []
    for name in ("namespace.yaml", "jobs.yaml"):
        objects += [d for d in yaml.safe_load_all((TEAM / name).read_text()) if d]
    for obj in objects:
        if obj["kind"] == "Job":
            for volume in obj["spec"]["template"]["spec"]["volumes"]:
                if volume["name"] == "state":
                    volume["hostPath"]["path"] = str(state)
    return objects


def broken(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same Job, but its program fails at once (a bad release in that region)."""
    objects = copy.deepcopy(objects)
    for obj in objects:
        if obj["kind"] == "Job":
            container = obj["spec"]["template"]["spec"]["containers"][0]
            container["command"] = [
                "python3",
                "-c",
                "print('[archive] broken'); raise SystemExit(3)",
            ]
    return objects


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass
class World:
    a: Sandbox
    b: Sandbox
    state_a: Path
    state_b: Path
    team_b: list[dict[str, Any]]
    regions: Path
    store: str
    topology: Any
    s3: SeaweedS3
    bucket: str

    def migrate(self, *args: str) -> tuple[int, dict[str, Any], str]:
        argv = ["migrate", TENANT, "--from", "region-a", "--to", "region-b"]
        argv += ["--regions", str(self.regions), "--store", self.store, "-o", "json"]
        argv += ["--project", self.topology.project, "--results-topic", self.topology.results_topic]
        result = CliRunner().invoke(main, [*argv, *args])
        document = json.loads(result.stdout) if result.stdout.strip() else {}
        return result.exit_code, document, result.output

    def results(self, expected: int) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        for _ in range(20):
            if len(got) >= expected:
                break
            got += [
                json.loads(m.data)
                for m in pull_now(self.topology.project, self.topology.results_subscription)
            ]
        return got

    def export_prefixes(self) -> set[str]:
        client = self.s3.client()
        try:
            listed = client.list_objects_v2(Bucket=self.bucket, Prefix=f"{TENANT}/")
            keys = [o["Key"] for o in listed.get("Contents", [])]
        finally:
            client.close()
        return {"/".join(k.split("/")[:3]) for k in keys}


@pytest.fixture
def world(
    sandbox_factory: Callable[..., Sandbox],
    *,
    seaweedfs: SeaweedS3,
    seaweedfs_bucket: str,
    pubsub_topology: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    for key in [k for k in os.environ if k.startswith("BRIDGE_STORAGE_")]:
        monkeypatch.delenv(key)
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    a, b = sandbox_factory(rbac=False), sandbox_factory(rbac=False)
    state_a, state_b = tmp_path / "node-a", tmp_path / "node-b"
    state_a.mkdir()
    state_b.mkdir()
    a.apply(team_objects(state_a))
    team_b = team_objects(state_b)
    b.apply(team_b)
    keys = tmp_path / "s3-keys.yaml"
    keys.write_text(
        yaml.safe_dump(
            {
                "access_key_id": seaweedfs.access_key_id,
                "secret_access_key": seaweedfs.secret_access_key,
            }
        )
    )
    keys.chmod(0o600)
    storage = tmp_path / "storage.yaml"  # one bucket reachable from both regions
    storage.write_text(
        yaml.safe_dump(
            {
                "bucket": seaweedfs_bucket,
                "endpoint_url": seaweedfs.endpoint_url,
                "credentials": "static",
                "credentials_file": str(keys),
            }
        )
    )
    regions = tmp_path / "regions.yaml"
    regions.write_text(
        yaml.safe_dump(
            {
                "regions": {
                    name: {
                        "cluster": {"kubeconfig": str(sb.kubeconfig_path())},
                        "engine": "local",
                        "storageConfig": str(storage),
                    }
                    for name, sb in (("region-a", a), ("region-b", b))
                }
            }
        )
    )
    return World(
        a,
        b,
        state_a,
        state_b,
        team_b,
        regions,
        f"sqlite:///{tmp_path / 'history.db'}",
        pubsub_topology,
        seaweedfs,
        seaweedfs_bucket,
    )


def seed_archive(state: Path) -> dict[str, str]:
    archive = state / "tenants" / TENANT / "archive"
    (archive / "2026").mkdir(parents=True)
    for index in range(12):
        (archive / "2026" / f"{index:02d}.txt").write_bytes(f"doc {index}\n".encode() * (index + 5))
    (archive / "blob.bin").write_bytes(os.urandom(300_000))
    return digests(archive)


def test_a_migration_moves_the_archive_to_b_with_identical_data(world: World) -> None:
    before = seed_archive(world.state_a)
    code, document, output = world.migrate("--batch-operation-id", "mig-ok")
    assert code == 0, output
    assert document["status"] == "succeeded"
    assert document["tenantState"] == "migrated: the tenant's data is in region-b"
    out, into = document["steps"]
    assert (out["operation"], out["region"], out["batchOperationId"]) == (
        "lifecycle.migrate-out",
        "region-a",
        "mig-ok-out",
    )
    assert (into["operation"], into["region"], into["sourceBatchOperationId"]) == (
        "lifecycle.migrate-in",
        "region-b",
        "mig-ok-out",
    )
    assert [job["job"] for job in into["jobs"]] == ["archive"]
    # Identical data in B, checksum for checksum; A keeps its copy.
    assert digests(world.state_b / "tenants" / TENANT / "archive") == before
    assert digests(world.state_a / "tenants" / TENANT / "archive") == before
    # One export, read by the import: the bucket holds exactly that location.
    assert world.export_prefixes() == {f"{TENANT}/lifecycle.migrate-out/mig-ok-out"}
    events = world.results(3)
    assert sorted((e["type"], e["id"]) for e in events) == [
        ("dev.tenant-lifecycle.migration.succeeded", "mig-ok"),
        ("dev.tenant-lifecycle.operation.succeeded", "mig-ok-in"),
        ("dev.tenant-lifecycle.operation.succeeded", "mig-ok-out"),
    ]
    assert world.s3.secret_access_key not in output
    # Each result event names, per job, where the data went and what the manifest sealed.
    prefix = f"{TENANT}/lifecycle.migrate-out/mig-ok-out/{NAMESPACE}/archive/"
    url = f"s3://{world.bucket}/{prefix}"
    client = world.s3.client()
    try:
        manifest_raw = client.get_object(Bucket=world.bucket, Key=prefix + "_manifest.json")[
            "Body"
        ].read()
    finally:
        client.close()
    manifest = json.loads(manifest_raw)
    expected = {
        "location": url,
        "objectCount": manifest["objectCount"],
        "bytes": manifest["totalBytes"],
        "manifest": url + "_manifest.json",
        "manifestSha256": hashlib.sha256(manifest_raw).hexdigest(),
    }
    assert expected["objectCount"] == 14  # 13 documents + archive-info.json
    assert expected["bytes"] > 300_000
    by_id = {e["id"]: e for e in events}
    [exported] = by_id["mig-ok-out"]["data"]["jobs"]
    [imported] = by_id["mig-ok-in"]["data"]["jobs"]
    assert exported["storage"] == {**expected, "access": "write"}
    assert imported["storage"] == {**expected, "access": "read"}
    steps = by_id["mig-ok"]["data"]["steps"]
    assert [s["jobs"][0]["storage"]["access"] for s in steps] == ["write", "read"]
    assert world.s3.secret_access_key not in json.dumps(events)


def test_a_failure_in_b_reports_both_steps_and_a_rerun_resumes_at_the_import(
    world: World,
) -> None:
    before = seed_archive(world.state_a)
    world.b.apply(broken(world.team_b))
    code, document, output = world.migrate("--batch-operation-id", "mig-re")
    assert code == 1, output
    assert document["status"] == "failed"
    out, into = document["steps"]
    assert (out["status"], into["status"]) == ("succeeded", "failed")
    assert into["jobs"][0]["exitCode"] == 3
    assert "resume at the import" in document["tenantState"]
    failed = {e["id"]: e for e in world.results(3)}
    assert failed["mig-re"]["type"] == "dev.tenant-lifecycle.migration.failed"
    assert [s["status"] for s in failed["mig-re"]["data"]["steps"]] == ["succeeded", "failed"]
    assert failed["mig-re-in"]["type"] == "dev.tenant-lifecycle.operation.failed"
    assert not (world.state_b / "tenants" / TENANT / "archive").exists()

    world.b.apply(world.team_b)  # the region's job is fixed
    code, document, output = world.migrate("--batch-operation-id", "mig-re")
    assert code == 0, output
    out, into = document["steps"]
    assert out["resumed"] is True  # taken from the history: not exported again
    assert out["batchOperationId"] == "mig-re-out"
    assert (into["batchOperationId"], into["resumed"]) == ("mig-re-in-2", False)
    assert into["sourceBatchOperationId"] == "mig-re-out"
    assert digests(world.state_b / "tenants" / TENANT / "archive") == before
    # Proof that A ran no second export: no pod of any other export batch, one export location.
    with Kube(host=world.a.url, token=world.a.admin_token) as kube:
        pods = list(kube.list(PODS, namespace=NAMESPACE))
    batches = {p["metadata"]["labels"].get("tenant-lifecycle.dev/batch") for p in pods}
    assert batches <= {"mig-re-out"}
    assert world.export_prefixes() == {f"{TENANT}/lifecycle.migrate-out/mig-re-out"}
    second = {e["id"]: e["type"] for e in world.results(2)}
    assert second == {
        "mig-re-in-2": "dev.tenant-lifecycle.operation.succeeded",
        "mig-re": "dev.tenant-lifecycle.migration.succeeded",
    }
