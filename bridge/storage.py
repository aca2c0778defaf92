"""The object-storage adapter: the only product module that imports boto3 / botocore.

It speaks S3 (Amazon S3, or an S3-compatible store such as SeaweedFS, MinIO or Ceph through
``endpoint_url`` with path-style addressing) and STS, and turns every botocore failure into a
:class:`~bridge.errors.StorageError` with the original chained. Above this module nothing knows
about boto3: locations are :class:`Location`, listings are :class:`ObjectInfo`, credentials are
:class:`Credentials` (whose secret parts never show in a repr).

Large objects are hashed while they stream (1 MiB chunks), never held in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

import boto3
import botocore.exceptions
from botocore.config import Config

from bridge.errors import StorageError
from bridge.storage_model import (
    Credentials,
    Location,
    MultipartUpload,
    ObjectChangedError,
    ObjectInfo,
    ObjectMissingError,
    StorageUnavailableError,
    session_name_for,
    session_policy,
)
from bridge.storage_settings import StorageSettings

# The storage vocabulary stays importable from the adapter, where callers have always found it.
__all__ = [
    "CHUNK_SIZE",
    "CredentialBroker",
    "Credentials",
    "Location",
    "MultipartUpload",
    "ObjectChangedError",
    "ObjectInfo",
    "ObjectMissingError",
    "ObjectStore",
    "StorageUnavailableError",
    "session_name_for",
    "session_policy",
]

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

CHUNK_SIZE = 1024 * 1024
# Why: botocore logs whole response bodies at DEBUG, and an STS response body holds a secret key.
# Whatever the entry point configures, these loggers never go below INFO.
for _name in ("botocore", "boto3", "urllib3"):
    _logger = logging.getLogger(_name)
    if _logger.level < logging.INFO:
        _logger.setLevel(logging.INFO)

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchLifecycleConfiguration"})
_TRANSIENT_CODES = frozenset(
    {
        "500",
        "502",
        "503",
        "504",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
    }
)


_session_lock = threading.Lock()
_shared_session: boto3.session.Session | None = None


def _session() -> boto3.session.Session:
    """One boto3 session per process, for making clients only.

    Why: a new session parses the S3 service model again (~0.2 s of CPU per client). Clients get
    their credentials and endpoint explicitly from the settings, so sharing the session shares
    no configuration between callers; the lock makes client creation thread-safe.
    """
    global _shared_session  # noqa: PLW0603 - a cache, not configuration
    with _session_lock:
        if _shared_session is None:
            _shared_session = boto3.session.Session()
        return _shared_session


def _client(service: str, **kwargs: Any) -> Any:
    session = _session()
    with _session_lock:
        return session.client(service, **kwargs)  # type: ignore[call-overload]


def _client_config(settings: StorageSettings) -> Config:
    s3: dict[str, Any] = {"addressing_style": "path" if settings.endpoint_url else "auto"}
    return Config(
        region_name=settings.region,
        s3=s3,  # type: ignore[arg-type]
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=16,
    )


def _describe(exc: Exception) -> tuple[str, str]:
    """(code, message) of a botocore exception, never including request parameters."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(error.get("Code") or status or "Unknown")
        return code, str(error.get("Message") or code)
    return type(exc).__name__, str(exc)


def _error_code(exc: Exception) -> str:
    return _describe(exc)[0]


def _translate(exc: Exception, what: str) -> StorageError:
    code, message = _describe(exc)
    if isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectionClosedError
        | botocore.exceptions.ReadTimeoutError
        | botocore.exceptions.ConnectTimeoutError,
    ):
        return StorageUnavailableError(
            f"{what}: cannot reach the object store ({message})",
            hint="check the endpoint URL and the network",
        )
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return StorageError(
            f"{what}: no credentials found",
            hint="set BRIDGE_STORAGE_ACCESS_KEY_ID/SECRET_ACCESS_KEY or give the bridge a role",
        )
    if code in _TRANSIENT_CODES:
        return StorageUnavailableError(f"{what}: {code}: {message}", hint="transient; retry")
    hints = {
        "AccessDenied": "the bridge's credentials may not do this; check its IAM policy",
        "InvalidAccessKeyId": "the access key is unknown to the object store",
        "SignatureDoesNotMatch": "the secret key does not match the access key",
        "NoSuchBucket": "create the bucket or fix the bucket setting",
    }
    return StorageError(f"{what}: {code}: {message}", hint=hints.get(code))


