"""Defaulting the real server applies on create, pod-spec immutability, and CRD registration.

Clients see these fields in what they read back (a Job's generated selector and template labels,
a pod's restartPolicy and grace period, a namespace's phase), so code written against the
sandbox meets the same objects it will meet on a cluster.
"""

from __future__ import annotations

from typing import Any

from .resources import Registry, ResourceType
from .status import invalid

Obj = dict[str, Any]


def apply(rtype: ResourceType, obj: Obj) -> None:
    if rtype.key == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
        labels = obj["metadata"].setdefault("labels", {})
        labels.setdefault("kubernetes.io/metadata.name", obj["metadata"].get("name", ""))
    elif rtype.key == "pods":
        _pod_spec(obj.setdefault("spec", {}))
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif rtype.key == "jobs.batch":
        _job(obj)
    elif rtype.has_status and rtype.group in ("", "batch"):
        obj["status"] = {}


def _pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    for field in ("containers", "initContainers"):
        for container in spec.get(field) or []:
            if not isinstance(container, dict):
                continue
            image = str(container.get("image", ""))
            tag = image.rsplit("/", 1)[-1]
            latest = ":" not in tag or tag.endswith(":latest")
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            resources = container.setdefault("resources", {})
            _requests_from_limits(resources)


def _requests_from_limits(resources: Obj) -> None:
    """As the API's defaulting: a resource with a limit and no request is requested at its limit."""
    limits = resources.get("limits")
    if not isinstance(limits, dict) or not limits:
        return
    requests = resources.get("requests")
    if not isinstance(requests, dict):
        requests = {}
    for name, value in limits.items():
        requests.setdefault(name, value)
    resources["requests"] = requests


def _job(job: Obj) -> None:
    meta = job["metadata"]
    uid = meta["uid"]
    name = meta.get("name", "")
    spec = job.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = tmeta.setdefault("labels", {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
    tspec = template.setdefault("spec", {})
    policy = tspec.get("restartPolicy")
    if policy not in ("Never", "OnFailure"):
        raise invalid(
            "Job",
            "batch",
            name,
            [
                (
                    "spec.template.spec.restartPolicy",
                    "FieldValueRequired" if policy is None else "FieldValueNotSupported",
                    'Required value: valid values: "OnFailure", "Never"'
                    if policy is None
                    else f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
                )
            ],
        )
    _pod_spec(tspec)
    job["status"] = {}


_MUTABLE_POD_FIELDS = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def check_pod_update(old: Obj, new: Obj) -> None:
    """Pod specs are immutable apart from images, the deadline and tolerations."""

    def strip(spec: Obj) -> Obj:
        out = {k: v for k, v in spec.items() if k not in _MUTABLE_POD_FIELDS}
        for field in ("containers", "initContainers"):
            if field in out:
                out[field] = [
                    {k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
                    for c in out[field]
                ]
        return out

    if strip(old.get("spec") or {}) != strip(new.get("spec") or {}):
        raise invalid(
            "Pod",
            "",
            old["metadata"]["name"],
            [
                (
                    "spec",
                    "FieldValueForbidden",
                    "Forbidden: pod updates may not change fields other than "
                    "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                    "`spec.activeDeadlineSeconds`,`spec.tolerations` "
                    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                    "(allow it to be set to 1 if it was previously negative)",
                )
            ],
        )


def register_crd(registry: Registry, crd: Obj) -> None:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        registry.add(
            ResourceType(
                group=spec.get("group", ""),
                version=version.get("name", "v1"),
                plural=names.get("plural", ""),
                kind=names.get("kind", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                has_status="status" in (version.get("subresources") or {}),
                subresources=("status",) if "status" in (version.get("subresources") or {}) else (),
            )
        )


def unregister_crd(registry: Registry, crd: Obj) -> None:
    spec = crd.get("spec") or {}
    plural = (spec.get("names") or {}).get("plural", "")
    for version in spec.get("versions") or []:
        registry.remove(spec.get("group", ""), version.get("name", ""), plural)
