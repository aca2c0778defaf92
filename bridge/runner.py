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

from bridge import attempts as att
from bridge import podspec
from bridge.contract import (
    STORAGE_OPERATIONS,
    DeletePolicy,
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
from bridge.hooks import Injection, NoHooks, RunContext, RunHooks
from bridge.kube import JOBS, NAMESPACES, PODS, Kube
from bridge.podwatch import Cancellation
from bridge.result import (
    EXIT_FAILED,
    EXIT_INFRASTRUCTURE,
    AttemptRecord,
    RunResult,
    Status,
    rfc3339,
)
from bridge.run_pods import RunPods
from bridge.run_pods import pod_name as _name
from bridge.settings import BridgeSettings
from bridge.supervision import PodSupervisor, Stop

log = logging.getLogger(__name__)

JSON = dict[str, Any]


# -- choosing the hooks ---------------------------------------------------------------------


def load_hooks(operation: str, *, storage_config: str | None = None) -> RunHooks:
    """The hooks for ``operation``: storage operations get :mod:`bridge.storage_hooks`
    (object-store location and credentials, export sealing, import verification), from
    ``storage_config`` (a YAML file) and ``BRIDGE_STORAGE_*``; everything else none."""
    if operation not in STORAGE_OPERATIONS:
        return NoHooks()
    # Imported here, not at the top: it loads boto3, which no other operation's bridge needs
    # (tests/unit/bridge/test_bridge_imports.py). Not a cycle: storage_hooks imports the seam
    # (bridge.hooks), never this module.
    from bridge.storage_hooks import hooks_from_env, storage_hooks_from  # noqa: PLC0415

    if storage_config:
        return storage_hooks_from(storage_config, env=os.environ)
    return hooks_from_env()


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


@dataclass
class _Tally:
    """Failed attempts so far: counted toward backoffLimit, and ignored by podFailurePolicy."""

    counted: int = 0
    ignored: int = 0

    def add(self, verdict: att.Verdict) -> None:
        self.counted += verdict is att.Verdict.COUNT
        self.ignored += verdict is att.Verdict.IGNORE


class _CancelledError(Exception):
    """Internal: SIGTERM/SIGINT arrived."""


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
        self._injection: Injection | None = None
        # The pod being supervised: stopped if the run ends with an error Argo will not retry.
        self._live_pod: JSON | None = None
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
            self._run_attempts(job, participant)
        except RefusedError as exc:
            result.finish(Status.REFUSED, reason="Refused", message=str(exc), exit_code=2)
        except _CancelledError:
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

    # -- 2..5. attempts ---------------------------------------------------------------------

    def _run_attempts(self, job: JSON, participant: Participant) -> None:
        existing = self._existing_pods()
        start = self._clock()
        if existing:
            start = min(start, *(att.created_at(p) or start for p in existing))
        deadline_at: float | None = None
        if participant.active_deadline_seconds is not None:
            deadline_at = start + participant.active_deadline_seconds
        tally, resume, attempt = self._replay(existing, participant)
        while True:
            if deadline_at is not None and self._clock() >= deadline_at and resume is None:
                self._finish_deadline(participant)
                return
            pod = resume if resume is not None else self._create(job, attempt)
            self._live_pod = pod
            if resume is not None:
                self.emit_info(f"attaching to existing pod {_name(pod)} (attempt {attempt})")
                if _pending(pod):
                    # Its bridge may have died between creating the pod and its Secret.
                    self._give_secret(pod, attempt, fresh=False)
            resume = None
            final, stop = self._supervisor.supervise(pod, deadline_at=deadline_at)
            self._live_pod = None
            if self._finished_attempt(
                pod, final, stop, attempt=attempt, participant=participant, tally=tally
            ):
                return
            if self._out_of_retries(participant, tally):
                return
            if self.cancelled:
                raise _CancelledError
            attempt += 1

    def _replay(
        self, existing: list[JSON], participant: Participant
    ) -> tuple[_Tally, JSON | None, int]:
        """Attempts a previous bridge already finished: replay their verdicts. Returns the
        tally, the pod to attach to (the latest unfinished or last one) and its attempt."""
        label = self.identity.key("attempt")
        tally = _Tally()
        attempt = 0
        resume: JSON | None = None
        for pod in existing:
            number = att.attempt_number(pod, label)
            attempt = max(attempt, number)
            if att.is_finished(pod) and pod is not existing[-1]:
                _, verdict = self._judge(pod, number, participant)
                tally.add(verdict)
            else:
                resume = pod
        if existing and resume is None:
            resume = existing[-1]
        if resume is not None:
            return tally, resume, att.attempt_number(resume, label)
        return tally, None, attempt + 1

    def _finished_attempt(
        self,
        pod: JSON,
        final: JSON,
        stop: Stop | None,
        *,
        attempt: int,
        participant: Participant,
        tally: _Tally,
    ) -> bool:
        """Record one supervised attempt; True when it decided the run's outcome."""
        if stop is not None:
            self._record_stop(pod, attempt, stop)
            if stop.kind == "cancelled":
                raise _CancelledError
            if stop.kind == "deadline":
                self._finish_deadline(participant)
                return True
            if stop.kind == "stuck":
                self._failed(participant, reason=stop.reason, message=stop.message)
                return True
            # deleted under us (evicted, killed, an operator): a counted failure
            tally.counted += 1
            return False
        record, verdict = self._judge(final, attempt, participant)
        if att.outcome(final).succeeded:
            self._succeeded(participant)
            return True
        if verdict is att.Verdict.FAIL_JOB:
            self._failed(
                participant,
                reason="PodFailurePolicy",
                message=f"{_name(final)}: container {record.container} exited "
                f"{record.exit_code}, matching a FailJob podFailurePolicy rule",
                exit_code=record.exit_code,
            )
            return True
        tally.add(verdict)
        return False

    def _out_of_retries(self, participant: Participant, tally: _Tally) -> bool:
        """backoffLimit counted failures, or too many ignored ones: fail the job (True)."""
        req, result = self.request, self.result
        if tally.counted > participant.backoff_limit:
            last = result.attempts[-1]
            self._failed(
                participant,
                reason="BackoffLimitExceeded",
                message=f"{req.namespace}/{req.job} failed {tally.counted} time(s) "
                f"(backoffLimit {participant.backoff_limit}); last: {last.pod} "
                f"{last.reason} exit code {last.exit_code}",
                exit_code=last.exit_code,
            )
            return True
        if tally.ignored > self.settings.max_ignored_failures:
            self._failed(
                participant,
                reason="TooManyIgnoredFailures",
                message=f"{tally.ignored} failures matched an Ignore podFailurePolicy rule "
                f"(the bridge stops after {self.settings.max_ignored_failures})",
                exit_code=result.attempts[-1].exit_code,
            )
            return True
        return False

    def emit_info(self, message: str) -> None:
        print(f"bridge: {message}", file=sys.stderr, flush=True)

    def _existing_pods(self) -> list[JSON]:
        pods = list(
            self.kube.list(
                PODS, namespace=self.request.namespace, label_selector=self.identity.selector()
            )
        )
        label = self.identity.key("attempt")
        return sorted(pods, key=lambda p: att.attempt_number(p, label))

    def _judge(
        self, pod: Mapping[str, Any], attempt: int, participant: Participant
    ) -> tuple[AttemptRecord, att.Verdict]:
        outcome = att.outcome(pod)
        verdict = (
            att.Verdict.COUNT
            if outcome.succeeded
            else att.verdict(pod, participant.pod_failure_rules)[0]
        )
        record = AttemptRecord(
            attempt=attempt,
            pod=_name(pod),
            exit_code=outcome.exit_code,
            reason=outcome.reason,
            started_at=att.started_at(pod),
            finished_at=att.finished_at(pod),
            # Like INTERFACES.md's example: every attempt counts unless podFailurePolicy
            # ignored it (Ignore); backoffLimit compares the counted *failures*.
            counted=verdict is not att.Verdict.IGNORE,
            container=outcome.container,
        )
        self.result.attempts.append(record)
        if not outcome.succeeded:
            self.emit_info(
                f"attempt {attempt} ({record.pod}) failed: {record.reason}, exit code "
                f"{record.exit_code}"
                + (f" in container {record.container}" if record.container else "")
                + ("" if record.counted else " (ignored by podFailurePolicy)")
            )
        return record, verdict

    def _record_stop(self, pod: Mapping[str, Any], attempt: int, stop: Stop) -> None:
        self.result.attempts.append(
            AttemptRecord(
                attempt=attempt,
                pod=_name(pod),
                exit_code=None,
                reason=stop.reason,
                started_at=att.started_at(pod),
                finished_at=rfc3339(),
                counted=True,
            )
        )

    def _failed(
        self, participant: Participant, *, reason: str, message: str, exit_code: int | None = None
    ) -> None:
        """The job failed (exit code None: it has none -- deadline, stuck, verification)."""
        self.result.finish(Status.FAILED, reason=reason, message=message, exit_code=exit_code)
        self._apply_delete_policy(participant, succeeded=False)

    def _finish_deadline(self, participant: Participant) -> None:
        self._failed(
            participant,
            reason="DeadlineExceeded",
            message=f"Job {self.request.namespace}/{self.request.job} was active longer than "
            f"activeDeadlineSeconds={participant.active_deadline_seconds}",
        )

    def _succeeded(self, participant: Participant) -> None:
        try:
            report = self.hooks.after_success(self.request.context)
        except StorageError as exc:
            self._failed(participant, reason="StorageVerificationFailed", message=str(exc))
            return
        if report:
            self.result.storage = dict(report)
        self.result.finish(
            Status.SUCCEEDED,
            reason="Completed",
            message=f"Job {self.request.namespace}/{self.request.job} succeeded",
            exit_code=0,
        )
        self._apply_delete_policy(participant, succeeded=True)

    def _apply_delete_policy(self, participant: Participant, *, succeeded: bool) -> None:
        """Delete the run's pods per the Job's delete-policy annotation.

        The outcome is already decided: a failed deletion is only a warning (``sweep`` deletes
        leftovers). Turning it into exit 75 would make Argo retry -- and re-run a finished job.
        Pods the bridge gave up on (stuck, deadline, cancelled) are deleted whatever the policy.
        """
        policy = participant.delete_policy
        if policy is DeletePolicy.NEVER or (policy is DeletePolicy.SUCCEEDED and not succeeded):
            return
        for record in self.result.attempts:
            try:
                self._pods.delete(record.pod)
            except APIError as exc:
                self.emit_info(f"warning: could not delete pod {record.pod}: {exc}")

    def _abandon_live_pod(self) -> None:
        """The run ended with an error Argo does not retry (exit 1), or was cancelled, while a
        pod was running: nobody would supervise, time out or clean up that job any more, so stop
        it (best effort). Exit 75 keeps it: the restarted bridge attaches to it."""
        pod, self._live_pod = self._live_pod, None
        if pod is None:
            return
        name = _name(pod)
        self.emit_info(f"deleting pod {name}: the run ended with an error")
        try:
            self._pods.delete(name, grace=self._pods.delete_grace(pod))
        except APIError as exc:
            self.emit_info(f"warning: could not delete pod {name}: {exc}")

    # -- creating an attempt --------------------------------------------------------------------

    def _prepared(self) -> Injection:
        """What the hooks add to this run's pods and Secrets; asked once per run."""
        if self._injection is None:
            self._injection = self.hooks.before_pod(self.request.context)
            if self._injection.report:
                self.result.storage = dict(self._injection.report)
        return self._injection

    def _create(self, job: JSON, attempt: int) -> JSON:
        injection = self._prepared()
        # Checked after the hook (which may take a while), and again before the pod: a stopped
        # workflow must not start the team's job only to kill it a moment later.
        if self.cancelled:
            raise _CancelledError
        body = self._pods.build(job, attempt, injection)
        if self.cancelled:
            raise _CancelledError
        # The pod first, then its Secret (see bridge.run_pods for why this order).
        pod, fresh = self._pods.create(body, attempt)
        self._live_pod = pod  # from here on a stop or an error must not leave it behind
        self._give_secret(pod, attempt, fresh=fresh)
        return pod

    def _give_secret(self, pod: JSON, attempt: int, *, fresh: bool) -> None:
        self._pods.give_secret(pod, attempt, fresh=fresh, secret_env=self._prepared().secret_env)


# -- helpers ------------------------------------------------------------------------------------


def _pending(pod: Mapping[str, Any]) -> bool:
    """Not started yet: its containers may still be waiting for the Secret's volume."""
    return (pod.get("status") or {}).get("phase") in (None, "", "Pending")
