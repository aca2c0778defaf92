"""A run's pods and their per-run Secrets: creating an attempt's pair and deleting it again.

Why apart from the runner: the order of these calls is the bridge's RBAC story. The pod comes
first, then its Secret, created with the pod as its owner: the kubelet keeps the pod in
ContainerCreating until the Secret exists (a moment later). This order is what lets the bridge
do without `patch` on Secrets -- a PATCH answers with the whole object, so that verb would let
it read every Secret of a team namespace. The runner decides *when* (attempts, cancellation);
this module knows *how*.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from bridge import podspec
from bridge.errors import APIError, ConflictError, UnavailableError
from bridge.hooks import Injection
from bridge.kube import PODS, SECRETS, Kube
from bridge.settings import BridgeSettings

JSON = dict[str, Any]


class RunPods:
    """Builds, creates and deletes the pods and Secrets of one run (one Job, one batch)."""

    def __init__(
        self,
        *,
        kube: Kube,
        identity: podspec.RunIdentity,
        settings: BridgeSettings,
        environment: Mapping[str, Any],
        changeset: Mapping[str, Any],
        source_batch_operation_id: str | None,
        emit_info: Callable[[str], None],
    ) -> None:
        self.kube = kube
        self.identity = identity
        self.settings = settings
        self.namespace = identity.namespace
        self._environment = environment
        self._changeset = changeset
        self._source_batch_operation_id = source_batch_operation_id
        self._emit_info = emit_info

    def build(self, job: JSON, attempt: int, injection: Injection) -> JSON:
        """The pod of ``attempt`` (deterministic name) from the Job's template."""
        identity = self.identity
        name = podspec.pod_name(
            batch_operation_id=identity.batch_operation_id,
            namespace=identity.namespace,
            job=identity.job,
            attempt=attempt,
        )
        env = podspec.PodEnv(
            values=podspec.lifecycle_env(
                identity,
                attempt=attempt,
                mount_path=self.settings.mount_path,
                extra=injection.env,
                source_batch_operation_id=self._source_batch_operation_id,
            ),
            secret_keys=tuple(injection.secret_env),
        )
        return podspec.build_pod(
            job,
            name=name,
            identity=identity,
            attempt=attempt,
            env=env,
            mount_path=self.settings.mount_path,
        )

    def create(self, body: JSON, attempt: int) -> tuple[JSON, bool]:
        """Create the pod; (pod, fresh). A pod of that name already there is attached to
        (fresh False): an earlier bridge of this run created it."""
        name = str(body["metadata"]["name"])
        try:
            pod = self.kube.create(PODS, body, namespace=self.namespace)
            self._emit_info(f"created pod {name} (attempt {attempt})")
            return pod, True
        except ConflictError:
            pod = self.kube.get(PODS, name, namespace=self.namespace)
            self._emit_info(f"pod {name} exists already: attaching (attempt {attempt})")
            return pod, False

    def give_secret(
        self, pod: JSON, attempt: int, *, fresh: bool, secret_env: Mapping[str, str]
    ) -> None:
        """Create ``pod``'s per-run Secret (tenant context, the hook's secret env), owned by it.

        ``fresh``: this bridge has just created the pod, so a Secret of that name is a stale one
        (its pod is gone) and is replaced. Otherwise an existing Secret is the pod's own, from
        the bridge that created it.
        """
        name = pod_name(pod)
        secret = podspec.build_secret(
            name=name,
            identity=self.identity,
            attempt=attempt,
            environment_yaml=_yaml(self._environment),
            changeset_yaml=_yaml(self._changeset),
            secret_env=secret_env,
        )
        secret["metadata"]["ownerReferences"] = [podspec.owner_reference(pod)]
        try:
            try:
                self.kube.create(SECRETS, secret, namespace=self.namespace)
            except ConflictError:
                if not fresh:
                    return
                self.kube.delete(SECRETS, name, namespace=self.namespace, missing_ok=True)
                self.kube.create(SECRETS, secret, namespace=self.namespace)
        except UnavailableError:
            raise  # the pod waits for it: the bridge Argo restarts attaches and creates it
        except APIError:
            # Refused for good (403, 422): the pod would wait for its context forever.
            with contextlib.suppress(APIError):
                self.kube.delete(PODS, name, namespace=self.namespace, missing_ok=True)
            raise

    def delete_grace(self, pod: Mapping[str, Any]) -> int:
        grace = self.settings.delete_grace_seconds
        if grace is None:
            grace = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds") or 30)
        return grace

    def delete(self, name: str, *, grace: int | None = None) -> None:
        """Delete the pod and its Secret (both may be gone already)."""
        ns = self.namespace
        try:
            self.kube.delete(PODS, name, namespace=ns, grace_period_seconds=grace, missing_ok=True)
        finally:
            # Owned by the pod, so garbage-collected with it; deleting it too does not depend
            # on the collector (tenant data should not outlive the pod by a GC delay).
            self.kube.delete(SECRETS, name, namespace=ns, missing_ok=True)


def pod_name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name"))


def _yaml(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False)
