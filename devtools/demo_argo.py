"""The guided tour on a real control plane with the real Argo Workflows controller.

``tenantctl cluster demo`` (``make demo-argo``) starts the test bed's control plane with Argo
installed from the pinned release (see ``testbed/``), then hands this module the cluster's
kubeconfig and the ``argo`` CLI. The tour installs the project as docs/install.md says (step 1's
template-only execution, ``deploy/team-example``, one managed namespace per example team),
applies the example teams' Jobs, runs ``tenantctl run lifecycle.upsert --engine argo --wait``
(the product's own submit-and-follow path) and shows ``argo get`` of what ran, ending with the
commands that look further. It only uses the cluster through ``kubectl``, ``argo`` and
``tenantctl``, as a newcomer would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

Echo = Callable[[str], None]
STRICT_PATCH = '{"data":{"workflowRestrictions":"templateReferencing: Strict\\n"}}'


class TourError(RuntimeError):
    """A step of the tour failed; the message names the step and what the command said."""


@dataclass(frozen=True)
class ArgoTour:
    kubeconfig: Path
    argo: Path
    repo: Path
    jobs_dir: Path
    tenant_env_id: str = "acme-prod-7f3a"
    operation: str = "lifecycle.upsert"
    # The tenant's environment: which applications it runs (the Jobs of the others are skipped).
    applications: tuple[str, ...] = ("catalog", "search")
    serving: bool = True
    # The Pub/Sub emulator the exit handler publishes results to (host:port, project).
    bus_host: str | None = None
    bus_project: str = "tenant-lifecycle-demo"
    results_topic: str = "tenant-lifecycle-results"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def _run(self, what: str, command: Sequence[str], *, stdin: str | None = None,
             timeout: float = 300) -> str:  # fmt: skip
        done = subprocess.run(
            list(command), input=stdin, capture_output=True, text=True, timeout=timeout,
            env=self._env(), check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise TourError(f"{what}: `{' '.join(command)}` exited {done.returncode}: "
                            f"{(done.stderr or done.stdout).strip()[-2000:]}")  # fmt: skip
        return done.stdout

    def _kubectl(self, what: str, *args: str, stdin: str | None = None) -> str:
        return self._run(what, ["kubectl", *args], stdin=stdin)

    def team_namespaces(self) -> list[str]:
        names = []
        for path in sorted(self.jobs_dir.glob("*/namespace.yaml")):
            for document in yaml.safe_load_all(path.read_text()):
                if document and document.get("kind") == "Namespace":
                    names.append(str(document["metadata"]["name"]))
        return names

    def install(self, echo: Echo) -> None:
        echo("1. install (docs/install.md): template-only execution on Argo's controller,")
        echo("   then the platform and one managed namespace per example team")
        self._kubectl(
            "step 1", "-n", "argo", "patch", "configmap", "workflow-controller-configmap",
            "--type", "merge", "-p", STRICT_PATCH,
        )  # fmt: skip
        self._kubectl("step 3", "apply", "-k", str(self.repo / "deploy" / "team-example"))
        team = (self.repo / "deploy" / "team-example" / "team.yaml").read_text()
        for namespace in self.team_namespaces():
            self._kubectl(f"team {namespace}", "apply", "-f", "-",
                          stdin=team.replace("team-example", namespace))  # fmt: skip
        self._kubectl("the example Jobs", "apply", "-k", str(self.jobs_dir))
        echo(f"   managed namespaces: {', '.join(self.team_namespaces())}")
        if self.bus_host:
            self._results_on_the_bus(echo)

    def _results_on_the_bus(self, echo: Echo) -> None:
        # Section 6's settings, here pointed at the local Pub/Sub emulator: the template's exit
        # handler publishes each run's result event there.
        from orchestrator.pubsub import emulator_host, ensure_topology  # noqa: PLC0415 - the bus adapter

        with emulator_host(str(self.bus_host)):
            ensure_topology(self.bus_project, topics=[self.results_topic], subscriptions={})
        settings = {
            "TENANTCTL_PROJECT": self.bus_project,
            "TENANTCTL_RESULTS_TOPIC": self.results_topic,
            "PUBSUB_EMULATOR_HOST": str(self.bus_host),
        }
        self._kubectl(
            "the settings", "-n", "tenant-lifecycle", "patch", "configmap",
            "tenant-lifecycle-settings", "--type", "merge", "-p",
            json.dumps({"data": settings}),
        )  # fmt: skip
        echo(f"   results go to topic {self.results_topic} on the Pub/Sub emulator")

    def run(self, echo: Echo) -> int:
        echo(f"2. {self.operation} for tenant {self.tenant_env_id}, submitted by tenantctl to the")
        echo("   reviewed WorkflowTemplate and followed to its end by the real controller")
        batch = f"tour-{uuid.uuid4().hex[:8]}"
        tenantctl = str(Path(sys.executable).with_name("tenantctl"))
        with tempfile.TemporaryDirectory() as scratch:
            environment = Path(scratch) / "environment.yaml"
            environment.write_text(yaml.safe_dump({"applications": list(self.applications)}))
            echo(f"   tenant environment: applications {', '.join(self.applications)}")
            done = subprocess.run(
                [tenantctl, "run", self.operation, "--engine", "argo", "--tenant-env-id",
                 self.tenant_env_id, "--batch-operation-id", batch, "--environment",
                 str(environment), "--wait"],
                env=self._env(), timeout=900, check=False,
            )  # fmt: skip
        workflow = self._kubectl(
            "the workflow", "-n", "tenant-lifecycle", "get", "workflows", "-l",
            f"tenant-lifecycle.dev/batch={batch}", "-o", "jsonpath={.items[0].metadata.name}",
        ).strip()  # fmt: skip
        echo("")
        echo(f"3. what ran, as `argo get {workflow}` shows it:")
        echo(self._run("argo get", [str(self.argo), "-n", "tenant-lifecycle", "get", workflow,
                                    "--no-color"]))  # fmt: skip
        echo("look further" + (" (the cluster stays up until Ctrl-C):" if self.serving else ":"))
        echo(f"  export KUBECONFIG={self.kubeconfig}")
        echo(f"  {self.argo} -n tenant-lifecycle get {workflow}")
        echo(f"  {self.argo} -n tenant-lifecycle logs {workflow}")
        echo(f"  tenantctl status {batch}")
        return done.returncode
