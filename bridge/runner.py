"""The bridge: run a team's suspended Job as a pod in its namespace, stream its logs, return its
exit code -- safely, thousands of times a day.

One :class:`Runner` runs one Job for one batch operation:

1. **Re-check** everything it is told (namespace opted in, Job exists, satisfies the contract,
   is suspended and annotated for the operation). Any doubt: ``refused``, exit 2, nothing created.
2. **Find its pods** (labels batch + job): a bridge restarted by Argo resumes the latest attempt
   -- it attaches to a running pod, or reads a finished pod's logs and outcome -- instead of
   running the job twice.
3. **Per attempt**: the pod (deterministic name), then the per-run Secret, created with the
   pod as its owner (garbage-collected with it). Why this order: the bridge may create, delete
   but never patch or read Secrets (a PATCH answers with the whole object); the kubelet keeps
   the pod in ContainerCreating until the Secret it mounts exists. A crash between the two
   leaves a pending pod without its Secret: the restarted bridge attaches and creates it.
4. **Supervise by watching** (never polling): finished, stuck beyond the grace
   (ErrImagePull, ImagePullBackOff, CreateContainerConfigError, InvalidImageName,
   Unschedulable), ``activeDeadlineSeconds`` (across attempts), or cancelled (SIGTERM/SIGINT).
   Meanwhile each container's log is followed to stdout (see :mod:`bridge.logs`).
5. **Job semantics**: ``backoffLimit`` counted failures, ``podFailurePolicy`` (FailJob stops at
   once, Ignore does not count, Count counts), then the delete-policy annotation.

This module is step 1, the request, and the run's end (every error becomes a result; a pod left
running by an error Argo will not retry is stopped). Steps 2 to 5 are
:mod:`bridge.attempt_loop`, with :mod:`bridge.run_pods` (step 3) and :mod:`bridge.supervision`
(step 4).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from bridge import podspec
from bridge.attempt_loop import AttemptLoop, CancelledError
from bridge.contract import (
    STORAGE_OPERATIONS,
    Participant,
    check_job,
    is_namespace_opted_in,
)
from bridge.errors import (
    APIError,
    ForbiddenError,
    LifecycleError,
    NotFoundError,
    RefusedError,
    StorageError,
    UnavailableError,
)
from bridge.hooks import NoHooks, RunContext, RunHooks
from bridge.kube import JOBS, NAMESPACES, Kube
from bridge.podwatch import Cancellation
from bridge.result import (
    EXIT_FAILED,
    EXIT_INFRASTRUCTURE,
    RunResult,
    Status,
)
from bridge.run_pods import RunPods
from bridge.run_pods import pod_name as _name
from bridge.settings import BridgeSettings
from bridge.supervision import PodSupervisor

log = logging.getLogger(__name__)

JSON = dict[str, Any]


# -- choosing the hooks ---------------------------------------------------------------------


def load_hooks(
    operation: str,
    *,
    storage_config: str | None = None,
    env: Mapping[str, str] | None = None,
) -> RunHooks:
    """The hooks for ``operation``: storage operations get :mod:`bridge.storage_hooks`
    (object-store location and credentials, export sealing, import verification), from
    ``storage_config`` (a YAML file) and ``BRIDGE_STORAGE_*`` of ``env`` (default: this
    process's environment; a bridge in a thread passes its own); everything else none."""
    if operation not in STORAGE_OPERATIONS:
        return NoHooks()
    # Imported here, not at the top: it loads boto3, which no other operation's bridge needs
    # (tests/unit/bridge/test_bridge_imports.py). Not a cycle: storage_hooks imports the seam
    # (bridge.hooks), never this module.
    from bridge.storage_hooks import hooks_from_env, storage_hooks_from  # noqa: PLC0415

    env = os.environ if env is None else env
    if storage_config:
        return storage_hooks_from(storage_config, env=env)
    return hooks_from_env(env)


# -- the request ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRequest:
    """What the bridge is told to run (from the CLI or the local engine); never trusted blindly."""

    namespace: str
    job: str
    operation: str
    tenant_env_id: str
    batch_operation_id: str
    environment: Mapping[str, Any] = field(default_factory=dict)
    changeset: Mapping[str, Any] = field(default_factory=dict)
    workflow_name: str | None = None
    workflow_uid: str | None = None
    workflow_namespace: str | None = None
    source_batch_operation_id: str | None = None

    @property
    def context(self) -> RunContext:
        return RunContext(
            namespace=self.namespace,
            job=self.job,
            operation=self.operation,
            tenant_env_id=self.tenant_env_id,
            batch_operation_id=self.batch_operation_id,
            source_batch_operation_id=self.source_batch_operation_id,
            workflow_name=self.workflow_name,
        )


# -- the runner ---------------------------------------------------------------------------------


class Runner:
    """Runs one Job once (with its attempts); :meth:`run` always returns a :class:`RunResult`."""

    def __init__(
        self,
        kube: Kube,
        request: RunRequest,
        *,
        settings: BridgeSettings,
        hooks: RunHooks | None = None,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.request = request
        self.settings = settings
        self.hooks: RunHooks = hooks or NoHooks()
        self._out = out or sys.stdout
        self._out_lock = threading.Lock()
        self._clock = clock
        # SIGTERM/SIGINT: a flag a signal handler may set (see bridge.podwatch.Cancellation).
        self._cancellation = Cancellation()
        self._cancel_reported = False
        self.identity = podspec.RunIdentity(
            prefix=settings.contract.prefix,
            namespace=request.namespace,
            job=request.job,
            operation=request.operation,
            tenant_env_id=request.tenant_env_id,
            batch_operation_id=request.batch_operation_id,
            workflow_name=request.workflow_name,
            workflow_namespace=request.workflow_namespace,
            workflow_uid=request.workflow_uid,
        )
        self.result = RunResult(
            namespace=request.namespace,
            job=request.job,
            operation=request.operation,
            tenant_env_id=request.tenant_env_id,
            batch_operation_id=request.batch_operation_id,
        )
        # Bound methods of this instance: an engine's subclass overriding emit_info is used.
        self._pods = RunPods(
            kube=kube,
            identity=self.identity,
            settings=settings,
            environment=request.environment,
            changeset=request.changeset,
            source_batch_operation_id=request.source_batch_operation_id,
            emit_info=self.emit_info,
        )
        self._supervisor = PodSupervisor(
            kube=kube,
            pods=self._pods,
            settings=settings,
            cancellation=self._cancellation,
            cancelled=lambda: self.cancelled,
            emit=self.emit,
            emit_info=self.emit_info,
            clock=clock,
        )
        self._attempts = AttemptLoop(
            kube=kube,
            context=request.context,
            identity=self.identity,
            settings=settings,
            hooks=self.hooks,
            result=self.result,
            pods=self._pods,
            supervisor=self._supervisor,
            clock=clock,
            cancelled=lambda: self.cancelled,
            emit_info=self.emit_info,
        )

    # -- public ---------------------------------------------------------------------------

    def emit(self, line: str) -> None:
        """One log line to stdout (thread-safe, flushed: Argo shows it live)."""
        with self._out_lock:
            self._out.write(line + "\n")
            self._out.flush()

    def cancel(self) -> None:
        """SIGTERM/SIGINT: stop waiting, delete the pod with its grace, drain logs.

        Safe from a signal handler and from any thread: it sets a flag and interrupts the open
        watch -- no lock, no output.
        """
        self._cancellation.cancel()

    @property
    def cancelled(self) -> bool:
        requested = self._cancellation.requested
        if requested and not self._cancel_reported:
            self._cancel_reported = True
            self.emit_info("SIGTERM/SIGINT received: stopping")
        return requested

    def run(self) -> RunResult:
        result = self.result
        try:
            job, participant = self.recheck()
            self._attempts.run(job, participant)
        except RefusedError as exc:
            result.finish(Status.REFUSED, reason="Refused", message=str(exc), exit_code=2)
        except CancelledError:
            result.finish(
                Status.CANCELLED, reason="Cancelled", message="cancelled by SIGTERM/SIGINT"
            )
        except UnavailableError as exc:
            result.finish(
                Status.ERROR,
                reason="APIUnavailable",
                message=str(exc),
                exit_code=EXIT_INFRASTRUCTURE,
            )
        except StorageError as exc:
            result.finish(
                Status.ERROR, reason="StorageError", message=str(exc), exit_code=EXIT_INFRASTRUCTURE
            )
        except ForbiddenError as exc:
            result.finish(Status.ERROR, reason="Forbidden", message=str(exc), exit_code=EXIT_FAILED)
        except LifecycleError as exc:
            result.finish(
                Status.ERROR, reason=type(exc).__name__, message=str(exc), exit_code=EXIT_FAILED
            )
        except Exception as exc:  # a bug: still report a result, with the traceback on stderr
            log.exception("internal error")
            result.finish(
                Status.ERROR,
                reason="InternalError",
                message=f"internal error: {type(exc).__name__}: {exc}",
                exit_code=EXIT_FAILED,
            )
        if self._cancellation.requested or (
            result.status is Status.ERROR and result.process_exit_code != EXIT_INFRASTRUCTURE
        ):
            self._abandon_live_pod()
        if self.cancelled and result.status is not Status.CANCELLED:
            result.finish(
                Status.CANCELLED,
                reason="Cancelled",
                message=f"cancelled by SIGTERM/SIGINT ({result.reason}: {result.message})",
                exit_code=result.exit_code,
            )
        return result

    # -- 1. re-check ----------------------------------------------------------------------------

    def recheck(self) -> tuple[JSON, Participant]:
        """Never trust parameters: refuse unless the Job is a valid participant of the operation."""
        req = self.request
        contract = self.settings.contract
        where = f"Job {req.namespace}/{req.job}"
        try:
            namespace = self.kube.get(NAMESPACES, req.namespace)
        except NotFoundError:
            raise RefusedError(
                f"namespace {req.namespace} does not exist", hint="check --namespace"
            ) from None
        if not is_namespace_opted_in(namespace, settings=contract):
            raise RefusedError(
                f"namespace {req.namespace} is not opted in to tenant lifecycle",
                hint=f'the platform labels managed namespaces {contract.enabled_label}="true"',
            )
        try:
            job = self.kube.get(JOBS, req.job, namespace=req.namespace)
        except NotFoundError:
            raise RefusedError(f"{where} does not exist", hint="check --namespace/--job") from None
        participant, problems = check_job(job, settings=contract, source="cluster")
        if participant is None:
            detail = "; ".join(str(p) for p in problems) or (
                f"it has neither the label {contract.enabled_label} nor the annotation "
                f"{contract.operations_key}"
            )
            raise RefusedError(f"{where} is not a valid lifecycle participant: {detail}")
        if not participant.takes_part_in(req.operation):
            raise RefusedError(
                f"{where} is not annotated for {req.operation} "
                f"({contract.operations_key}: {','.join(participant.operations)})",
                hint="the workflow was given a job that does not take part in this operation",
            )
        return job, participant

    def emit_info(self, message: str) -> None:
        print(f"bridge: {message}", file=sys.stderr, flush=True)

    def _abandon_live_pod(self) -> None:
        """The run ended with an error Argo does not retry (exit 1), or was cancelled, while a
        pod was running: nobody would supervise, time out or clean up that job any more, so stop
        it (best effort). Exit 75 keeps it: the restarted bridge attaches to it."""
        pod, self._attempts.live_pod = self._attempts.live_pod, None
        if pod is None:
            return
        name = _name(pod)
        self.emit_info(f"deleting pod {name}: the run ended with an error")
        try:
            self._pods.delete(name, grace=self._pods.delete_grace(pod))
        except APIError as exc:
            self.emit_info(f"warning: could not delete pod {name}: {exc}")
