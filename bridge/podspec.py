"""Building the pod and its per-run Secret from a suspended Job's ``spec.template``.

The pod is the template, every field preserved (init containers, sidecars, volumes,
securityContext, affinity, tolerations, serviceAccountName, imagePullSecrets, ...), with exactly
these documented changes and nothing else (in particular, no added privileges):

* ``metadata``: our name/namespace; our labels and annotations added to the template's; the Job
  controller's selector labels (``controller-uid``, ``job-name`` and their
  ``batch.kubernetes.io/`` forms) removed -- a Job controller would otherwise *adopt* our pod
  and, the Job being suspended, delete it;
* ``spec.restartPolicy: Never`` -- attempts are the bridge's business, like a Job's;
* in every container and init container: the ``LIFECYCLE_*`` env (replacing same-named entries
  of the template), secret env as ``secretKeyRef`` to the per-run Secret, and a read-only
  ``volumeMount`` of that Secret at the mount path;
* one ``secret`` volume for the per-run Secret.

Names are deterministic: the same batch, namespace, job and attempt always give the same pod
name, so a bridge restarted by Argo finds its pod instead of running the job twice.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bridge.errors import ContractError

JSON = dict[str, Any]

CONTEXT_VOLUME: Final = "tenant-lifecycle-context"
ENVIRONMENT_KEY: Final = "environment.yaml"
CHANGESET_KEY: Final = "changeset.yaml"
MANAGED_BY: Final = "bridge"

# The Job controller selects its pods by these; a copy on our pod would get it adopted.
JOB_CONTROLLER_LABELS: Final = frozenset(
    {
        "controller-uid",
        "job-name",
        "batch.kubernetes.io/controller-uid",
        "batch.kubernetes.io/job-name",
        "batch.kubernetes.io/job-completion-index",
    }
)

_MAX_NAME = 63
_HASH_LEN = 10
_ATTEMPT_DIGITS = 4
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def run_hash(batch_operation_id: str, namespace: str, job: str) -> str:
    digest = hashlib.sha256(f"{batch_operation_id}\0{namespace}\0{job}".encode()).hexdigest()
    return digest[:_HASH_LEN]


def pod_name(*, batch_operation_id: str, namespace: str, job: str, attempt: int) -> str:
    """``lc-<job-trunc>-<hash(batch,namespace,job)[:10]>-<attempt>``: a DNS label, <= 63 chars."""
    room = _MAX_NAME - len("lc-") - 1 - _HASH_LEN - 1 - _ATTEMPT_DIGITS
    stem = re.sub(r"[^a-z0-9-]+", "-", job.lower())[:room].strip("-") or "job"
    return f"lc-{stem}-{run_hash(batch_operation_id, namespace, job)}-{attempt}"


def label_value(value: str) -> str:
    """``value`` when it is a valid label value, else a stable valid stand-in (prefix + hash).

    Batch and tenant ids come from outside; the true value always goes in an annotation too.
    """
    if len(value) <= _MAX_NAME and _LABEL_VALUE_RE.match(value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:_HASH_LEN]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[: _MAX_NAME - _HASH_LEN - 1]
    stem = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", stem)
    return f"{stem}-{digest}" if stem else digest


@dataclass(frozen=True)
class RunIdentity:
    """Who a pod belongs to: the labels and annotations that tie it to a run and a workflow."""

    prefix: str
    namespace: str
    job: str
    operation: str
    tenant_env_id: str
    batch_operation_id: str
    workflow_name: str | None = None
    workflow_namespace: str | None = None
    workflow_uid: str | None = None

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def selector(self) -> str:
        """The label selector of every pod of this run (all attempts)."""
        return ",".join(f"{k}={v}" for k, v in self.run_labels().items())

    def run_labels(self) -> dict[str, str]:
        return {
            self.key("managed-by"): MANAGED_BY,
            self.key("batch"): label_value(self.batch_operation_id),
            self.key("job"): label_value(self.job),
        }

    def labels(self, attempt: int) -> dict[str, str]:
        labels = self.run_labels()
        labels[self.key("tenant")] = label_value(self.tenant_env_id)
        labels[self.key("operation")] = label_value(self.operation)
        labels[self.key("attempt")] = str(attempt)
        if self.workflow_name:
            labels[self.key("workflow")] = label_value(self.workflow_name)
        return labels

    def annotations(self) -> dict[str, str]:
        # The true values, whatever label_value() had to do to them; sweep reads the workflow's.
        annotations = {
            self.key("batch-operation-id"): self.batch_operation_id,
            self.key("tenant-env-id"): self.tenant_env_id,
            self.key("operation"): self.operation,
            self.key("job"): f"{self.namespace}/{self.job}",
        }
        if self.workflow_name:
            annotations[self.key("workflow-name")] = self.workflow_name
        if self.workflow_namespace:
            annotations[self.key("workflow-namespace")] = self.workflow_namespace
        if self.workflow_uid:
            annotations[self.key("workflow-uid")] = self.workflow_uid
        return annotations


@dataclass(frozen=True)
class PodEnv:
    """What every container receives: plain values and names of keys in the per-run Secret."""

    values: Mapping[str, str] = field(default_factory=dict)
    secret_keys: tuple[str, ...] = ()


def lifecycle_env(
    identity: RunIdentity,
    *,
    attempt: int,
    mount_path: str,
    extra: Mapping[str, str] | None = None,
    source_batch_operation_id: str | None = None,
) -> dict[str, str]:
    env = {
        "LIFECYCLE_TENANT_ENV_ID": identity.tenant_env_id,
        "LIFECYCLE_BATCH_OPERATION_ID": identity.batch_operation_id,
        "LIFECYCLE_OPERATION_NAME": identity.operation,
        "LIFECYCLE_TENANT_ENV_FILE": f"{mount_path.rstrip('/')}/{ENVIRONMENT_KEY}",
        "LIFECYCLE_CHANGESET_FILE": f"{mount_path.rstrip('/')}/{CHANGESET_KEY}",
        "LIFECYCLE_ATTEMPT": str(attempt),
    }
    if source_batch_operation_id:
        env["LIFECYCLE_SOURCE_BATCH_OPERATION_ID"] = source_batch_operation_id
    env.update(extra or {})
    return env


def build_pod(
    job: Mapping[str, Any],
    *,
    name: str,
    identity: RunIdentity,
    attempt: int,
    env: PodEnv,
    mount_path: str,
) -> JSON:
    """The pod for one attempt of ``job`` (see the module docstring for every change made)."""
    template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    spec: JSON = template.get("spec") or {}
    source = f"Job {identity.namespace}/{identity.job}"
    if not spec.get("containers"):
        raise ContractError(
            f"{source}: spec.template.spec.containers is empty",
            hint="give the Job's pod template at least one container",
        )
    volumes = list(spec.get("volumes") or [])
    if any(v.get("name") == CONTEXT_VOLUME for v in volumes):
        raise ContractError(
            f"{source}: spec.template.spec.volumes: the name {CONTEXT_VOLUME!r} is reserved",
            hint="rename that volume; the bridge mounts the tenant context under this name",
        )
    volumes.append({"name": CONTEXT_VOLUME, "secret": {"secretName": name}})
    spec["volumes"] = volumes
    spec["restartPolicy"] = "Never"
    for kind in ("initContainers", "containers"):
        if spec.get(kind):
            spec[kind] = [
                _inject(container, env=env, secret_name=name, mount_path=mount_path)
                for container in spec[kind]
            ]

    meta: JSON = template.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in JOB_CONTROLLER_LABELS}
    labels.update(identity.labels(attempt))
    annotations = dict(meta.get("annotations") or {})
    annotations.update(identity.annotations())
    metadata: JSON = {
        "name": name,
        "namespace": identity.namespace,
        "labels": labels,
        "annotations": annotations,
    }
    for key in ("finalizers",):
        if meta.get(key):
            metadata[key] = meta[key]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _inject(container: JSON, *, env: PodEnv, secret_name: str, mount_path: str) -> JSON:
    ours = set(env.values) | set(env.secret_keys)
    entries = [e for e in container.get("env") or [] if e.get("name") not in ours]
    entries += [{"name": k, "value": v} for k, v in env.values.items()]
    entries += [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
        for key in env.secret_keys
    ]
    container["env"] = entries
    mounts = list(container.get("volumeMounts") or [])
    mounts.append({"name": CONTEXT_VOLUME, "mountPath": mount_path, "readOnly": True})
    container["volumeMounts"] = mounts
    return container


def build_secret(
    *,
    name: str,
    identity: RunIdentity,
    attempt: int,
    environment_yaml: str,
    changeset_yaml: str,
    secret_env: Mapping[str, str] | None = None,
) -> JSON:
    """The per-run Secret: the tenant context files and the hook's secret env values."""
    data = {ENVIRONMENT_KEY: environment_yaml, CHANGESET_KEY: changeset_yaml}
    data.update(secret_env or {})
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": identity.namespace,
            "labels": identity.labels(attempt),
            "annotations": identity.annotations(),
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def owner_reference(pod: Mapping[str, Any]) -> JSON:
    """An ownerReference to ``pod``: the Secret is garbage-collected with it."""
    meta = pod.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "blockOwnerDeletion": False,
    }
