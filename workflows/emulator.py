"""A small, deliberately partial interpreter of the rendered WorkflowTemplate.

No Argo controller runs on the project's machines, so the template's *logic* (which wave runs
after which, which job's failure stops what, what is retried, what each container is told) is
checked by interpreting the rendered manifest with the Argo semantics it relies on:

* ``steps`` templates: groups in order; the steps of a group expanded by ``withParam`` and all
  run; a group fails when a child failed and its step has no ``continueOn``; a failed group
  ends its template (later groups are not started); ``when`` gates a step;
* container templates: inputs (arguments, defaults), raw input artifacts, ``valueFrom.path``
  output parameters with ``default`` and ``globalName``, ``retryStrategy`` with ``limit`` and
  ``expression``;
* ``onExit``, ``workflowMetadata.labelsFrom``, the ``synchronization`` mutex name.

Variables are substituted like Argo does (``{{workflow.parameters.x}}``,
``{{inputs.parameters.x}}``, ``{{item}}``, ``{{workflow.name}}``/``uid``/``namespace``).
Expression tags (``{{=...}}``) are evaluated only when they are one of :data:`EXPRESSIONS`,
the exact expressions the template uses, each implemented here with expr-lang's and Argo's
semantics; anything else raises :class:`EmulationError`, so a changed expression cannot pass
untested. Containers are handed to a caller-supplied runner (a subprocess against the
sandbox, or a fake).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import LifecycleError


class EmulationError(LifecycleError):
    """The manifest uses something this emulator does not implement."""


@dataclass
class Scope:
    """What variables and expressions can see at one point of the run."""

    workflow: Mapping[str, str]  # name, uid, namespace
    parameters: Mapping[str, str]
    globals: dict[str, str]
    inputs: Mapping[str, str] = field(default_factory=dict)
    item: Any = None
    last_exit_code: str | None = None


def _jsonpath(document: str, path: str) -> Any:
    """The subset of JSONPath used: ``$`` then ``.key`` and ``[index]`` segments."""
    value: Any = json.loads(document)
    if not path.startswith("$"):
        raise EmulationError(f"unsupported jsonpath {path!r}")
    for key, index in re.findall(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]", path[1:]):
        value = value[key] if key else value[int(index)]
    return value


def _wave_path(scope: Scope, tail: str) -> Any:
    return _jsonpath(scope.globals["plan"], f"$.waves[{scope.inputs['index']}]{tail}")


def _jobs(scope: Scope, *, continue_: bool) -> list[str]:
    jobs = _wave_path(scope, ".jobs")
    return [
        f"{j['namespace']}/{j['name']}" for j in jobs if (j["onFailure"] == "continue") == continue_
    ]


def _as_int(text: str | None) -> int:
    if text is None:
        raise EmulationError("asInt of an unset value")
    return int(text)


def _b64enc(text: str) -> str:
    # sprig's b64enc: Go's base64.StdEncoding (padded, + and /) of the string's UTF-8 bytes.
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


_PLAN = "workflow.outputs.parameters.plan"
_WAVE = f"jsonpath({_PLAN}, '$.waves[' + inputs.parameters.index + ']"
_DISPLAY = "{#.namespace + '/' + #.name}"

# Exact expression text -> implementation. Keep in step with workflows/template.py on purpose:
# an expression is added here only together with a test that exercises it.
EXPRESSIONS: Mapping[str, Callable[[Scope], Any]] = {
    f"len(jsonpath({_PLAN}, '$.waves')) > 0": lambda s: (
        len(_jsonpath(s.globals["plan"], "$.waves")) > 0
    ),
    f"{_WAVE}.wave')": lambda s: _wave_path(s, ".wave"),
    f"toJson(map(filter({_WAVE}.jobs'), {{#.onFailure != 'continue'}}), {_DISPLAY}))": lambda s: (
        json.dumps(_jobs(s, continue_=False), separators=(",", ":"))
    ),
    f"toJson(map(filter({_WAVE}.jobs'), {{#.onFailure == 'continue'}}), {_DISPLAY}))": lambda s: (
        json.dumps(_jobs(s, continue_=True), separators=(",", ":"))
    ),
    "asInt(inputs.parameters.index) + 1": lambda s: _as_int(s.inputs["index"]) + 1,
    f"asInt(inputs.parameters.index) + 1 < len(jsonpath({_PLAN}, '$.waves'))": lambda s: (
        _as_int(s.inputs["index"]) + 1 < len(_jsonpath(s.globals["plan"], "$.waves"))
    ),
    "split(inputs.parameters.job, '/')[0]": lambda s: s.inputs["job"].split("/")[0],
    "split(inputs.parameters.job, '/')[1]": lambda s: s.inputs["job"].split("/")[1],
    "asInt(lastRetry.exitCode) == 75": lambda s: _as_int(s.last_exit_code) == 75,
    "workflow.parameters['tenant-env-id']": lambda s: s.parameters["tenant-env-id"],
    "workflow.parameters['operation']": lambda s: s.parameters["operation"],
    "workflow.parameters['batch-operation-id']": lambda s: s.parameters["batch-operation-id"],
    # Tenant data reaches the containers base64-encoded (never parsed again as Argo template).
    "sprig.b64enc(workflow.parameters['environment'])": lambda s: _b64enc(
        s.parameters["environment"]
    ),
    "sprig.b64enc(workflow.parameters['changeset'])": lambda s: _b64enc(s.parameters["changeset"]),
}


_LEVEL = re.compile(
    re.escape(f"len(jsonpath({_PLAN}, '$.waves')) > 0")
    + r"(?: && asInt\(workflow\.parameters\.parallelism\) >= (?P<low>\d+))?"
    + r"(?: && asInt\(workflow\.parameters\.parallelism\) < (?P<high>\d+))?"
)


def _level(match: re.Match[str], scope: Scope) -> bool:
    if not _jsonpath(scope.globals["plan"], "$.waves"):
        return False
    requested = _as_int(scope.parameters["parallelism"])
    low, high = match.group("low"), match.group("high")
    return (low is None or requested >= int(low)) and (high is None or requested < int(high))


# Families of expressions that differ only in numbers (one per parallelism level).
PATTERNS: Sequence[tuple[re.Pattern[str], Callable[[re.Match[str], Scope], Any]]] = (
    (_LEVEL, _level),
)


def _render(value: Any) -> str:
    # Argo JSON-encodes an expression's result and drops a string's quotes.
    if isinstance(value, str):
        return value
    return json.dumps(value)


def evaluate(expression: str, scope: Scope) -> Any:
    """Evaluate one of :data:`EXPRESSIONS` (the text between ``{{=`` and ``}}``)."""
    text = expression.strip()
    implementation = EXPRESSIONS.get(text)
    if implementation is not None:
        return implementation(scope)
    for pattern, family in PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            return family(match, scope)
    raise EmulationError(
        f"expression not implemented by the emulator: {expression!r}",
        hint="add it to workflows.emulator.EXPRESSIONS with a test",
    )


_TAG = re.compile(r"\{\{(=?)(.*?)\}\}(?!\})", re.DOTALL)


def _simple(name: str, scope: Scope) -> str:
    name = name.strip()
    if name == "item":
        return _render(scope.item)
    for prefix, table in (
        ("workflow.parameters.", scope.parameters),
        ("inputs.parameters.", scope.inputs),
        ("workflow.outputs.parameters.", scope.globals),
    ):
        if name.startswith(prefix):
            key = name[len(prefix) :]
            if key not in table:
                raise EmulationError(f"{{{{{name}}}}}: no such parameter in scope")
            return table[key]
    if name.startswith("workflow.") and name[len("workflow.") :] in scope.workflow:
        return scope.workflow[name[len("workflow.") :]]
    raise EmulationError(f"variable not implemented by the emulator: {{{{{name}}}}}")


def substitute(text: str, scope: Scope) -> str:
    """Replace every ``{{...}}`` and ``{{=...}}`` tag in ``text``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return _render(evaluate(match.group(2), scope))
        return _simple(match.group(2), scope)

    return _TAG.sub(replace, text)


