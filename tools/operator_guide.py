"""Generate docs/operator-guide.md around real output, captured from one real run.

``python -m tools.operator_guide --out docs/operator-guide.md`` starts the test bed's control
plane with the pinned Argo Workflows (controller and argo-server as pods, as ``tenantctl
cluster up --argo`` does) and the Pub/Sub emulator for the results, installs the project as
docs/install.md says, applies the :class:`Scenario`'s Jobs (three teams; one job fails) and runs
the lifecycle through ``tenantctl run --engine argo --wait``. It then runs what the guide tells a
newcomer to run -- ``tenantctl status``, the ``argo logs`` command that status prints for the
failed job, ``argo get``, ``argo list`` -- and renders ``tools/operator-guide.in.md`` with
their real output in place of its ``{{capture:NAME}}`` lines. The first run builds the pinned
programs (minutes); later runs take about two minutes.

``tests/e2e/argo/test_operator_guide.py`` holds the committed guide to this: it runs the same
scenario (under its own names) on the test tier's cluster and compares the two documents after
:func:`normalize` has replaced what varies from run to run (timestamps, durations, Argo's
node and pod hashes, the scenario's names). This module lives outside ``orchestrator/`` because
it starts the test bed (docs/architecture.md, rule 4).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.jobs import job

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "operator-guide.md"
TEMPLATE = Path(__file__).with_name("operator-guide.in.md")
REGENERATE = "python -m tools.operator_guide --out docs/operator-guide.md"
HEADER = (
    f"<!-- generated — do not edit; regenerate with: {REGENERATE} "
    f"(the text is {TEMPLATE.relative_to(REPO)}, the output comes from a real run) -->"
)
NAMESPACE = "tenant-lifecycle"
TEMPLATE_NAME = "tenant-lifecycle"
UI_URL = "https://argo.example.com"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TREE = re.compile(r"^[\s│├└─┬]+")  # argo get's tree drawing before a node's status icon
_CAPTURE = re.compile(r"^\{\{capture:([a-z-]+)\}\}$", re.MULTILINE)

Echo = Callable[[str], None]


class GuideError(RuntimeError):
    """A step of the capture failed; the message names the command and what it said."""


# --------------------------------------------------------------------------------------------
# the scenario: what runs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One lifecycle over three teams: wave -1 succeeds, wave 0 has a job that fails every
    attempt (``abort``) beside one that succeeds, so wave 1 never starts."""

    operation: str = "lifecycle.upsert"
    tenant: str = "t-42"
    batch: str = "b-20261126-0312"
    catalog: str = "team-catalog"
    search: str = "team-search"
    billing: str = "team-billing"

    @property
    def workflow(self) -> str:
        from orchestrator.naming import workflow_name  # noqa: PLC0415

        return workflow_name(self.batch)

    def names(self) -> dict[str, str]:
        """What differs between two scenarios: field -> value (the workflow's name too)."""
        values = {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {**values, "workflow": self.workflow}

    def teams(self) -> list[str]:
        return [self.catalog, self.search, self.billing]

    def jobs(self) -> list[dict[str, Any]]:
        op = self.operation
        return [
            job(self.catalog, "catalog-schema", operation=op, wave=-1, script=(
                'echo "applying migration 007 for tenant $LIFECYCLE_TENANT_ENV_ID"; '
                'echo "schema at version 7"')),
            # Everything on stdout: the order of lines from two streams is not kept.
            job(self.search, "search-index", operation=op, wave=0, backoff_limit=1, script=(
                'echo "reindexing products for tenant $LIFECYCLE_TENANT_ENV_ID"; '
                'echo "error: mapping conflict on field price (long vs text)"; exit 3')),
            job(self.billing, "billing-notify", operation=op, wave=0, on_failure="continue",
                script='echo "billing notified of the new plan"'),
            job(self.catalog, "catalog-warm", operation=op, wave=1, script='echo "cache warmed"'),
        ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# running it and capturing what an operator sees
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    """One command as the guide shows it (``shown``) and what it printed."""

    shown: str
    output: str


@dataclass(frozen=True)
class Cluster:
    """A cluster with Argo and the project installed: its kubeconfig and the ``argo`` CLI."""

    kubeconfig: Path
    argo: Path

    def env(self) -> dict[str, str]:
        # An operator's setting: the Argo UI's URL, so tenantctl prints its links.
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "TENANTCTL_ARGO_UI_URL": UI_URL}

    def run(self, argv: Sequence[str], *, stdin: str | None = None, timeout: float = 120,
            ok: Sequence[int] = (0,)) -> str:  # fmt: skip
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=timeout,
            env=self.env(), check=False,
        )  # fmt: skip
        if done.returncode not in ok:
            raise GuideError(f"`{shlex.join(argv)}` exited {done.returncode}: "
                             f"{(done.stderr or done.stdout).strip()[-3000:]}")  # fmt: skip
        return done.stdout

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.run(["kubectl", *args], stdin=stdin)

    def apply(self, documents: Sequence[Mapping[str, Any]]) -> None:
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(list(documents)))

    def shown(self, command: str, *, ok: Sequence[int] = (0,), timeout: float = 120) -> Capture:
        """Run a command as printed for an operator (``argo …``, ``tenantctl …``)."""
        argv = shlex.split(command)
        program = {"argo": str(self.argo), "tenantctl": _tenantctl()}.get(argv[0], argv[0])
        output = self.run([program, *argv[1:]], ok=ok, timeout=timeout)
        # The argo CLI colours its output on any stream: keep what a terminal shows.
        return Capture(command, _ANSI.sub("", output))


