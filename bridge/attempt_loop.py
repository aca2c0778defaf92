"""Job semantics over a run's attempts: resume, retry, give up, delete.

Steps 2 to 5 of :mod:`bridge.runner`: find the run's pods (a bridge restarted by Argo replays
the finished attempts' verdicts and attaches to the latest pod instead of running the job
twice), create each attempt's pod and Secret (:mod:`bridge.run_pods`), supervise it
(:mod:`bridge.supervision`), and judge it as Kubernetes would: ``backoffLimit`` counted
failures, ``podFailurePolicy`` (FailJob stops at once, Ignore does not count, Count counts),
``activeDeadlineSeconds`` across attempts, then the delete-policy annotation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge import attempts as att
from bridge.contract import DeletePolicy, Participant
from bridge.errors import APIError, StorageError
from bridge.hooks import Injection, RunContext, RunHooks
from bridge.kube import PODS, Kube
from bridge.podspec import RunIdentity
from bridge.result import AttemptRecord, RunResult, Status
from bridge.run_pods import RunPods
from bridge.run_pods import pod_name as _name
from bridge.settings import BridgeSettings
from bridge.supervision import PodSupervisor, Stop
from bridge.timefmt import rfc3339

JSON = dict[str, Any]


@dataclass
class _Tally:
    """Failed attempts so far: counted toward backoffLimit, and ignored by podFailurePolicy."""

    counted: int = 0
    ignored: int = 0

    def add(self, verdict: att.Verdict) -> None:
        self.counted += verdict is att.Verdict.COUNT
        self.ignored += verdict is att.Verdict.IGNORE


class CancelledError(Exception):
    """SIGTERM/SIGINT arrived: the runner reports the run cancelled."""


class AttemptLoop:
    """Runs the attempts of one Job for one run and finishes its :class:`RunResult`."""

    def __init__(
        self,
        *,
        kube: Kube,
        context: RunContext,
        identity: RunIdentity,
        settings: BridgeSettings,
        hooks: RunHooks,
        result: RunResult,
        pods: RunPods,
        supervisor: PodSupervisor,
        clock: Callable[[], float],
        cancelled: Callable[[], bool],
        emit_info: Callable[[str], None],
    ) -> None:
        self.kube = kube
        self.context = context
        self.identity = identity
        self.settings = settings
        self.hooks = hooks
        self.result = result
        self._pods = pods
        self._supervisor = supervisor
        self._clock = clock
        self._cancelled = cancelled
        self._emit_info = emit_info
        self._injection: Injection | None = None
        # The pod being supervised: the runner stops it if the run ends with an error Argo
        # will not retry.
        self.live_pod: JSON | None = None

    def run(self, job: JSON, participant: Participant) -> None:
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
            self.live_pod = pod
            if resume is not None:
                self._emit_info(f"attaching to existing pod {_name(pod)} (attempt {attempt})")
                if _pending(pod):
                    # Its bridge may have died between creating the pod and its Secret.
                    self._give_secret(pod, attempt, fresh=False)
            resume = None
            final, stop = self._supervisor.supervise(pod, deadline_at=deadline_at)
            self.live_pod = None
            if self._finished_attempt(
                pod, final, stop, attempt=attempt, participant=participant, tally=tally
            ):
                return
            if self._out_of_retries(participant, tally):
                return
            if self._cancelled():
                raise CancelledError
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
                raise CancelledError
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
        ctx, result = self.context, self.result
        if tally.counted > participant.backoff_limit:
            last = result.attempts[-1]
            self._failed(
                participant,
                reason="BackoffLimitExceeded",
                message=f"{ctx.namespace}/{ctx.job} failed {tally.counted} time(s) "
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

    def _existing_pods(self) -> list[JSON]:
        pods = list(
            self.kube.list(
                PODS, namespace=self.context.namespace, label_selector=self.identity.selector()
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
            self._emit_info(
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
            message=f"Job {self.context.namespace}/{self.context.job} was active longer than "
            f"activeDeadlineSeconds={participant.active_deadline_seconds}",
        )

    def _succeeded(self, participant: Participant) -> None:
        try:
            report = self.hooks.after_success(self.context)
        except StorageError as exc:
            self._failed(participant, reason="StorageVerificationFailed", message=str(exc))
            return
        if report:
            self.result.storage = dict(report)
        self.result.finish(
            Status.SUCCEEDED,
            reason="Completed",
            message=f"Job {self.context.namespace}/{self.context.job} succeeded",
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
                self._emit_info(f"warning: could not delete pod {record.pod}: {exc}")

    # -- creating an attempt --------------------------------------------------------------------

    def _prepared(self) -> Injection:
        """What the hooks add to this run's pods and Secrets; asked once per run."""
        if self._injection is None:
            self._injection = self.hooks.before_pod(self.context)
            if self._injection.report:
                self.result.storage = dict(self._injection.report)
        return self._injection

    def _create(self, job: JSON, attempt: int) -> JSON:
        injection = self._prepared()
        # Checked after the hook (which may take a while), and again before the pod: a stopped
        # workflow must not start the team's job only to kill it a moment later.
        if self._cancelled():
            raise CancelledError
        body = self._pods.build(job, attempt, injection)
        if self._cancelled():
            raise CancelledError
        # The pod first, then its Secret (see bridge.run_pods for why this order).
        pod, fresh = self._pods.create(body, attempt)
        self.live_pod = pod  # from here on a stop or an error must not leave it behind
        self._give_secret(pod, attempt, fresh=fresh)
        return pod

    def _give_secret(self, pod: JSON, attempt: int, *, fresh: bool) -> None:
        self._pods.give_secret(pod, attempt, fresh=fresh, secret_env=self._prepared().secret_env)


def _pending(pod: Mapping[str, Any]) -> bool:
    """Not started yet: its containers may still be waiting for the Secret's volume."""
    return (pod.get("status") or {}).get("phase") in (None, "", "Pending")
