"""RBAC in the workflow namespace and cluster-wide: one account per role, each with only what its
pods do (the least-privilege story in :mod:`workflows.install`). The team namespaces' own
bindings of the bridge and the sweeper are in :mod:`workflows.install.team`."""

from __future__ import annotations

from workflows.settings import WorkflowSettings

from .common import (
    BRIDGE_CLUSTER_ROLE,
    BRIDGE_NAMESPACES_CLUSTER_ROLE,
    DISCOVERY_CLUSTER_ROLE,
    EXECUTOR_ROLE,
    OPERATOR_ROLE,
    ORCHESTRATOR_ROLE,
    SUBMITTER_ROLE,
    SWEEPER_CLUSTER_ROLE,
    SWEEPER_NAMESPACES_CLUSTER_ROLE,
    SWEEPER_ROLE,
    Manifest,
    cluster_role,
    cluster_role_binding,
    role,
    role_binding,
    rule,
    service_account_subject,
)


def discovery_rbac(settings: WorkflowSettings) -> list[Manifest]:
    """Discovery: read namespaces and Jobs everywhere (label-selected lists), write nothing."""
    account = service_account_subject(
        settings.discovery_service_account, settings.workflow_namespace
    )
    return [
        cluster_role(
            DISCOVERY_CLUSTER_ROLE,
            [
                rule([""], ["namespaces"], ["get", "list", "watch"]),
                rule(["batch"], ["jobs"], ["get", "list", "watch"]),
            ],
        ),
        cluster_role_binding(DISCOVERY_CLUSTER_ROLE, [account]),
    ]


def bridge_rbac(settings: WorkflowSettings) -> list[Manifest]:
    """The bridge's ClusterRole (bound per team namespace) and its cluster-wide namespace read."""
    account = service_account_subject(settings.bridge_service_account, settings.workflow_namespace)
    return [
        cluster_role(
            BRIDGE_CLUSTER_ROLE,
            [
                rule([""], ["pods"], ["create", "get", "list", "watch", "delete"]),
                rule([""], ["pods/log"], ["get"]),
                # The per-run Secret carries tenant data in; the bridge never reads Secrets.
                # No `patch` either: a PATCH answers with the whole object, a read in disguise
                # (the bridge creates the pod first and its Secret already owned by it).
                rule([""], ["secrets"], ["create", "delete"]),
                rule(["batch"], ["jobs"], ["get"]),
            ],
        ),
        cluster_role(BRIDGE_NAMESPACES_CLUSTER_ROLE, [rule([""], ["namespaces"], ["get"])]),
        cluster_role_binding(BRIDGE_NAMESPACES_CLUSTER_ROLE, [account]),
    ]


def sweeper_rbac(settings: WorkflowSettings) -> list[Manifest]:
    """The sweeper: bound per managed namespace, lists namespaces, reads Workflows."""
    ns = settings.workflow_namespace
    subject = [service_account_subject(settings.sweeper_service_account, ns)]
    return [
        cluster_role(
            SWEEPER_CLUSTER_ROLE,
            [
                rule([""], ["pods"], ["list", "delete"]),
                # RBAC cannot restrict a list to a label selector: this is why the sweeper has
                # its own account and the bridge has no list on Secrets at all.
                rule([""], ["secrets"], ["list", "delete"]),
            ],
        ),
        cluster_role(SWEEPER_NAMESPACES_CLUSTER_ROLE, [rule([""], ["namespaces"], ["list"])]),
        cluster_role_binding(SWEEPER_NAMESPACES_CLUSTER_ROLE, subject),
        role(SWEEPER_ROLE, ns, [rule(["argoproj.io"], ["workflows"], ["get"])]),
        role_binding(SWEEPER_ROLE, ns, subject),
    ]


def workflow_rbac(settings: WorkflowSettings) -> list[Manifest]:
    """Roles in the workflow namespace: the Argo executor's, the orchestrator's, the Sensor's."""
    ns = settings.workflow_namespace
    pod_accounts = (
        settings.discovery_service_account,
        settings.bridge_service_account,
        settings.orchestrator_service_account,
    )
    orchestrator = service_account_subject(settings.orchestrator_service_account, ns)
    return [
        # Argo's emissary executor reports outputs through WorkflowTaskResults.
        role(
            EXECUTOR_ROLE, ns, [rule(["argoproj.io"], ["workflowtaskresults"], ["create", "patch"])]
        ),
        role_binding(EXECUTOR_ROLE, ns, [service_account_subject(n, ns) for n in pod_accounts]),
        role(
            ORCHESTRATOR_ROLE,
            ns,
            [
                rule(["argoproj.io"], ["workflows"], ["create", "get", "list", "watch", "patch"]),
                rule(["argoproj.io"], ["workflowtemplates"], ["get", "list", "watch"]),
            ],
        ),
        role_binding(ORCHESTRATOR_ROLE, ns, [orchestrator]),
        role(
            SUBMITTER_ROLE,
            ns,
            [
                rule(["argoproj.io"], ["workflows"], ["create", "get", "list"]),
                rule(["argoproj.io"], ["workflowtemplates"], ["get"]),
            ],
        ),
        role_binding(
            SUBMITTER_ROLE, ns, [service_account_subject(settings.events_service_account, ns)]
        ),
    ]


def operator_rbac(settings: WorkflowSettings) -> list[Manifest]:
    """The people who read lifecycles (Argo UI, ``argo``, ``tenantctl status``): read-only.

    What the UI's workflow list and page, its logs and events panels read, in the workflow
    namespace only: the bridges' pods run there and carry the teams' logs, so an operator needs
    no access to the team namespaces. No binding is shipped: who reads is the site's choice
    (docs/install.md section 11 binds it to an SSO group's or a token's ServiceAccount).
    """
    return [
        role(
            OPERATOR_ROLE,
            settings.workflow_namespace,
            [
                rule(
                    ["argoproj.io"],
                    ["workflows", "workflowtemplates", "cronworkflows"],
                    ["get", "list", "watch"],
                ),
                rule([""], ["pods", "events"], ["get", "list", "watch"]),
                rule([""], ["pods/log"], ["get"]),
            ],
        )
    ]