@dataclass(frozen=True)
class ContainerCall:
    """One container node for the runner: what Argo would start."""

    node: str  # e.g. "lc-b1.waves.wave.abort-on-failure(0:team-a/schema)"
    template: str
    service_account: str
    argv: tuple[str, ...]
    input_files: Mapping[str, str]  # container path -> content (raw artifacts)
    output_paths: Sequence[str]  # container paths the outputs are read from
    attempt: int


@dataclass(frozen=True)
class ContainerResult:
    """What the runner reports: the exit code and the output files it found."""

    exit_code: int
    files: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Node:
    """One node of the emulated run, like an entry of a Workflow's ``status.nodes``."""

    name: str
    template: str
    phase: str  # Succeeded | Failed | Skipped
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    attempts: int = 0

    @property
    def display_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


@dataclass
class EmulatedRun:
    """The outcome: phase, nodes in start order, labels and the mutex the run would hold."""

    phase: str
    nodes: list[Node]
    labels: dict[str, str]
    mutex: str
    globals: dict[str, str]

    def containers(self, template: str) -> list[Node]:
        return [n for n in self.nodes if n.template == template and n.exit_code is not None]


Runner = Callable[[ContainerCall], ContainerResult]


class Emulator:
    """Run a rendered WorkflowTemplate's entrypoint and exit handler with ``runner``."""

    def __init__(
        self,
        manifest: Mapping[str, Any],
        *,
        parameters: Mapping[str, str],
        runner: Runner,
        workflow_name: str = "lc-emulated",
        workflow_uid: str = "00000000-0000-0000-0000-000000000000",
        max_workers: int = 1,
    ) -> None:
        self._spec = manifest["spec"]
        self._templates = {t["name"]: t for t in self._spec["templates"]}
        declared = {p["name"]: p.get("value") for p in self._spec["arguments"]["parameters"]}
        unknown = set(parameters) - set(declared)
        if unknown:
            raise EmulationError(f"parameters not declared by the template: {sorted(unknown)}")
        merged = {**declared, **parameters}
        missing = [k for k, v in merged.items() if v is None]
        if missing:
            raise EmulationError(f"parameters without a value: {missing}")
        self._workflow = {
            "name": workflow_name,
            "uid": workflow_uid,
            "namespace": manifest["metadata"].get("namespace", "default"),
        }
        self._parameters: dict[str, str] = {k: str(v) for k, v in merged.items()}
        self._globals: dict[str, str] = {}
        self._runner = runner
        self._max_workers = max(1, max_workers)
        self._nodes: list[Node] = []

    def _scope(self, inputs: Mapping[str, str] | None = None, item: Any = None) -> Scope:
        return Scope(self._workflow, self._parameters, self._globals, dict(inputs or {}), item)

    def run(self) -> EmulatedRun:
        name = self._workflow["name"]
        ok = self._run_template(self._spec["entrypoint"], {}, name, self._nodes)
        phase = "Succeeded" if ok else "Failed"
        self._workflow = {**self._workflow, "status": phase}
        if "onExit" in self._spec:
            self._run_template(self._spec["onExit"], {}, f"{name}.onExit", self._nodes)
        scope = self._scope()
        labels = {
            key: str(evaluate(value["expression"], scope))
            for key, value in self._spec.get("workflowMetadata", {}).get("labelsFrom", {}).items()
        }
        mutexes = self._spec.get("synchronization", {}).get("mutexes", [])
        mutex = substitute(mutexes[0]["name"], scope) if mutexes else ""
        return EmulatedRun(phase, self._nodes, labels, mutex, dict(self._globals))

    def _inputs(self, template: Mapping[str, Any], arguments: Mapping[str, str]) -> dict[str, str]:
        values: dict[str, str] = {}
        declared = template.get("inputs", {}).get("parameters", [])
        for param in declared:
            if param["name"] in arguments:
                values[param["name"]] = arguments[param["name"]]
            elif "value" in param or "default" in param:
                values[param["name"]] = str(param.get("value", param.get("default")))
            else:
                raise EmulationError(f"template {template['name']}: input {param['name']} unset")
        extra = set(arguments) - {p["name"] for p in declared}
        if extra:
            raise EmulationError(f"template {template['name']}: undeclared inputs {sorted(extra)}")
        return values

    def _run_template(
        self, name: str, arguments: Mapping[str, str], node_name: str, sink: list[Node]
    ) -> bool:
        template = self._templates.get(name)
        if template is None:
            raise EmulationError(f"no template named {name!r}")
        inputs = self._inputs(template, arguments)
        if "steps" in template:
            return self._run_steps(template, inputs, node_name, sink)
        if "container" in template:
            return self._run_container(template, inputs, node_name, sink)
        raise EmulationError(f"template {name}: only steps and container templates are emulated")

    def _run_steps(
        self, template: Mapping[str, Any], inputs: dict[str, str], node: str, sink: list[Node]
    ) -> bool:
        record = Node(node, template["name"], "Running", inputs=inputs)
        sink.append(record)
        for group in template["steps"]:
            # (template, arguments, node name, continueOn) of every child of the group
            tasks: list[tuple[str, dict[str, str], str, Mapping[str, Any]]] = []
            for step in group:
                scope = self._scope(inputs)
                if "when" in step:
                    decision = substitute(step["when"], scope).strip()
                    if decision not in ("true", "false"):
                        raise EmulationError(f"step {step['name']}: when gave {decision!r}")
                    if decision == "false":
                        sink.append(Node(f"{node}.{step['name']}", step["template"], "Skipped"))
                        continue
                items: list[tuple[str, Any]] = [(step["name"], None)]
                if "withParam" in step:
                    values = json.loads(substitute(step["withParam"], scope))
                    items = [(f"{step['name']}({i}:{_render(v)})", v) for i, v in enumerate(values)]
                    if not values:
                        sink.append(Node(f"{node}.{step['name']}", step["template"], "Skipped"))
                for child_name, item in items:
                    item_scope = self._scope(inputs, item)
                    args = {
                        p["name"]: substitute(str(p["value"]), item_scope)
                        for p in step.get("arguments", {}).get("parameters", [])
                    }
                    tasks.append(
                        (step["template"], args, f"{node}.{child_name}", step.get("continueOn", {}))
                    )
            outcomes = self._execute(tasks, parallelism=template.get("parallelism"), sink=sink)
            if any(
                not ok and not task[3].get("failed")
                for ok, task in zip(outcomes, tasks, strict=True)
            ):
                record.phase = "Failed"
                return False
        record.phase = "Succeeded"
        return True

    def _execute(
        self,
        tasks: Sequence[tuple[str, dict[str, str], str, Mapping[str, Any]]],
        *,
        parallelism: int | None,
        sink: list[Node],
    ) -> list[bool]:
        """Run a step group's children, concurrently up to ``parallelism`` when allowed.

        Each child records its nodes in its own list, appended in child order afterwards, so
        the node list is the same whether the children ran one by one or together.
        """
        sinks: list[list[Node]] = [[] for _ in tasks]
        workers = min(self._max_workers, parallelism or len(tasks), len(tasks))
        if workers <= 1:
            outcomes = [
                self._run_template(t, args, name, child)
                for (t, args, name, _), child in zip(tasks, sinks, strict=True)
            ]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [
                    pool.submit(self._run_template, t, args, name, child)
                    for (t, args, name, _), child in zip(tasks, sinks, strict=True)
                ]
                outcomes = [future.result() for future in futures]
        for child in sinks:
            sink.extend(child)
        return outcomes

    def _run_container(
        self, template: Mapping[str, Any], inputs: dict[str, str], node: str, sink: list[Node]
    ) -> bool:
        scope = self._scope(inputs)
        container = template["container"]
        argv = tuple(substitute(a, scope) for a in [*container["command"], *container["args"]])
        files = {
            a["path"]: substitute(a["raw"]["data"], scope)
            for a in template.get("inputs", {}).get("artifacts", [])
        }
        outputs = template.get("outputs", {}).get("parameters", [])
        retry = template.get("retryStrategy", {})
        limit = int(retry.get("limit", 0))
        attempt = 0
        while True:
            attempt += 1
            call = ContainerCall(
                node=node,
                template=template["name"],
                service_account=template.get(
                    "serviceAccountName", self._spec.get("serviceAccountName", "default")
                ),
                argv=argv,
                input_files=files,
                output_paths=[p["valueFrom"]["path"] for p in outputs],
                attempt=attempt,
            )
            result = self._runner(call)
            if result.exit_code == 0 or attempt > limit:
                break
            if "expression" in retry:
                retry_scope = self._scope(inputs)
                retry_scope.last_exit_code = str(result.exit_code)
                if not evaluate(retry["expression"], retry_scope):
                    break
        values: dict[str, str] = {}
        for param in outputs:
            path = param["valueFrom"]["path"]
            if path in result.files:
                values[param["name"]] = result.files[path]
            elif "default" in param["valueFrom"]:
                values[param["name"]] = substitute(param["valueFrom"]["default"], scope)
            else:
                raise EmulationError(f"{node}: output {param['name']} missing at {path}")
            if "globalName" in param:
                self._globals[param["globalName"]] = values[param["name"]]
        phase = "Succeeded" if result.exit_code == 0 else "Failed"
        sink.append(Node(node, template["name"], phase, inputs, values, result.exit_code, attempt))
        return result.exit_code == 0
