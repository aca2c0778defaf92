"""Object storage as the rest of the bridge sees it: locations, listings, credentials and the
errors, with no boto3 in sight.

Why apart from the adapter (:mod:`bridge.storage`, the only module that imports boto3): the
storage hooks, the export manifest and ``tenantctl storage`` reason about locations, session
policies and session names without talking to a store.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.errors import StorageError


class StorageUnavailableError(StorageError):
    """The object store or STS could not be reached or answered 5xx/throttling: worth retrying."""


class ObjectChangedError(StorageError):
    """An object changed between listing and reading it (someone is still writing)."""


class ObjectMissingError(StorageError):
    """An object that should exist does not."""


@dataclass(frozen=True)
class Location:
    """An ``s3://bucket/prefix/`` location; the prefix is empty or ends with ``/``."""

    bucket: str
    prefix: str

    def __post_init__(self) -> None:
        if not self.bucket or "/" in self.bucket:
            raise StorageError(f"storage location: bucket {self.bucket!r} is not a bucket name")
        if self.prefix and not self.prefix.endswith("/"):
            raise StorageError(
                f"storage location: prefix {self.prefix!r} must end with '/'",
                hint="a location is a folder: s3://bucket/some/prefix/",
            )

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, relative: str) -> str:
        """The full object key of ``relative`` inside this location."""
        return self.prefix + relative

    @classmethod
    def parse(cls, url: str) -> Location:
        """``s3://bucket/prefix/`` (a missing trailing ``/`` is added) to a Location."""
        match = re.match(r"^s3://([^/]+)/?(.*)$", url)
        if not match:
            raise StorageError(
                f"storage location {url!r} is not an s3:// URL", hint="e.g. s3://bucket/prefix/"
            )
        prefix = match.group(2)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return cls(bucket=match.group(1), prefix=prefix)

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime | None = None


@dataclass(frozen=True)
class MultipartUpload:
    key: str
    upload_id: str
    initiated: datetime | None = None


@dataclass(frozen=True)
class Credentials:
    """Keys handed to a job's pod. Only ``access_key_id`` shows in a repr."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None


def session_policy(location: Location, *, write: bool) -> dict[str, Any]:
    """The IAM session policy that limits assumed-role keys to one location.

    Reads may list the prefix (``s3:prefix`` condition) and get objects under it; writes may
    also put and delete them and abort their own multipart uploads. The effective permissions
    are the intersection with the role's own policy, so this can only narrow the role.
    """
    objects = f"arn:aws:s3:::{location.bucket}/{location.prefix}*"
    object_actions = ["s3:GetObject"]
    if write:
        object_actions += ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListOwnPrefix",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{location.bucket}"],
                "Condition": {"StringLike": {"s3:prefix": [f"{location.prefix}*"]}},
            },
            {
                "Sid": "ReadWrite" if write else "Read",
                "Effect": "Allow",
                "Action": object_actions,
                "Resource": [objects],
            },
        ],
    }


def session_name_for(*parts: str) -> str:
    """An STS RoleSessionName (2-64 chars of ``[\\w+=,.@-]``) that identifies the job run."""
    raw = "-".join(parts)
    cleaned = re.sub(r"[^\w+=,.@-]", "-", raw)
    if len(cleaned) <= 64:
        return cleaned if len(cleaned) >= 2 else f"lc-{cleaned}"
    digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
    return f"{cleaned[:53]}-{digest}"
