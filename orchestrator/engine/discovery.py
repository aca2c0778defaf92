"""The real plan sources: ``python -m bridge discover`` as a subprocess, or the same function
in-process (:class:`LibraryDiscovery`, the default of :func:`orchestrator.engine.local_engine`).

Both give the plan Argo's ``discover`` step gives (the plan JSON, as :class:`EnginePlan`), and
discovery's errors as :class:`~bridge.errors.ContractError` (invalid Jobs) or
:class:`~bridge.errors.LifecycleError` (anything else), with discovery's own hint.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.errors import ContractError, LifecycleError
from bridge.invocation import DiscoverInvocation

from .bridges import BridgeSettings, write_private
from .plan import EnginePlan

_STDERR_TAIL = 20


class SubprocessDiscovery:
    """:class:`PlanSource` running ``python -m bridge discover`` (the step Argo runs first)."""

    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings

    def command(
        self, *, operation: str, tenant_env_id: str, environment: Path, output: Path
    ) -> list[str]:
        s = self.settings
        invocation = DiscoverInvocation(
            operation=operation,
            tenant_env_id=tenant_env_id,
            environment=str(environment),
            output=str(output),
            extra=(*s.connection_args(), *s.contract_args(), *s.discovery_args()),
        )
        return invocation.argv(python=s.python)

    def discover(
        self, *, operation: str, tenant_env_id: str, environment: Mapping[str, Any]
    ) -> EnginePlan:
        with tempfile.TemporaryDirectory(prefix="tenantctl-discover-") as tmp:
            directory = Path(tmp)
            env_file = write_private(directory, "environment.yaml", environment)
            output = directory / "plan.json"
            argv = self.command(
                operation=operation,
                tenant_env_id=tenant_env_id,
                environment=env_file,
                output=output,
            )
            try:
                done = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    env=self.settings.process_env(),
                    timeout=self.settings.discovery_timeout_seconds,
                    check=False,
                    # Ctrl-C reaches tenantctl only: a run cancelled during discovery still
                    # gets its plan, then starts no bridge.
                    start_new_session=True,
                )
            except subprocess.TimeoutExpired as exc:
                raise LifecycleError(
                    f"discovery for {operation} did not finish in "
                    f"{self.settings.discovery_timeout_seconds:.0f}s",
                    hint="check that the Kubernetes API server is reachable (--kubeconfig)",
                ) from exc
            if done.returncode != 0:
                raise _discovery_error(operation, done.returncode, done.stderr)
            try:
                text = output.read_text(encoding="utf-8") if output.exists() else done.stdout
                data = json.loads(text)
            except (OSError, ValueError) as exc:
                raise ContractError(
                    f"discovery for {operation} wrote no readable plan: {exc}",
                    hint="run `python -m bridge discover` by hand to see its output",
                ) from exc
        return EnginePlan.from_json(data)


class LibraryDiscovery:
    """:class:`PlanSource` calling the function ``python -m bridge discover`` runs, in-process.

    The same code, settings and plan JSON as the subprocess (the plan goes through
    :meth:`Plan.to_json` exactly as Argo receives it), without a Python start-up per operation.
    """

    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings

    def discover(
        self, *, operation: str, tenant_env_id: str, environment: Mapping[str, Any]
    ) -> EnginePlan:
        from bridge.contract import DEFAULT_PREFIX, ContractSettings  # noqa: PLC0415
        from bridge.discovery import discover  # noqa: PLC0415 - kubernetes is heavy
        from bridge.kube import Kube, KubeSettings  # noqa: PLC0415

        s = self.settings
        contract = ContractSettings(prefix=s.prefix or DEFAULT_PREFIX, legacy_key=s.legacy_key)
        with Kube(settings=KubeSettings(kubeconfig=s.kubeconfig, context=s.context)) as kube:
            found = discover(
                kube,
                operation=operation,
                settings=contract,
                environment=environment,
                tenant_env_id=tenant_env_id,
                skip_invalid=s.skip_invalid,
            )
        return EnginePlan.from_json(found.plan.to_json())


def _discovery_error(operation: str, code: int, stderr: str) -> LifecycleError:
    """One error from discovery's stderr: its ``error:`` lines, its ``hint:`` line if any."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    # "error: <message>" may continue on indented lines (discovery lists every invalid Job).
    errors: list[str] = []
    hints: list[str] = []
    in_error = False
    for line in lines:
        if line.startswith("error: "):
            errors.append(line.removeprefix("error: "))
            in_error = True
        elif line.startswith("hint: "):
            hints.append(line.removeprefix("hint: "))
            in_error = False
        elif in_error and line.startswith(" "):
            errors.append(line)
        else:
            in_error = False
    tail = "; ".join(line.strip() for line in lines[-_STDERR_TAIL:])
    detail = "\n".join(errors) or tail or f"exit code {code}"
    if code == 1 and errors:
        # The contract: a Job taking part in the operation is invalid or not suspended.
        return ContractError(
            f"discovery for {operation} failed: {detail}",
            hint=hints[0] if hints else "fix the Jobs it names, or pass --skip-invalid",
        )
    return LifecycleError(
        f"discovery for {operation} failed (exit {code}): {detail}",
        hint=hints[0] if hints else "check the Kubernetes connection (--kubeconfig)",
    )
