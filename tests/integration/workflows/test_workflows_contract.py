"""Contract: the rendered WorkflowTemplate's commands, exactly as written, against the sandbox.

The template is interpreted by ``workflows.emulator`` (Argo's step semantics, the template's own
expressions); each container node runs its command and args as a real process, with the
container's files mapped into a per-node directory:

* ``python`` is this interpreter (the image's ``python``); ``/tmp/<file>`` paths in the args and
  the raw input artifacts are mapped to ``<node dir>/<file>``, outputs are read back from there;
* the process reaches the sandbox API server through ``BRIDGE_KUBECONFIG`` (in a pod: the
  in-cluster service account);
* the exit handler (``tenantctl publish-result``) needs a Workflow object and a bus; it is
  covered by the orchestrator's tests, here its arguments are parsed by the real CLI only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox import Sandbox
from workflows.emulator import ContainerCall, ContainerResult, EmulatedRun, Emulator

REPO = Path(__file__).resolve().parents[3]
TEMPLATE: dict[str, Any] = yaml.safe_load(
    (REPO / "workflows" / "rendered" / "workflowtemplate.yaml").read_text()
)
PREFIX = "tenant-lifecycle.dev"
OPERATION = "lifecycle.upsert"
TENANT = "t-799a"
ARGO_LOOKALIKE = "{{workflow.name}} {{=1+1}} {{"


def _namespace(name: str, *, opted_in: bool) -> dict[str, Any]:
    labels = {f"{PREFIX}/enabled": "true"} if opted_in else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _job(
    namespace: str,
    name: str,
    *,
    wave: int,
    script: str,
    on_failure: str = "abort",
    operations: str = OPERATION,
    applications: str | None = None,
) -> dict[str, Any]:
    extra = {f"{PREFIX}/applications": applications} if applications else {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {f"{PREFIX}/enabled": "true"},
            "annotations": {
                f"{PREFIX}/operations": operations,
                f"{PREFIX}/wave": str(wave),
                f"{PREFIX}/on-failure": on_failure,
                **extra,
            },
        },
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "example/lifecycle:1",
                            "command": ["sh", "-c", script],
                        }
                    ],
                }
            },
        },
    }


# Each program proves it got the tenant context: env vars and the mounted environment file.
SAY = (
    'echo "{name} for $LIFECYCLE_TENANT_ENV_ID batch $LIFECYCLE_BATCH_OPERATION_ID"; '
    'cat "$LIFECYCLE_TENANT_ENV_FILE"'
)


def _example_objects(*, failing: str | None = None) -> list[dict[str, Any]]:
    def script(name: str) -> str:
        return SAY.format(name=name) + ("; exit 3" if name == failing else "")

    return [
        _namespace("team-a", opted_in=True),
        _namespace("team-b", opted_in=True),
        _namespace("team-x", opted_in=False),
        _job("team-a", "schema", wave=-1, script=script("schema")),
        _job("team-a", "seed", wave=0, script=script("seed")),
        _job("team-b", "cache", wave=0, script=script("cache"), on_failure="continue"),
        _job("team-b", "index", wave=1, script=script("index")),
        # Not for this operation, and in a namespace that is not opted in: never planned.
        _job("team-b", "backup", wave=0, script=script("backup"), operations="lifecycle.backup"),
        _job("team-x", "rogue", wave=0, script=script("rogue")),
        # Only for tenants with the search application; this tenant has catalog only.
        _job("team-a", "search-index", wave=0, script=script("search"), applications="search"),
    ]


class SubprocessRunner:
    """Runs each container node's command as a local process against the sandbox."""

    def __init__(self, sandbox: Sandbox, workdir: Path) -> None:
        self.workdir = workdir
        self.env = {
            **os.environ,
            "BRIDGE_KUBECONFIG": str(sandbox.kubeconfig_path()),
            "BRIDGE_STUCK_GRACE": "20",
            "POD_NAMESPACE": "tenant-lifecycle",
        }
        self.calls: list[tuple[ContainerCall, subprocess.CompletedProcess[str]]] = []
        self.exit_handler_argv: list[str] = []

    def _host(self, node_dir: Path, path: str) -> str:
        return str(node_dir / Path(path).name) if path.startswith("/tmp/") else path

    def __call__(self, call: ContainerCall) -> ContainerResult:
        if call.argv[:2] == ("tenantctl", "publish-result"):
            self.exit_handler_argv = list(call.argv)
            return ContainerResult(0)
        # Unique per node and attempt; nodes of one wave run concurrently.
        node_dir = self.workdir / f"node-{abs(hash(call.node)):x}-{call.attempt}"
        node_dir.mkdir(parents=True)
        for path, content in call.input_files.items():
            Path(self._host(node_dir, path)).write_text(content)
        argv = [self._host(node_dir, arg) for arg in call.argv]
        assert argv[0] == "python", argv
        argv[0] = sys.executable
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=self.env, timeout=90, check=False
        )
        self.calls.append((call, proc))
        files = {}
        for path in call.output_paths:
            host = Path(self._host(node_dir, path))
            if host.is_file():
                files[path] = host.read_text()
        return ContainerResult(proc.returncode, files)

    def stdout_of(self, job: str) -> str:
        return "".join(
            proc.stdout
            for call, proc in self.calls
            if call.template == "bridge" and f"--job {job} " in " ".join(call.argv) + " "
        )