def _tenantctl() -> str:
    return str(Path(sys.executable).with_name("tenantctl"))


def add_teams(cluster: Cluster, scenario: Scenario) -> None:
    """docs/install.md step 3 for each team: deploy/team-example/team.yaml, renamed."""
    team = (REPO / "deploy" / "team-example" / "team.yaml").read_text()
    for namespace in scenario.teams():
        cluster.kubectl("apply", "-f", "-", stdin=team.replace("team-example", namespace))


def run_scenario(cluster: Cluster, scenario: Scenario, *, echo: Echo = print) -> dict[str, Capture]:
    """Run the scenario's lifecycle and capture the outputs the guide shows, by name."""
    add_teams(cluster, scenario)
    cluster.apply(scenario.jobs())
    echo(f"running {scenario.operation} for tenant {scenario.tenant} (batch {scenario.batch})")
    # Submitted as tenantctl listen submits a request (tenantctl run --engine argo is that path).
    captures = {
        "submit": cluster.shown(
            f"tenantctl run {scenario.operation} --engine argo --tenant-env-id "
            f"{scenario.tenant} --batch-operation-id {scenario.batch}"
        ),
    }
    _wait_published(cluster, scenario.workflow)
    status = cluster.shown(f"tenantctl status {scenario.batch}")
    captures["status"] = status
    # The guide's second command is the one status printed for the failed job.
    (logs,) = [line.split(":", 1)[1].strip() for line in status.output.splitlines()
               if line.startswith("its log:")]  # fmt: skip
    captures["logs"] = cluster.shown(logs)
    captures["get"] = cluster.shown(f"argo -n {NAMESPACE} get {scenario.workflow}")
    captures["list"] = cluster.shown(
        f"argo -n {NAMESPACE} list -l tenant-lifecycle.dev/tenant={scenario.tenant}"
    )
    captures["status-json"] = _status_json(cluster, scenario)
    return captures


def _status_json(cluster: Cluster, scenario: Scenario) -> Capture:
    """``tenantctl status -o json``'s ``argo`` document (where to look next), as jq shows it."""
    doc = json.loads(cluster.run([_tenantctl(), "status", scenario.batch, "-o", "json"]))
    return Capture(f"tenantctl status {scenario.batch} -o json | jq .argo",
                   json.dumps(doc["argo"], indent=2) + "\n")  # fmt: skip


