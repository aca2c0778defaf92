"""Argo definitions of tenant-lifecycle: the WorkflowTemplate (hera), Argo Events and install
manifests, and their rendering to the committed YAML under ``workflows/rendered/`` and ``deploy/``.

Public API:

* :class:`workflows.settings.WorkflowSettings` — image, namespaces, account names, limits;
* :func:`workflows.template.workflow_template_manifest` — the WorkflowTemplate as a dict;
* :mod:`workflows.events` — ``event_source_manifest``, ``sensor_manifest``, ``sensor_workflow``;
* :mod:`workflows.install` — the plain Kubernetes manifests;
* :func:`workflows.render.render_tree` / ``write_tree`` / ``drifted`` — what ``tenantctl render``
  writes and checks.

Nothing here runs the template: its behaviour is proven on the real Argo controller
(``tests/e2e/argo``).

Modules import hera lazily from here: import the submodule you need.
"""