def _run(
    sandbox: Sandbox, tmp_path: Path, objects: list[dict[str, Any]]
) -> tuple[EmulatedRun, SubprocessRunner]:
    sandbox.apply(objects)
    runner = SubprocessRunner(sandbox, tmp_path)
    params = {
        "operation": OPERATION,
        "tenant-env-id": TENANT,
        "batch-operation-id": "b-contract-1",
        # Tenant text that looks like Argo's template: handed over in base64, decoded as is.
        "environment": f"applications:\n- catalog\nnote: '{ARGO_LOOKALIKE}'\n",
        "changeset": "schemaVersion: 7\n",
    }
    run = Emulator(
        TEMPLATE, parameters=params, runner=runner, workflow_name="lc-b-contract-1"
    ).run()
    return run, runner


def _bridged_pods(sandbox: Sandbox) -> set[str]:
    """namespace/job of every pod ever created in the sandbox (from its change history)."""
    return {
        f"{c.namespace}/{c.obj['metadata']['labels'][f'{PREFIX}/job']}"
        for c in sandbox.store.changes_since(0)
        if c.rkey == "pods" and c.type == "ADDED"
    }


def _results(run: EmulatedRun) -> dict[str, Mapping[str, Any]]:
    return {
        f"{r['namespace']}/{r['job']}": r
        for r in (json.loads(n.outputs["result"]) for n in run.containers("bridge"))
    }


def test_template_commands_run_the_lifecycle_against_the_sandbox(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, runner = _run(sandbox, tmp_path, _example_objects(failing="cache"))

    # Discovery's plan is the output parameter, as Argo would read it from /tmp/plan.json.
    plan = json.loads(run.globals["plan"])
    assert plan["operation"] == OPERATION
    assert plan["tenantEnvId"] == TENANT
    assert [
        (w["wave"], [f"{j['namespace']}/{j['name']}" for j in w["jobs"]]) for w in plan["waves"]
    ] == [
        (-1, ["team-a/schema"]),
        (0, ["team-a/seed", "team-b/cache"]),
        (1, ["team-b/index"]),
    ]
    assert plan["rejected"] == []
    assert [f"{j['namespace']}/{j['name']}" for j in plan["skipped"]] == ["team-a/search-index"]

    # One bridge node per job, in wave order, named namespace/job; the `continue` job's failure
    # (exit 3) did not stop wave 1.
    names = [n.display_name for n in run.containers("bridge")]
    assert names == [
        "abort-on-failure(0:team-a/schema)",
        "abort-on-failure(0:team-a/seed)",
        "continue-on-failure(0:team-b/cache)",
        "abort-on-failure(0:team-b/index)",
    ]
    results = _results(run)
    assert {k: (r["status"], r["exitCode"]) for k, r in results.items()} == {
        "team-a/schema": ("succeeded", 0),
        "team-a/seed": ("succeeded", 0),
        "team-b/cache": ("failed", 3),
        "team-b/index": ("succeeded", 0),
    }
    assert all(r["operation"] == OPERATION and r["tenantEnvId"] == TENANT for r in results.values())
    assert all(r["batchOperationId"] == "b-contract-1" for r in results.values())
    assert run.phase == "Succeeded"
    # Exactly the planned jobs got pods: not the other operation's, not the rogue namespace's.
    assert _bridged_pods(sandbox) == set(results)
    # The bridge streamed the job's own output: env and the mounted environment file.
    out = runner.stdout_of("seed")
    assert "seed for t-799a batch b-contract-1" in out
    assert "catalog" in out
    assert ARGO_LOOKALIKE in out
    # The exit handler's arguments, with the settings ConfigMap's env (envFrom in the template),
    # are accepted by the real CLI.
    from orchestrator.cli import main as tenantctl

    assert runner.exit_handler_argv[:2] == ["tenantctl", "publish-result"]
    config = yaml.safe_load((REPO / "deploy" / "base" / "configmaps.yaml").read_text())
    for key, value in config["data"].items():
        monkeypatch.setenv(key, value)
    tenantctl.commands["publish-result"].make_context(
        "publish-result", runner.exit_handler_argv[2:]
    ).close()


def test_failed_abort_job_stops_later_waves_in_the_sandbox(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # The first wave's only job fails: no later wave starts (the unit tests show that the rest
    # of a failing job's own wave still runs).
    run, _ = _run(sandbox, tmp_path, _example_objects(failing="schema"))
    results = _results(run)
    assert run.phase == "Failed"
    assert {k: (r["status"], r["exitCode"]) for k, r in results.items()} == {
        "team-a/schema": ("failed", 3)
    }
    assert _bridged_pods(sandbox) == {"team-a/schema"}
