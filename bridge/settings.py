"""Typed settings of the bridge programs (discover, run, sweep), loaded once at the entry point."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.contract import ContractSettings
from bridge.kube import KubeSettings

# Where the per-run Secret (environment.yaml, changeset.yaml) is mounted in every container.
DEFAULT_MOUNT_PATH = "/var/run/tenant-lifecycle"


@dataclass(frozen=True)
class BridgeSettings:
    """How the bridge runs a Job's pod.

    ``stuck_grace_seconds``: how long a pod may sit in ErrImagePull/ImagePullBackOff/
    CreateContainerConfigError/InvalidImageName/Unschedulable before the bridge gives up (image
    pulls do retry on their own, so a short blip must not fail a tenant's operation).
    ``unschedulable_grace_seconds``: the same for Unschedulable, longer by default because a
    cluster autoscaler adding a node takes minutes.
    ``delete_grace_seconds``: grace for pods the bridge deletes (None: the pod's own
    ``terminationGracePeriodSeconds``, else 30 s, as Kubernetes does).
    ``max_ignored_failures``: a podFailurePolicy ``Ignore`` rule does not count an attempt, so
    without a cap a pod that always hits it would be recreated forever.
    """

    contract: ContractSettings = field(default_factory=ContractSettings)
    kube: KubeSettings = field(default_factory=KubeSettings)
    mount_path: str = DEFAULT_MOUNT_PATH
    stuck_grace_seconds: float = 120.0
    unschedulable_grace_seconds: float = 600.0
    delete_grace_seconds: int | None = None
    log_drain_timeout: float = 15.0
    log_reconnect_delay: float = 0.5
    watch_timeout_seconds: int = 60
    max_ignored_failures: int = 20
