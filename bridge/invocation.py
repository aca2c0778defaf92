"""The bridge's command lines: ``python -m bridge discover|run|sweep ...``.

One module spells them, for every caller: the WorkflowTemplate (``workflows/containers.py``), whose
values are Argo expressions such as ``{{workflow.parameters.operation}}``, and the local engine
(``orchestrator/engine/bridges.py``, ``discovery.py`` and the thread launcher), whose values
are concrete; and the sweeper's CronJob (``workflows/install/platform.py``). Why one place: a
flag renamed or added in ``bridge/cli/`` then changes every engine at once, and the
template's tests and the engine's test the same spelling.

Values are plain strings: this module does not know whether they are expressions or data. An
optional value that is ``None`` is left off the command line; the template passes an
expression even for a parameter that may turn out empty (``--source-batch-operation-id``), the
engine leaves it off.
"""

from __future__ import annotations

from dataclasses import dataclass

# How the bridge is started, after the interpreter (the image's is ``python``).
BRIDGE_MODULE: tuple[str, ...] = ("-m", "bridge")
DEFAULT_PYTHON = "python"


def _flag(name: str, value: str | None) -> list[str]:
    return [] if value is None else [name, value]


@dataclass(frozen=True, kw_only=True)
class DiscoverInvocation:
    """``python -m bridge discover``: which operation, for which tenant, plan written where."""

    operation: str
    tenant_env_id: str
    environment: str | None = None
    # The documents are base64 files (Argo's raw artifacts: see workflows/containers.py).
    inputs_base64: bool = False
    output: str | None = None
    # The caller's connection and contract flags (--kubeconfig, --prefix, --skip-invalid...).
    extra: tuple[str, ...] = ()

    def args(self) -> list[str]:
        args = ["--operation", self.operation, "--tenant-env-id", self.tenant_env_id]
        args += _flag("--environment", self.environment)
        if self.inputs_base64:
            args.append("--inputs-base64")
        args += _flag("--output", self.output)
        return [*args, *self.extra]

    def command(self, *, python: str = DEFAULT_PYTHON) -> list[str]:
        """The command without its arguments (a container's ``command``)."""
        return [python, *BRIDGE_MODULE, "discover"]

    def argv(self, *, python: str = DEFAULT_PYTHON) -> list[str]:
        return [*self.command(python=python), *self.args()]


@dataclass(frozen=True, kw_only=True)
class RunInvocation:
    """``python -m bridge run``: one job of one operation for one tenant, and where its inputs
    and result are."""

    namespace: str
    job: str
    operation: str
    tenant_env_id: str
    batch_operation_id: str
    environment: str | None = None
    changeset: str | None = None
    inputs_base64: bool = False
    workflow_name: str | None = None
    workflow_uid: str | None = None
    source_batch_operation_id: str | None = None
    result: str | None = None
    # The caller's connection and contract flags (--kubeconfig, --context, --prefix...).
    extra: tuple[str, ...] = ()

    def args(self) -> list[str]:
        args = ["--namespace", self.namespace, "--job", self.job]
        args += ["--operation", self.operation, "--tenant-env-id", self.tenant_env_id]
        args += ["--batch-operation-id", self.batch_operation_id]
        args += _flag("--environment", self.environment)
        args += _flag("--changeset", self.changeset)
        if self.inputs_base64:
            args.append("--inputs-base64")
        args += _flag("--workflow-name", self.workflow_name)
        args += _flag("--workflow-uid", self.workflow_uid)
        args += _flag("--source-batch-operation-id", self.source_batch_operation_id)
        args += _flag("--result", self.result)
        return [*args, *self.extra]

    def command(self, *, python: str = DEFAULT_PYTHON) -> list[str]:
        """The command without its arguments (a container's ``command``)."""
        return [python, *BRIDGE_MODULE, "run"]

    def argv(self, *, python: str = DEFAULT_PYTHON) -> list[str]:
        return [*self.command(python=python), *self.args()]


@dataclass(frozen=True, kw_only=True)
class SweepInvocation:
    """``python -m bridge sweep``: delete bridge pods and Secrets older than ``older_than``
    whose Workflow is gone (the sweeper CronJob, ``workflows/install/platform.py``)."""

    older_than: str
    extra: tuple[str, ...] = ()

    def args(self) -> list[str]:
        return ["--older-than", self.older_than, *self.extra]

    def command(self, *, python: str = DEFAULT_PYTHON) -> list[str]:
        """The command without its arguments (a container's ``command``)."""
        return [python, *BRIDGE_MODULE, "sweep"]
