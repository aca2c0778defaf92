"""The storage side of the bridge runner's hook seam (:class:`bridge.hooks.RunHooks`).

For the four storage operations the bridge, not the team, owns the location, the credentials
and the verification:

* **exports** (``lifecycle.migrate-out``, ``lifecycle.backup``) write to the job's own location
  ``s3://<bucket>/<prefix template>``. ``before_pod`` injects the location and credentials;
  ``after_success`` seals the export (``_manifest.json``, see :mod:`bridge.export_manifest`)
  or fails the job when it wrote nothing or is still writing.
* **imports** (``lifecycle.migrate-in``, ``lifecycle.restore``) read the location of the export
  they continue: the same tenant, namespace and job, the batch given by the request's
  ``source_batch_operation_id``, and the export operation (migrate-in reads what migrate-out
  wrote, restore reads what backup wrote). ``before_pod`` verifies that export's manifest and
  refuses, naming the first failing key, before any pod exists.

Consequence of that mapping: the Job that imports is the Job that exported -- one Job annotated
for both ``lifecycle.migrate-out`` and ``lifecycle.migrate-in`` (and/or backup and restore), in
the same namespace with the same name in both regions. A Job annotated only for migrate-in has no
export to read and is refused ("no manifest").

Every other operation is a no-op. Credentials travel only in :attr:`Injection.secret_env` (the
per-run Secret); nothing here logs them.

Each storage job's result carries ``storage`` (:func:`storage_report`): the location, the
object count and bytes, and the sha256 of ``_manifest.json`` -- the export's as sealed, the
import's source as verified before its pod.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.errors import RefusedError, StorageError, UsageError
from bridge.export_manifest import (
    MANIFEST_KEY,
    ManifestVerificationError,
    seal_export,
    verify_location,
)
from bridge.hooks import Injection, RunContext
from bridge.storage import CredentialBroker, Credentials, Location, ObjectStore, session_name_for
from bridge.storage_settings import (
    ENV_PREFIX,
    CredentialsSource,
    StorageSettings,
    load_storage_settings,
)

log = logging.getLogger(__name__)

EXPORTS: Mapping[str, str] = {  # export operation -> retention class (lifecycle rule tag value)
    "lifecycle.migrate-out": "export",
    "lifecycle.backup": "backup",
}
IMPORTS: Mapping[str, str] = {  # import operation -> the export operation whose data it reads
    "lifecycle.migrate-in": "lifecycle.migrate-out",
    "lifecycle.restore": "lifecycle.backup",
}

ENV_URL = "LIFECYCLE_OBJECT_STORE_URL"
ENV_SOURCE_URL = "LIFECYCLE_OBJECT_STORE_SOURCE_URL"
ENV_ENDPOINT = "LIFECYCLE_OBJECT_STORE_ENDPOINT"
ENV_REGION = "LIFECYCLE_OBJECT_STORE_REGION"
ENV_ACCESS = "LIFECYCLE_OBJECT_STORE_ACCESS"  # "read-write" (exports) or "read-only" (imports)


def storage_report(
    location: Location, *, access: str, object_count: int, total_bytes: int, manifest_sha256: str
) -> dict[str, Any]:
    """A storage job's ``storage`` on its result (and so on the result event)."""
    return {
        "location": location.url,
        "access": access,  # "write" (exports) or "read" (imports)
        "objectCount": object_count,
        "bytes": total_bytes,
        "manifest": location.url + MANIFEST_KEY,
        "manifestSha256": manifest_sha256,
    }


def endpoint_for(settings: StorageSettings) -> str:
    """The S3 endpoint the pod should use: the configured one, else AWS's regional one."""
    if settings.endpoint_url:
        return settings.endpoint_url.rstrip("/")
    return f"https://s3.{settings.region}.amazonaws.com"


