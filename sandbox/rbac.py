"""Authentication by bearer token and RBAC authorization, as the real authorizer decides.

Tokens map to users: the admin token (group ``system:masters``, bypasses RBAC), tokens issued
with :meth:`Tokens.issue`, and service-account tokens (``system:serviceaccount:<ns>:<name>``,
groups ``system:serviceaccounts``, ``system:serviceaccounts:<ns>``). Every authenticated user is
in ``system:authenticated``. Rules come from Roles and ClusterRoles bound by RoleBindings and
ClusterRoleBindings in the store; verbs, apiGroups, resources (``pods/log`` style
subresources, ``*``), resourceNames and nonResourceURLs are honoured. Denials are 403 with the
real server's message.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from .status import ApiError
from .store import Obj, Store

ADMIN_USER = "sandbox-admin"
MASTERS = "system:masters"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return MASTERS in self.groups


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True)
class Request:
    """One authorization question: may ``user`` do ``verb`` on this resource or path?"""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # set for non-resource requests

    @property
    def resource_text(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _service_account_groups(name: str) -> tuple[str, ...]:
    parts = name.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return ("system:serviceaccounts", f"system:serviceaccounts:{parts[2]}")
    return ()


class Tokens:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}
        self.admin_token = self.issue(ADMIN_USER, (MASTERS,))

    def issue(self, user: str, groups: Iterable[str] = ()) -> str:
        token = f"sandbox-{secrets.token_urlsafe(24)}"
        all_groups = list(groups)
        for group in (*_service_account_groups(user), "system:authenticated"):
            if group not in all_groups:
                all_groups.append(group)
        with self._lock:
            self._users[token] = User(user, tuple(all_groups))
        return token

    def authenticate(self, header: str | None) -> User | None:
        """The user behind an ``Authorization`` header; None for an unknown token."""
        if not header:
            return ANONYMOUS
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._lock:
            return self._users.get(token.strip())


def _subject_matches(subject: Obj, user: User, binding_ns: str) -> bool:
    kind = subject.get("kind")
    name = str(subject.get("name", ""))
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return user.name == f"system:serviceaccount:{ns}:{name}"
    return False


def _rule_allows(rule: Obj, req: Request) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and req.verb not in verbs:
        return False
    if req.path:
        return any(
            url in (req.path, "*") or (url.endswith("*") and req.path.startswith(url[:-1]))
            for url in rule.get("nonResourceURLs") or []
        )
    groups = rule.get("apiGroups") or []
    if "*" not in groups and req.group not in groups:
        return False
    wanted = req.resource_text
    resources = rule.get("resources") or []
    ok = False
    for res in resources:
        if res in ("*", wanted) or (
            req.subresource and res in (f"*/{req.subresource}", f"{req.resource}/*")
        ):
            ok = True
    if not ok:
        return False
    names = rule.get("resourceNames") or []
    return not names or (bool(req.name) and req.name in names)


class Authorizer:
    def __init__(self, store: Store, *, enabled: bool) -> None:
        self.store = store
        self.enabled = enabled

    def _role_rules(self, ref: Obj, namespace: str) -> list[Obj]:
        kind = ref.get("kind")
        if kind == "ClusterRole":
            role = self.store.get("clusterroles.rbac.authorization.k8s.io", "", ref.get("name", ""))
        elif kind == "Role":
            role = self.store.get("roles.rbac.authorization.k8s.io", namespace, ref.get("name", ""))
        else:
            role = None
        return list((role or {}).get("rules") or [])

    def rules_for(self, user: User, namespace: str) -> tuple[list[Obj], list[Obj]]:
        """(resource rules, non-resource rules) that apply to ``user`` in ``namespace``."""
        if not self.enabled or user.is_admin:
            return (
                [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            )
        rules: list[Obj] = []
        bindings = [
            (b, "")
            for _, b in self.store.candidates("clusterrolebindings.rbac.authorization.k8s.io", None)
        ]
        if namespace:
            bindings += [
                (b, namespace)
                for _, b in self.store.candidates(
                    "rolebindings.rbac.authorization.k8s.io", namespace
                )
            ]
        for binding, ns in bindings:
            if any(_subject_matches(s, user, ns) for s in binding.get("subjects") or []):
                rules += self._role_rules(binding.get("roleRef") or {}, ns)
        keys = ("verbs", "apiGroups", "resources", "resourceNames")
        resource: list[Obj] = [
            {k: r[k] for k in keys if k in r} for r in rules if r.get("resources")
        ]
        resource.append(
            {
                "verbs": ["create"],
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            }
        )
        non_resource = [
            {"verbs": r.get("verbs", []), "nonResourceURLs": r["nonResourceURLs"]}
            for r in rules
            if r.get("nonResourceURLs")
        ]
        non_resource.append(
            {
                "verbs": ["get"],
                "nonResourceURLs": [
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/version",
                    "/openapi",
                    "/openapi/*",
                ],
            }
        )
        return resource, non_resource

    def allowed(self, user: User, req: Request) -> bool:
        if not self.enabled or user.is_admin:
            return True
        if req.path in ("/version", "/healthz", "/livez", "/readyz"):
            return True  # system:public-info-viewer, bound to everyone, even anonymous
        if (
            req.path
            and "system:authenticated" in user.groups
            and (
                req.path in ("/version", "/api", "/apis", "/healthz", "/livez", "/readyz")
                or req.path.startswith(("/api/", "/apis/", "/openapi/"))
            )
        ):
            return True  # system:discovery and system:public-info-viewer
        if (
            req.group == "authorization.k8s.io"
            and req.resource in ("selfsubjectaccessreviews", "selfsubjectrulesreviews")
            and "system:authenticated" in user.groups
        ):
            return True  # system:basic-user
        crbs = self.store.candidates("clusterrolebindings.rbac.authorization.k8s.io", None)
        for _, binding in crbs:
            if any(_subject_matches(s, user, "") for s in binding.get("subjects") or []) and any(
                _rule_allows(rule, req)
                for rule in self._role_rules(binding.get("roleRef") or {}, "")
            ):
                return True
        if req.namespace and not req.path:
            rbs = self.store.candidates("rolebindings.rbac.authorization.k8s.io", req.namespace)
            for _, binding in rbs:
                if any(
                    _subject_matches(s, user, req.namespace) for s in binding.get("subjects") or []
                ) and any(
                    _rule_allows(rule, req)
                    for rule in self._role_rules(binding.get("roleRef") or {}, req.namespace)
                ):
                    return True
        return False

    def check(self, user: User, req: Request) -> None:
        if self.allowed(user, req):
            return
        raise forbidden(user, req)


def forbidden(user: User, req: Request) -> ApiError:
    if req.path:
        return ApiError(
            403,
            f'forbidden: User "{user.name}" cannot {req.verb} path "{req.path}"',
            details={},
        )
    qualified = f"{req.resource}.{req.group}" if req.group else req.resource
    subject = qualified + (f' "{req.name}"' if req.name else "")
    where = f'in the namespace "{req.namespace}"' if req.namespace else "at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{user.name}" cannot {req.verb} resource '
        f'"{req.resource_text}" in API group "{req.group}" {where}'
    )
    details: Obj = {"kind": req.resource}
    if req.name:
        details["name"] = req.name
    if req.group:
        details["group"] = req.group
    return ApiError(403, message, details=details)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


CLUSTER_ADMIN: Obj = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {
        "name": "cluster-admin",
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
    },
    "rules": [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ],
}
