"""What the rendered Argo and Kubernetes manifests are parameterised by.

One frozen dataclass, built once at the entry point (``tenantctl render``) and passed to every
builder. The defaults are what the committed files under ``workflows/rendered/`` and ``deploy/``
are rendered with, so the drift test can rebuild them without any environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

DEFAULT_IMAGE = "ghcr.io/tenant-lifecycle/tenant-lifecycle:0.1.0"
DEFAULT_PREFIX = "tenant-lifecycle.dev"
IMAGE_ENV = "TENANT_LIFECYCLE_IMAGE"

GENERATED_HEADER = "# generated — do not edit; regenerate with: tenantctl render\n"


@dataclass(frozen=True)
class WorkflowSettings:
    """Names, image and limits baked into the rendered manifests."""

    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    prefix: str = DEFAULT_PREFIX
    # Where the WorkflowTemplate lives and the Workflows, Argo Events objects and platform
    # service accounts run.
    workflow_namespace: str = "tenant-lifecycle"
    template_name: str = "tenant-lifecycle"
    bridge_service_account: str = "tenant-lifecycle-bridge"
    discovery_service_account: str = "tenant-lifecycle-discovery"
    orchestrator_service_account: str = "tenant-lifecycle-orchestrator"
    events_service_account: str = "tenant-lifecycle-events"
    sweeper_service_account: str = "tenant-lifecycle-sweeper"
    # `python -m bridge sweep` as a CronJob: pods/Secrets left by terminated workflows.
    sweep_schedule: str = "*/30 * * * *"
    sweep_older_than: str = "2h"
    settings_config_map: str = "tenant-lifecycle-settings"
    # Optional Secret with BRIDGE_STORAGE_* static keys for backends without STS (docs/storage.md).
    storage_secret: str = "tenant-lifecycle-storage"  # noqa: S105 (a Secret's name, not a value)
    # Argo cannot take a template's ``parallelism`` from a parameter (argoproj/argo-workflows
    # #1780: the field is an int64), so the wave templates are rendered once per level and the
    # ``parallelism`` parameter selects the highest level not above it (never more bridges at
    # once than asked for). Ascending, starting at 1; the last is the ceiling.
    parallelism_levels: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    default_parallelism: int = 8
    active_deadline_seconds: int = 6 * 3600
    # Bridge pods retried only on exit 75 (infrastructure); the bridge itself already retried
    # the API with backoff before giving up, so a few attempts spaced out are enough.
    bridge_retry_limit: int = 4
    bridge_retry_backoff: str = "15s"
    bridge_retry_backoff_cap: str = "5m"
    ttl_seconds_after_success: int = 24 * 3600
    ttl_seconds_after_failure: int = 7 * 24 * 3600
    pod_gc_delete_delay: str = "10m"
    # Argo Events: the Pub/Sub subscription the EventSource reads requests from.
    pubsub_project: str = "my-gcp-project"
    pubsub_request_topic: str = "tenant-lifecycle-requests"
    pubsub_subscription: str = "tenant-lifecycle-argo-events"
    pubsub_results_topic: str = "tenant-lifecycle-results"
    pubsub_credentials_secret: str = "tenant-lifecycle-pubsub"  # noqa: S105 - a Secret name
    event_source_name: str = "tenant-lifecycle-pubsub"
    event_name: str = "requests"
    sensor_name: str = "tenant-lifecycle"
    request_event_type: str = "dev.tenant-lifecycle.operation.requested"
    # The example managed team namespace rendered as a kustomize overlay.
    example_team_namespace: str = "team-example"
    # Resource requests of the platform's own containers (bridge, discovery, exit handler).
    container_requests: Mapping[str, str] = field(
        default_factory=lambda: {"cpu": "50m", "memory": "128Mi"}
    )
    container_limits: Mapping[str, str] = field(
        default_factory=lambda: {"cpu": "500m", "memory": "256Mi"}
    )

    def __post_init__(self) -> None:
        levels = self.parallelism_levels
        if not levels or levels[0] != 1 or list(levels) != sorted(set(levels)):
            raise ValueError(
                f"parallelism_levels must be ascending distinct integers starting at 1, "
                f"not {levels!r}"
            )
        if self.default_parallelism < 1:
            raise ValueError(f"default_parallelism must be >= 1, not {self.default_parallelism}")

    def parallelism_level(self, requested: int) -> int:
        """The wave parallelism Argo runs with when ``requested`` is asked for."""
        return max((lvl for lvl in self.parallelism_levels if lvl <= requested), default=1)

    @property
    def enabled_label(self) -> str:
        """The label that opts a namespace (and a Job) in."""
        return f"{self.prefix}/enabled"

    def label(self, name: str) -> str:
        """A label or annotation key under the contract prefix."""
        return f"{self.prefix}/{name}"

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: object) -> WorkflowSettings:
        """Defaults, then ``TENANT_LIFECYCLE_IMAGE`` when set, then explicit overrides."""
        settings = cls()
        image = env.get(IMAGE_ENV)
        if image:
            settings = replace(settings, image=image)
        return replace(settings, **overrides) if overrides else settings  # type: ignore[arg-type]