class StorageHooks:
    """RunHooks for the storage operations; construct once per bridge run with the settings."""

    def __init__(
        self,
        settings: StorageSettings,
        *,
        store: ObjectStore | None = None,
        broker: CredentialBroker | None = None,
    ) -> None:
        settings.require_pod_credentials()  # at the bridge's start, not at the first pod
        self.settings = settings
        self._store = store
        self._broker = broker
        self._owned_store = False
        self._owned_broker = False

    # Clients are made on first use (a bridge running lifecycle.upsert never touches S3) and
    # closed again at the end of each hook call: the runner owns no lifecycle for them, and a
    # pod may run for hours between before_pod and after_success.
    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = ObjectStore(self.settings)
            self._owned_store = True
        return self._store

    @property
    def broker(self) -> CredentialBroker:
        if self._broker is None:
            self._broker = CredentialBroker(self.settings)
            self._owned_broker = True
        return self._broker

    def close(self) -> None:
        """Close the clients these hooks made (injected ones belong to the caller)."""
        if self._store is not None and self._owned_store:
            self._store.close()
            self._store, self._owned_store = None, False
        if self._broker is not None and self._owned_broker:
            self._broker.close()
            self._broker, self._owned_broker = None, False

    # -- locations -----------------------------------------------------------------------------
    def location(self, ctx: RunContext) -> Location | None:
        """Where the job's pod reads (imports) or writes (exports); None for other operations."""
        if ctx.operation in EXPORTS:
            return self._location(ctx, operation=ctx.operation, batch=ctx.batch_operation_id)
        if ctx.operation in IMPORTS:
            source = ctx.source_batch_operation_id
            if not source:
                raise RefusedError(
                    f"{ctx.operation} of {ctx.namespace}/{ctx.job} has no source batch operation "
                    "id: it cannot know which export to read",
                    hint=f"pass the batch id of the {IMPORTS[ctx.operation]} it continues "
                    "(--source-batch-operation-id / request field sourceBatchOperationId)",
                )
            return self._location(ctx, operation=IMPORTS[ctx.operation], batch=source)
        return None

    def _location(self, ctx: RunContext, *, operation: str, batch: str) -> Location:
        try:
            prefix = self.settings.render_prefix(
                tenant=ctx.tenant_env_id,
                operation=operation,
                batch=batch,
                namespace=ctx.namespace,
                job=ctx.job,
            )
        except UsageError as exc:  # an id that cannot be a path segment: never trust it
            raise RefusedError(exc.message, hint=exc.hint) from exc
        return Location(self.settings.bucket, prefix)

    # -- the seam ------------------------------------------------------------------------------
    def before_pod(self, ctx: RunContext) -> Injection:
        try:
            return self._before_pod(ctx)
        finally:
            self.close()

    def after_success(self, ctx: RunContext) -> Mapping[str, Any] | None:
        try:
            return self._after_success(ctx)
        finally:
            self.close()

    def _before_pod(self, ctx: RunContext) -> Injection:
        location = self.location(ctx)
        if location is None:
            return Injection()
        write = ctx.operation in EXPORTS
        source: dict[str, Any] = {}
        if not write:
            report = verify_location(self.store, location)
            if not report.ok:
                error = ManifestVerificationError(report)
                raise RefusedError(error.message, hint=error.hint) from error
            log.info(
                "storage: source %s verified: %d objects, every size and sha256 equal",
                location.url,
                report.checked,
            )
            source = storage_report(
                location,
                access="read",
                object_count=report.checked,
                total_bytes=report.total_bytes,
                manifest_sha256=report.manifest_sha256,
            )
        env = {
            ENV_URL: location.url,
            ENV_ENDPOINT: endpoint_for(self.settings),
            ENV_REGION: self.settings.region,
            ENV_ACCESS: "read-write" if write else "read-only",
            # So that boto3 / the AWS CLI in the pod need no configuration of their own.
            "AWS_DEFAULT_REGION": self.settings.region,
            "AWS_ENDPOINT_URL_S3": endpoint_for(self.settings),
        }
        if not write:
            env[ENV_SOURCE_URL] = location.url
        credentials = self._credentials(ctx, location, write=write)
        secret_env = {
            "AWS_ACCESS_KEY_ID": credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        }
        if credentials.session_token:
            secret_env["AWS_SESSION_TOKEN"] = credentials.session_token
        return Injection(env=env, secret_env=secret_env, report=source)

    def _after_success(self, ctx: RunContext) -> Mapping[str, Any] | None:
        if ctx.operation not in EXPORTS:
            return None  # an import's report came with its verification, before the pod
        location = self.location(ctx)
        assert location is not None  # an export always has one
        context = {
            "tenantEnvId": ctx.tenant_env_id,
            "operation": ctx.operation,
            "batchOperationId": ctx.batch_operation_id,
            "namespace": ctx.namespace,
            "job": ctx.job,
        }
        if ctx.workflow_name:
            context["workflow"] = ctx.workflow_name
        manifest = seal_export(
            self.store, location, context=context, retention=EXPORTS[ctx.operation]
        )
        log.info(
            "storage: sealed %s: %d objects, %d bytes (%s)",
            location.url,
            len(manifest.entries),
            manifest.total_bytes,
            "_manifest.json",
        )
        return storage_report(
            location,
            access="write",
            object_count=len(manifest.entries),
            total_bytes=manifest.total_bytes,
            manifest_sha256=manifest.sha256,
        )

    def _credentials(self, ctx: RunContext, location: Location, *, write: bool) -> Credentials:
        if self.settings.credentials is CredentialsSource.STATIC:
            # The operator's opt-in for stores without STS: these keys are NOT limited to the
            # job's prefix; the store's own identity policy is the only fence (docs/storage.md).
            log.warning(
                "storage: credentials=static: %s/%s gets keys that are not scoped to %s",
                ctx.namespace,
                ctx.job,
                location.url,
            )
            key, secret = self.settings.access_key_id, self.settings.secret_access_key
            if not key or not secret:  # StorageSettings refuses this; keep mypy and us honest
                raise StorageError("credentials=static without keys", hint="set both keys")
            return Credentials(key, secret)
        return self.broker.assume_role_for(
            location,
            session_name=session_name_for("lc", ctx.batch_operation_id, ctx.namespace, ctx.job),
            write=write,
        )