class ObjectStore:
    """S3 calls the product needs, with errors translated. Thread-safe (one boto3 client)."""

    def __init__(self, settings: StorageSettings, *, client: S3Client | None = None) -> None:
        self.settings = settings
        if client is None:
            try:
                client = _client(
                    "s3",
                    endpoint_url=settings.endpoint_url,
                    aws_access_key_id=settings.access_key_id,
                    aws_secret_access_key=settings.secret_access_key,
                    config=_client_config(settings),
                )
            except botocore.exceptions.BotoCoreError as exc:
                raise _translate(exc, "creating the S3 client") from exc
        self._s3 = client

    def close(self) -> None:
        self._s3.close()

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- buckets -------------------------------------------------------------------------------
    def create_bucket(self, bucket: str) -> None:
        try:
            self._s3.create_bucket(Bucket=bucket)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _translate(exc, f"creating bucket {bucket}") from exc

    def put_lifecycle_rules(self, bucket: str, rules: Sequence[Mapping[str, Any]]) -> None:
        """Replace the bucket's lifecycle configuration with ``rules`` (S3 JSON shape)."""
        try:
            self._s3.put_bucket_lifecycle_configuration(
                Bucket=bucket,
                LifecycleConfiguration={"Rules": [dict(r) for r in rules]},  # type: ignore[misc]
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _translate(
                exc, f"putting the lifecycle configuration of bucket {bucket}"
            ) from exc

    def get_lifecycle_rules(self, bucket: str) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules; ``[]`` when it has no configuration."""
        try:
            response = self._s3.get_bucket_lifecycle_configuration(Bucket=bucket)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return []
            raise _translate(
                exc, f"reading the lifecycle configuration of bucket {bucket}"
            ) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise _translate(
                exc, f"reading the lifecycle configuration of bucket {bucket}"
            ) from exc
        return [dict(rule) for rule in response.get("Rules", [])]

    # -- listing -------------------------------------------------------------------------------
    def list_objects(self, location: Location, *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Every object under the location, in key order, following continuation tokens."""
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=location.bucket,
                Prefix=location.prefix,
                PaginationConfig={"PageSize": page_size},
            ):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"],
                        size=int(item.get("Size", 0)),
                        etag=str(item.get("ETag", "")).strip('"'),
                        last_modified=item.get("LastModified"),
                    )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _translate(exc, f"listing {location}") from exc

    def list_multipart_uploads(self, location: Location) -> list[MultipartUpload]:
        """Multipart uploads started under the location and neither completed nor aborted."""
        uploads: list[MultipartUpload] = []
        paginator = self._s3.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
                for item in page.get("Uploads", []):
                    uploads.append(
                        MultipartUpload(
                            key=item.get("Key", ""),
                            upload_id=item.get("UploadId", ""),
                            initiated=item.get("Initiated"),
                        )
                    )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _translate(exc, f"listing multipart uploads under {location}") from exc
        return uploads

    # -- objects -------------------------------------------------------------------------------
    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's size and ETag, or None when it does not exist."""
        try:
            response = self._s3.head_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise _translate(exc, f"reading s3://{bucket}/{key}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise _translate(exc, f"reading s3://{bucket}/{key}") from exc
        return ObjectInfo(
            key=key,
            size=int(response.get("ContentLength", 0)),
            etag=str(response.get("ETag", "")).strip('"'),
            last_modified=response.get("LastModified"),
        )

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes | IO[bytes],
        *,
        content_type: str = "application/octet-stream",
    ) -> None:
        """Write one object (a file object streams; boto3 reads it once)."""
        try:
            self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _translate(exc, f"writing s3://{bucket}/{key}") from exc

    def get_object(
        self, bucket: str, key: str, *, max_bytes: int = 64 * 1024 * 1024
    ) -> bytes | None:
        """A small object's content (manifests), or None when it does not exist."""
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key)
            if int(response.get("ContentLength", 0)) > max_bytes:
                response["Body"].close()
                raise StorageError(
                    f"s3://{bucket}/{key} is larger than {max_bytes} bytes",
                    hint="this call is for small objects; stream large ones",
                )
            body = response["Body"]
            try:
                return body.read()
            finally:
                body.close()
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise _translate(exc, f"reading s3://{bucket}/{key}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise _translate(exc, f"reading s3://{bucket}/{key}") from exc

    def sha256(self, bucket: str, key: str, *, if_match: str | None = None) -> tuple[str, int]:
        """(hex sha256, size) of an object, hashed while streaming in 1 MiB chunks.

        ``if_match`` (an ETag) makes the read fail when the object changed since it was listed.
        A missing object raises :class:`ObjectMissingError`, a changed one
        :class:`ObjectChangedError`.
        """
        digest = hashlib.sha256()
        size = 0
        what = f"reading s3://{bucket}/{key}"
        try:
            if if_match:
                response = self._s3.get_object(Bucket=bucket, Key=key, IfMatch=f'"{if_match}"')
            else:
                response = self._s3.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            try:
                for chunk in body.iter_chunks(CHUNK_SIZE):
                    digest.update(chunk)
                    size += len(chunk)
            finally:
                body.close()
        except botocore.exceptions.ClientError as exc:
            code = _error_code(exc)
            if code in ("PreconditionFailed", "412"):
                raise ObjectChangedError(f"{what}: the object changed since it was listed") from exc
            if code in _NOT_FOUND_CODES:
                raise ObjectMissingError(f"{what}: the object does not exist") from exc
            raise _translate(exc, what) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise _translate(exc, what) from exc
        return digest.hexdigest(), size

    def delete_object(self, bucket: str, key: str) -> None:
        try:
            self._s3.delete_object(Bucket=bucket, Key=key)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _translate(exc, f"deleting s3://{bucket}/{key}") from exc

    def put_object_tags(self, bucket: str, key: str, tags: Mapping[str, str]) -> None:
        try:
            self._s3.put_object_tagging(
                Bucket=bucket,
                Key=key,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]},
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _translate(exc, f"tagging s3://{bucket}/{key}") from exc

    def get_object_tags(self, bucket: str, key: str) -> dict[str, str]:
        try:
            response = self._s3.get_object_tagging(Bucket=bucket, Key=key)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _translate(exc, f"reading the tags of s3://{bucket}/{key}") from exc
        return {t["Key"]: t["Value"] for t in response.get("TagSet", [])}


