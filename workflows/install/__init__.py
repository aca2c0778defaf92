"""Plain Kubernetes install manifests: namespaces, service accounts, RBAC, settings, team example.

Everything is a plain dict, grouped by the file it is rendered to. The least-privilege story
(``docs/install.md``, the RBAC test in ``tests/integration/workflows``):

* discovery reads namespaces and Jobs cluster-wide and writes nothing;
* the bridge's ClusterRole is never bound cluster-wide: each opted-in team namespace binds it
  with a RoleBinding (the "managed namespace" pattern). It creates and deletes pods, reads their
  logs, and creates/deletes the per-run Secret, but cannot get, list, watch or patch Secrets
  (it writes tenant data into them and never needs to read anyone's). It reads Jobs, and
  namespaces cluster-wide (to re-check the opt-in label) through a separate ClusterRole;
* every service account whose pods Argo runs gets the executor's ``workflowtaskresults`` rights
  in the workflow namespace, and nothing else there;
* the sweeper (a CronJob running ``python -m bridge sweep``) is the only account that may list
  Secrets, in managed namespaces only (RoleBinding per namespace), to find per-run Secrets whose
  pod never existed; it deletes bridge pods and Secrets and reads Workflows, nothing else;
* the orchestrator (``tenantctl listen`` and the exit handler) and the Argo Events Sensor may
  create Workflows; that they only *reference* the reviewed template is enforced by the workflow
  controller's ``templateReferencing: Strict`` (``deploy/argo/``), since RBAC cannot look into
  a Workflow's spec.

``tenantctl listen`` itself runs as a Deployment (:func:`listen`): one replica, non-root on a
read-only root filesystem, its operation history in an embedded SQLite file on a
PersistentVolumeClaim unless the operator provides a PostgreSQL URL in a Secret, ``/metrics`` behind
a Service.
"""

from __future__ import annotations

from .common import (
    ARGO_NAMESPACE,
    BRIDGE_CLUSTER_ROLE,
    BRIDGE_NAMESPACES_CLUSTER_ROLE,
    CONTROLLER_CONFIG_MAP,
    DISCOVERY_CLUSTER_ROLE,
    EXECUTOR_ROLE,
    HISTORY_SECRET,
    HISTORY_SECRET_KEY,
    OPERATOR_ROLE,
    ORCHESTRATOR_ROLE,
    PRODUCT_UID,
    SUBMITTER_ROLE,
    SWEEPER_CLUSTER_ROLE,
    SWEEPER_NAMESPACES_CLUSTER_ROLE,
    SWEEPER_ROLE,
    Manifest,
)
from .listen import ListenDeployment, listen
from .platform import (
    controller_config_map,
    namespaces,
    service_accounts,
    settings_config_maps,
    sweep_cron_job,
    template_referencing_patch,
)
from .rbac import bridge_rbac, discovery_rbac, operator_rbac, sweeper_rbac, workflow_rbac
from .team import team_namespace

__all__ = [
    "ARGO_NAMESPACE",
    "BRIDGE_CLUSTER_ROLE",
    "BRIDGE_NAMESPACES_CLUSTER_ROLE",
    "CONTROLLER_CONFIG_MAP",
    "DISCOVERY_CLUSTER_ROLE",
    "EXECUTOR_ROLE",
    "HISTORY_SECRET",
    "HISTORY_SECRET_KEY",
    "OPERATOR_ROLE",
    "ORCHESTRATOR_ROLE",
    "PRODUCT_UID",
    "SUBMITTER_ROLE",
    "SWEEPER_CLUSTER_ROLE",
    "SWEEPER_NAMESPACES_CLUSTER_ROLE",
    "SWEEPER_ROLE",
    "ListenDeployment",
    "Manifest",
    "bridge_rbac",
    "controller_config_map",
    "discovery_rbac",
    "listen",
    "namespaces",
    "operator_rbac",
    "service_accounts",
    "settings_config_maps",
    "sweep_cron_job",
    "sweeper_rbac",
    "team_namespace",
    "template_referencing_patch",
    "workflow_rbac",
]