def _wait_published(cluster: Cluster, workflow: str, timeout: float = 300) -> None:
    """Until the Workflow has finished and its exit handler marked the result published."""
    deadline = time.monotonic() + timeout
    jsonpath = (
        "{.status.phase} {.status.finishedAt} "
        "{.metadata.annotations.tenant-lifecycle\\.dev/result-published}"
    )
    while True:
        state = cluster.kubectl("-n", NAMESPACE, "get", "workflow", workflow, "-o",
                                f"jsonpath={jsonpath}").split()  # fmt: skip
        if len(state) == 3 and state[0] in ("Succeeded", "Failed", "Error"):
            return
        if time.monotonic() > deadline:
            raise GuideError(f"workflow {workflow} not finished and published after "
                             f"{timeout:.0f} s: {state}")  # fmt: skip
        time.sleep(1)


# --------------------------------------------------------------------------------------------
# the document
# --------------------------------------------------------------------------------------------


def render(captures: Mapping[str, Capture], *, template: str | None = None) -> str:
    """The guide: the template with each ``{{capture:NAME}}`` line replaced by the command
    and its output in a fenced block."""
    text = TEMPLATE.read_text() if template is None else template

    def block(match: re.Match[str]) -> str:
        capture = captures[match.group(1)]
        output = capture.output.rstrip("\n")
        return f"```console\n$ {capture.shown}\n{output}\n```"

    return f"{HEADER}\n\n{_CAPTURE.sub(block, text)}"


def capture_names(template: str | None = None) -> list[str]:
    return _CAPTURE.findall(TEMPLATE.read_text() if template is None else template)


def parse(guide: str, *, template: str | None = None) -> dict[str, Capture] | None:
    """The captures of a rendered guide, or ``None`` when its text is not the template's (the
    guide was edited by hand, or the template changed without regenerating)."""
    text = TEMPLATE.read_text() if template is None else template
    parts = _CAPTURE.split(text)  # text, name, text, name, ..., text
    names = parts[1::2]
    pattern = "".join(
        re.escape(part) if index % 2 == 0 else r"```console\n\$ ([^\n]*)\n(.*?)\n```"
        for index, part in enumerate(parts)
    )
    found = re.fullmatch(re.escape(f"{HEADER}\n\n") + pattern, guide, re.DOTALL)
    if found is None:
        return None
    groups = found.groups()
    return {name: Capture(groups[2 * i], groups[2 * i + 1] + "\n") for i, name in enumerate(names)}


def captured(guide: str, *, template: str | None = None) -> dict[str, Capture]:
    """The captured blocks of a guide in order, whatever its text around them: what
    ``--text-only`` re-renders the edited template with."""
    names = capture_names(template)
    blocks = re.findall(r"^```console\n\$ ([^\n]*)\n(.*?)\n```$", guide, re.DOTALL | re.MULTILINE)
    if len(blocks) != len(names):
        raise GuideError(
            f"the guide has {len(blocks)} captured blocks, the template {len(names)} places "
            "for them: regenerate it from a real run"
        )
    pairs = zip(names, blocks, strict=True)
    return {name: Capture(shown, output + "\n") for name, (shown, output) in pairs}


# What varies between two runs of the same scenario, and what it becomes.
_VARIES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r) for p, r in [
        # RFC 3339 times (status, results) and argo's "Mon Jan 02 15:04:05 -0700" dates.
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", "<time>"),
        (r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d [+-]\d{4}", "<date>"),
        (r"\([^()]*\bago\)|\(now\)|\(just now\)", "(<ago>)"),
        # Durations: "1 minute 3 seconds", "23s", "1m", "4.5s", status's SECONDS column.
        (r"\b\d+ (hours?|minutes?|seconds?)( \d+ (minutes?|seconds?))*\b", "<duration>"),
        (r"\b\d+(\.\d+)?(h|m|s|ms)(\d+(\.\d+)?(m|s))?\b", "<d>"),
        (r"\b\d+\.\d+\b", "<s>"),
        # Resource usage: "12s*(1 cpu),1m*(100Mi memory)".
        (r"(ResourcesDuration:\s+).*", r"\1<usage>"),
        # The bridge's pods end in a hash of the batch and job and the attempt; Argo's node ids
        # and pod names in a 32- or 64-bit FNV hash.
        (r"-[0-9a-f]{10}(-\d+)\b", r"-<hash>\1"),
        (r"-\d{5,20}\b", "-<hash>"),
        # Argo's executor logs its own steps with their times, in an order that varies.
        (r"(?m)^.*\bargo=true\b.*\n?", ""),
        # Column alignment follows the longest cell.
        (r"[ \t]+", " "),
    ]
]  # fmt: skip