class UnconfiguredStorageHooks:
    """The hooks when no storage settings were given: storage operations are refused."""

    def before_pod(self, ctx: RunContext) -> Injection:
        if ctx.operation in EXPORTS or ctx.operation in IMPORTS:
            raise RefusedError(
                f"{ctx.operation} of {ctx.namespace}/{ctx.job} needs object storage, and the "
                "bridge has no storage settings",
                hint=f"give the bridge --storage-config FILE or {ENV_PREFIX}BUCKET and friends "
                "(docs/storage.md)",
            )
        return Injection()

    def after_success(self, ctx: RunContext) -> None:
        return None


def hooks_from_env(
    env: Mapping[str, str] | None = None,
) -> StorageHooks | UnconfiguredStorageHooks:
    """The hooks ``python -m bridge run`` uses (``bridge.runner.load_hooks`` calls this).

    Settings: the YAML file named by ``BRIDGE_STORAGE_CONFIG`` (optional) overlaid with
    ``BRIDGE_STORAGE_*`` variables. Raises UsageError on invalid settings, at the bridge's start.
    """
    env = os.environ if env is None else env
    return storage_hooks_from(env.get(ENV_PREFIX + "CONFIG") or None, env=env)


def storage_hooks_from(
    path: str | Path | None = None, *, env: Mapping[str, str]
) -> StorageHooks | UnconfiguredStorageHooks:
    """The hooks for a bridge entry point: storage settings from ``path`` and ``BRIDGE_STORAGE_*``.

    Without a file and without ``BRIDGE_STORAGE_BUCKET``, storage is not configured: storage
    operations are refused, every other operation runs as usual.
    """
    if path is None and not env.get(ENV_PREFIX + "BUCKET"):
        return UnconfiguredStorageHooks()
    return StorageHooks(load_storage_settings(path, env=env))
