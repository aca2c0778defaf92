"""Sweep: delete the pods and per-run Secrets the bridge left behind.

Why it is needed: Argo's ``terminate`` skips exit handlers and kills the bridge without SIGTERM
handling time, owner references cannot cross namespaces (a Workflow in ``argo`` cannot own a pod
in ``team-a``), and a bridge can crash between creating the per-run Secret and the pod.

What goes, in the opted-in namespaces only (the same label selector discovery uses):

* a bridge pod (``<prefix>/managed-by=bridge``) whose Workflow -- named by the pod's
  ``workflow-name``/``workflow-namespace`` annotations -- is finished, gone, or replaced by
  another Workflow of the same name (different uid);
* a bridge pod without a Workflow (the local engine, a manual run) that is terminated and older
  than the threshold;
* a per-run Secret whose pod (same name) does not exist, by the same Workflow/age rules.
  A Secret whose pod exists is the pod's business: it is garbage-collected with it.

Running pods of a running Workflow are never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge import timefmt
from bridge.contract import ContractSettings, is_namespace_opted_in
from bridge.errors import APIError, ForbiddenError, NotFoundError, UsageError
from bridge.kube import NAMESPACES, PODS, SECRETS, WORKFLOWS, Kube
from bridge.podspec import MANAGED_BY

log = logging.getLogger(__name__)

FINISHED_WORKFLOW_PHASES = frozenset({"Succeeded", "Failed", "Error"})


def parse_duration(text: str) -> float:
    """Seconds in the sweeper's ``--older-than``: :func:`bridge.timefmt.parse_duration`'s
    spelling (``90s``, ``30m``, ``2h``, ``1d``, ``1h30m``), a bare number being seconds and
    ``0`` sweeping everything finished."""
    try:
        age = timefmt.parse_duration(text, what="--older-than", bare_seconds=True, allow_zero=True)
    except UsageError as exc:
        raise UsageError(f"invalid duration {text!r}", hint=exc.hint) from exc
    return age.total_seconds()


@dataclass(frozen=True)
class SweepAction:
    kind: str  # "pod" | "secret"
    namespace: str
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}: {self.why}"


@dataclass
class SweepReport:
    deleted: list[SweepAction] = field(default_factory=list)
    kept: int = 0
    errors: list[str] = field(default_factory=list)


def _age(obj: Mapping[str, Any], now: datetime) -> float:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    try:
        created = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (now - created).total_seconds()


class Sweeper:
    """Decides and deletes; :meth:`run` returns what it did (or would do, with ``dry_run``)."""

    def __init__(
        self,
        kube: Kube,
        *,
        contract: ContractSettings,
        older_than: float,
        dry_run: bool = False,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        delete_grace_seconds: int | None = None,
    ) -> None:
        self.kube = kube
        self.contract = contract
        self.older_than = older_than
        self.dry_run = dry_run
        self._now = now
        self._grace = delete_grace_seconds
        self._workflows: dict[tuple[str, str], Mapping[str, Any] | None] = {}

    def key(self, name: str) -> str:
        return f"{self.contract.prefix}/{name}"

    def run(self) -> SweepReport:
        report = SweepReport()
        selector = f"{self.key('managed-by')}={MANAGED_BY}"
        now = self._now()
        for namespace in self._namespaces():
            try:
                pods = list(self.kube.list(PODS, namespace=namespace, label_selector=selector))
            except ForbiddenError as exc:
                # One namespace the sweeper may not read (a missing RoleBinding) must not stop
                # the sweep of every other one: reported, and the run exits non-zero.
                report.errors.append(f"cannot list bridge pods in {namespace}: {exc}")
                continue
            pod_names = {str(p["metadata"]["name"]) for p in pods}
            for pod in pods:
                self._consider("pod", pod, now, report)
            try:
                secrets = list(
                    self.kube.list(SECRETS, namespace=namespace, label_selector=selector)
                )
            except ForbiddenError as exc:
                report.errors.append(f"cannot list per-run Secrets in {namespace}: {exc}")
                continue
            for secret in secrets:
                if str(secret["metadata"]["name"]) in pod_names:
                    report.kept += 1  # goes with its pod
                    continue
                self._consider("secret", secret, now, report)
        return report

    def _namespaces(self) -> list[str]:
        return sorted(
            str(ns["metadata"]["name"])
            for ns in self.kube.list(NAMESPACES, label_selector=self.contract.label_selector())
            if is_namespace_opted_in(ns, settings=self.contract)
        )

    def _consider(
        self, kind: str, obj: Mapping[str, Any], now: datetime, report: SweepReport
    ) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        if meta.get("deletionTimestamp"):
            # Already being deleted (a pod in its grace period stays listed until its containers
            # end): deleting it again would change nothing and report a deletion that did not
            # happen. A real apiserver shows this between two sweeps; the sandbox never did.
            report.kept += 1
            return
        try:
            why = self._why_delete(kind, obj, now)
        except APIError as exc:
            report.errors.append(f"{kind} {namespace}/{name}: {exc}")
            return
        if why is None:
            report.kept += 1
            return
        action = SweepAction(kind, namespace, name, why)
        if not self.dry_run:
            try:
                resource = PODS if kind == "pod" else SECRETS
                grace = self._grace if kind == "pod" else None
                self.kube.delete(
                    resource, name, namespace=namespace, grace_period_seconds=grace, missing_ok=True
                )
                if kind == "pod":  # its Secret is owned by it; do not wait for the collector
                    self.kube.delete(SECRETS, name, namespace=namespace, missing_ok=True)
            except APIError as exc:
                report.errors.append(f"{action}: delete failed: {exc}")
                return
        report.deleted.append(action)

    def _why_delete(self, kind: str, obj: Mapping[str, Any], now: datetime) -> str | None:
        meta = obj.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        workflow = annotations.get(self.key("workflow-name"))
        workflow_ns = annotations.get(self.key("workflow-namespace"))
        if workflow and workflow_ns:
            found = self._workflow(str(workflow_ns), str(workflow))
            if found is None:
                return f"workflow {workflow_ns}/{workflow} is gone"
            uid = annotations.get(self.key("workflow-uid"))
            if uid and (found.get("metadata") or {}).get("uid") != uid:
                return f"workflow {workflow_ns}/{workflow} was replaced (different uid)"
            phase = (found.get("status") or {}).get("phase")
            labels = (found.get("metadata") or {}).get("labels") or {}
            if (
                phase in FINISHED_WORKFLOW_PHASES
                or labels.get("workflows.argoproj.io/completed") == "true"
            ):
                return f"workflow {workflow_ns}/{workflow} is {phase or 'completed'}"
            return None
        age = _age(obj, now)
        if age < self.older_than:
            return None
        if kind == "pod":
            phase = (obj.get("status") or {}).get("phase")
            if phase not in ("Succeeded", "Failed"):
                return None
            return f"no workflow, {phase}, {age:.0f}s old"
        return f"no workflow and no pod, {age:.0f}s old"

    def _workflow(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        key = (namespace, name)
        if key not in self._workflows:
            try:
                self._workflows[key] = self.kube.get(WORKFLOWS, name, namespace=namespace)
            except NotFoundError:
                self._workflows[key] = None
        return self._workflows[key]