def normalize(text: str, names: Mapping[str, str] | None = None,
              canonical: Mapping[str, str] | None = None) -> str:  # fmt: skip
    """``text`` with what varies between runs replaced: ``names`` (a scenario's values) become
    ``canonical``'s, then timestamps, durations, hashes and column padding become
    placeholders; trailing space and blank-line runs go, and ``argo get``'s node tree is
    sorted."""
    if names and canonical:
        for key in sorted(names, key=lambda k: -len(names[k])):
            text = text.replace(names[key], canonical[key])
    for pattern, replacement in _VARIES:
        text = pattern.sub(replacement, text)
    lines = [line.rstrip() for line in text.splitlines()]
    # argo get orders sibling nodes by start time (a second's resolution), so two jobs of a wave
    # swap places from run to run: its tree is compared as the set of its node lines.
    steps = [i for i, line in enumerate(lines) if line.startswith("STEP ")]
    if steps:
        at = steps[0] + 1
        tree = sorted(_TREE.sub("", line) for line in lines[at:] if line.strip())
        lines = lines[:at] + tree
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


# --------------------------------------------------------------------------------------------
# the one command
# --------------------------------------------------------------------------------------------


def install(cluster: Cluster, *, project: str, results_topic: str, emulator_host: str) -> None:
    """docs/install.md on a cluster with Argo: step 1's Strict patch, deploy/team-example (the
    platform), and the settings pointed at the Pub/Sub emulator's results topic."""
    cluster.kubectl(
        "-n", "argo", "patch", "configmap", "workflow-controller-configmap", "--type", "merge",
        "-p", '{"data":{"workflowRestrictions":"templateReferencing: Strict\\n"}}',
    )  # fmt: skip
    cluster.kubectl("apply", "-k", str(REPO / "deploy" / "team-example"))
    settings = {"TENANTCTL_PROJECT": project, "TENANTCTL_RESULTS_TOPIC": results_topic,
                "PUBSUB_EMULATOR_HOST": emulator_host}  # fmt: skip
    cluster.kubectl("-n", NAMESPACE, "patch", "configmap", "tenant-lifecycle-settings",
                    "--type", "merge", "-p", json.dumps({"data": settings}))  # fmt: skip


def generate(out: Path, *, echo: Echo = print) -> None:
    """Start everything, capture, write ``out``; every process is stopped afterwards."""
    from orchestrator.pubsub import emulator_host, ensure_topology  # noqa: PLC0415
    from sandbox import emulators  # noqa: PLC0415
    from testbed import ControlPlane  # noqa: PLC0415
    from testbed import argo as pinned_argo  # noqa: PLC0415

    binaries = pinned_argo.ensure_binaries(progress=echo)
    plane = ControlPlane(image_map=pinned_argo.image_map(binaries), progress=echo)
    with emulators.PubSubEmulator(project="tenant-lifecycle-guide") as emulator, plane:
        for path in pinned_argo.crd_files():
            plane.kubectl("apply", "--server-side", "-f", str(path), timeout=120)
        pinned_argo.install(plane, progress=echo)
        with emulator_host(emulator.host):
            ensure_topology(emulator.project, topics=["tenant-lifecycle-results"], subscriptions={})
        cluster = Cluster(plane.kubeconfig, binaries / "argo")
        install(cluster, project=emulator.project, results_topic="tenant-lifecycle-results",
                emulator_host=emulator.host)  # fmt: skip
        captures = run_scenario(cluster, Scenario(), echo=echo)
    out.write_text(render(captures))
    echo(f"wrote {out}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.operator_guide",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--out", type=Path, default=GUIDE, help="where to write the guide")
    parser.add_argument(
        "--text-only",
        action="store_true",
        help="no cluster: re-render the edited template around the outputs already captured in "
        "--out (a change of text only; any change of what the commands print needs a real run)",
    )
    args = parser.parse_args(argv)
    try:
        if args.text_only:
            args.out.write_text(render(captured(args.out.read_text())))
            return 0
        generate(args.out)
    except GuideError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
