"""Scripted images: image names that make the runtime show states no local process can produce.

The sandbox ignores images (a container's command runs as a local process), except for these
names under the reserved ``sandbox.invalid`` registry (``.invalid`` can never resolve):

* ``sandbox.invalid/pull-error`` (any tag): container waiting ``ErrImagePull``, then
  ``ImagePullBackOff``; pod Pending.
* ``sandbox.invalid/unschedulable``: condition PodScheduled False, reason ``Unschedulable``;
  pod Pending.
* ``sandbox.invalid/create-error``: container waiting ``CreateContainerError``.
* an unparsable reference (``Bad Image!``): container waiting ``InvalidImageName``.
"""

from __future__ import annotations

import re

PULL_ERROR = "sandbox.invalid/pull-error"
UNSCHEDULABLE = "sandbox.invalid/unschedulable"
CREATE_ERROR = "sandbox.invalid/create-error"

# The docker reference grammar, simplified: optional registry host[:port]/, lowercase path
# components, optional :tag, optional @digest.
_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,})?$"
)


def _repository(image: str) -> str:
    name = image.split("@", 1)[0]
    head, _, tail = name.rpartition("/")
    if ":" in tail:
        tail = tail.split(":", 1)[0]
    return f"{head}/{tail}" if head else tail


def is_valid_reference(image: str) -> bool:
    return bool(_REFERENCE.match(image))


def is_pull_error(image: str) -> bool:
    return _repository(image) == PULL_ERROR


def is_unschedulable(image: str) -> bool:
    return _repository(image) == UNSCHEDULABLE


def is_create_error(image: str) -> bool:
    return _repository(image) == CREATE_ERROR