# -- STS ---------------------------------------------------------------------------------------


class CredentialBroker:
    """Mints credentials for a job's pod: STS AssumeRole scoped to the location."""

    def __init__(self, settings: StorageSettings, *, client: STSClient | None = None) -> None:
        self.settings = settings
        if client is None:
            try:
                client = _client(
                    "sts",
                    endpoint_url=settings.sts_endpoint_url,
                    aws_access_key_id=settings.access_key_id,
                    aws_secret_access_key=settings.secret_access_key,
                    config=Config(region_name=settings.region, retries={"mode": "standard"}),
                )
            except botocore.exceptions.BotoCoreError as exc:
                raise _translate(exc, "creating the STS client") from exc
        self._sts = client

    def close(self) -> None:
        self._sts.close()

    def assume_role_for(self, location: Location, *, session_name: str, write: bool) -> Credentials:
        if not self.settings.role_arn:
            raise StorageError("STS credentials need role_arn", hint="set BRIDGE_STORAGE_ROLE_ARN")
        policy = json.dumps(session_policy(location, write=write), separators=(",", ":"))
        try:
            response = self._sts.assume_role(
                RoleArn=self.settings.role_arn,
                RoleSessionName=session_name,
                Policy=policy,
                DurationSeconds=self.settings.session_duration_seconds,
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _translate(exc, f"assuming role {self.settings.role_arn} for {location}") from exc
        creds = response["Credentials"]
        return Credentials(
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretAccessKey"],
            session_token=creds.get("SessionToken"),
            expiration=creds.get("Expiration"),
        )
