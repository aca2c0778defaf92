"""The :class:`Sandbox`: an in-process Kubernetes API server with a pod runtime.

    with Sandbox(rbac=False, workdir=tmp_path) as sb:
        sb.url, sb.admin_token
        sb.kubeconfig_path()            # for kubectl or config.load_kube_config
        sb.apply([namespace, job])      # create-or-replace as admin
        sb.faults.fail_next(2, status=503)

It binds 127.0.0.1 on a free port (or ``port``), serves from daemon threads, and on ``stop()``
kills every pod process group it started and removes the directories it made.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from . import kubeconfig, tls
from .api import Api
from .faults import Faults
from .rbac import CLUSTER_ADMIN, Authorizer, Tokens
from .resources import Registry, ResourceType
from .runtime import NODE_NAME, PodRuntime
from .server import SandboxHTTPServer
from .status import ApiError
from .store import Store

Obj = dict[str, Any]
log = logging.getLogger(__name__)

_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def default_env() -> dict[str, str]:
    """Every container's base environment: PATH (this Python's bin first), HOME, LANG."""
    path = os.environ.get("PATH", os.defpath)
    bindir = str(Path(sys.executable).parent)
    if bindir not in path.split(os.pathsep):
        path = bindir + os.pathsep + path
    return {"PATH": path, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


class Sandbox:
    def __init__(
        self,
        *,
        rbac: bool = False,
        workdir: Path | str | None = None,
        port: int = 0,
        history: int = 20000,
        env: Mapping[str, str] | None = None,
        record_events: bool = True,
    ) -> None:
        self.rbac = rbac
        self._own_workdir = workdir is None
        self.workdir = (
            Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="sandbox-"))
        )
        self._requested_port = port
        self.store = Store(history=history)
        self.registry = Registry.default()
        self.api = Api(store=self.store, registry=self.registry)
        self.tokens = Tokens()
        self.authorizer = Authorizer(self.store, enabled=rbac)
        self.stopping = threading.Event()
        base_env = default_env()
        base_env.update(env or {})
        self.runtime = PodRuntime(
            self.api,
            workdir=self.workdir,
            base_env=base_env,
            issue_token=self.tokens.issue,
        )
        self.runtime.record_events = record_events
        self.api.runtime = self.runtime
        self.faults = Faults(on_evict=self._evict, on_kill=self._kill, on_compact=self._compact)
        self._httpd: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tls_httpd: SandboxHTTPServer | None = None
        self._tls_thread: threading.Thread | None = None
        self._tls_lock = threading.Lock()
        self._ca_pem: bytes | None = None
        self._tls_failed = False
        self._kubeconfigs: dict[str | None, Path] = {}

    # lifecycle -------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._bootstrap()
        self._httpd = SandboxHTTPServer(("127.0.0.1", self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="sandbox-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        servers = [s for s in (self._httpd, self._tls_httpd) if s is not None]
        for server in servers:
            server.shutdown()
        self.runtime.shutdown()
        for server in servers:
            server.close_connections()
            server.server_close()
        for thread in (self._thread, self._tls_thread):
            if thread is not None:
                thread.join(5)
        deadline = time.monotonic() + 2
        while any(s.connections for s in servers) and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _bootstrap(self) -> None:
        events = self.runtime.record_events
        self.runtime.record_events = False
        ns_type = self.resource("", "v1", "namespaces")
        for name in _SYSTEM_NAMESPACES:
            self.api.create(ns_type, "", {"metadata": {"name": name}})
        self.api.create(
            self.resource("", "v1", "nodes"),
            "",
            {
                "metadata": {"name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME}},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                },
            },
        )
        self.api.create(
            self.resource("rbac.authorization.k8s.io", "v1", "clusterroles"), "", CLUSTER_ADMIN
        )
        self.api.create(
            self.resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
            "",
            {
                "metadata": {"name": "cluster-admin"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Group",
                        "name": "system:masters",
                    }
                ],
            },
        )
        self.runtime.record_events = events

    # properties ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the sandbox is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        return self.tokens.admin_token

    # helpers for tests and tools -------------------------------------------------------------

    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        rtype = self.registry.lookup(group, version, plural)
        if rtype is None:
            raise KeyError(f"no resource {plural} in {group or 'core'}/{version}")
        return rtype

    @property
    def tls_url(self) -> str | None:
        """The HTTPS address (same API, same tokens); None when no certificate could be made."""
        self._ensure_tls()
        if self._tls_httpd is None:
            return None
        return f"https://127.0.0.1:{self._tls_httpd.server_address[1]}"

    @property
    def ca_pem(self) -> bytes | None:
        """The CA certificate that signed the HTTPS listener's certificate."""
        self._ensure_tls()
        return self._ca_pem

    def _ensure_tls(self) -> None:
        # Started on first use: most tests talk plain HTTP and never pay for a certificate.
        with self._tls_lock:
            if self._tls_httpd is not None or self._tls_failed or self._httpd is None:
                return
            try:
                cert = tls.make_certificate(self.workdir / "tls")
            except (tls.TLSUnavailableError, subprocess.SubprocessError, OSError):
                log.warning(
                    "sandbox: no certificate (openssl missing?); kubeconfigs use HTTP, "
                    "and kubectl then sends no token"
                )
                self._tls_failed = True
                return
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert.cert_path, cert.key_path)
            self._tls_httpd = SandboxHTTPServer(("127.0.0.1", 0), self, tls=context)
            self._ca_pem = cert.ca_pem
            self._tls_thread = threading.Thread(
                target=self._tls_httpd.serve_forever,
                kwargs={"poll_interval": 0.02},
                name="sandbox-https",
                daemon=True,
            )
            self._tls_thread.start()

    def write_kubeconfig(
        self, path: Path, token: str | None = None, *, namespace: str = "default"
    ) -> Path:
        """Write a kubeconfig for the HTTPS listener (kubectl sends tokens only over TLS)."""
        url = self.tls_url or self.url
        return kubeconfig.write(
            path, url, token or self.admin_token, namespace=namespace, ca_pem=self.ca_pem
        )

    def kubeconfig_path(self, token: str | None = None, *, namespace: str = "default") -> Path:
        """A kubeconfig for this sandbox (admin token unless ``token`` is given)."""
        key = f"{token}:{namespace}" if token else f":{namespace}"
        if key not in self._kubeconfigs:
            index = len(self._kubeconfigs)
            path = self.workdir / "kubeconfigs" / f"kubeconfig-{index}.yaml"
            self._kubeconfigs[key] = self.write_kubeconfig(path, token, namespace=namespace)
        return self._kubeconfigs[key]

    def issue_token(
        self, user: str = "system:serviceaccount:default:default", groups: Iterable[str] = ()
    ) -> str:
        return self.tokens.issue(user, tuple(groups))

    def apply(self, objs: Iterable[Obj]) -> None:
        """Create each object, or replace it when it exists (as admin; for test setup)."""
        for obj in objs:
            rtype = self.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
            if rtype is None:
                raise ValueError(
                    f"the sandbox serves no kind {obj.get('kind')!r} in {obj.get('apiVersion')!r}"
                )
            meta = obj.get("metadata") or {}
            ns = (meta.get("namespace") or "default") if rtype.namespaced else ""
            try:
                self.api.create(rtype, ns, obj)
            except ApiError as exc:
                if exc.code != 409:
                    raise
                body = copy.deepcopy(obj)
                body.setdefault("metadata", {}).pop("resourceVersion", None)
                self.api.replace(rtype, ns, meta["name"], body)

    def get(self, apiversion_kind: tuple[str, str], name: str, namespace: str = "") -> Obj | None:
        rtype = self.registry.by_kind(*apiversion_kind)
        if rtype is None:
            raise ValueError(f"unknown kind {apiversion_kind}")
        obj = self.store.get(rtype.key, namespace if rtype.namespaced else "", name)
        return copy.deepcopy(obj) if obj is not None else None

    def pod(self, namespace: str, name: str) -> Obj | None:
        return self.get(("v1", "Pod"), name, namespace)

    def wait_for_pod(
        self,
        namespace: str,
        name: str,
        *,
        phases: Iterable[str] = ("Succeeded", "Failed"),
        timeout: float = 30.0,
    ) -> Obj:
        """Block until the pod reaches one of ``phases``; its object. TimeoutError otherwise."""
        wanted = set(phases)
        deadline = time.monotonic() + timeout
        with self.store.changed:
            while True:
                pod = self.store.get("pods", namespace, name)
                if pod is not None and (pod.get("status") or {}).get("phase") in wanted:
                    return copy.deepcopy(pod)
                left = deadline - time.monotonic()
                if left <= 0:
                    phase = (pod or {}).get("status", {}).get("phase") if pod else "absent"
                    raise TimeoutError(
                        f"pod {namespace}/{name} is {phase}, not in {sorted(wanted)}"
                    )
                self.store.changed.wait(min(left, 0.25))

    def logs(self, namespace: str, name: str, container: str | None = None) -> str:
        """The current run's log of a container (the pod's only container by default)."""
        pod = self.store.get("pods", namespace, name)
        if pod is None:
            raise KeyError(f"no pod {namespace}/{name}")
        container = container or pod["spec"]["containers"][0]["name"]
        worker = self.runtime.worker(pod["metadata"]["uid"])
        runs = worker.log_runs(container) if worker is not None else []
        return runs[-1].log.text() if runs else ""

    def pod_pids(self) -> list[int]:
        """Process ids of every container process still running."""
        return self.runtime.live_pids()

    # fault hooks -----------------------------------------------------------------------------

    def _pod_uid(self, namespace: str, name: str) -> str:
        pod = self.store.get("pods", namespace, name)
        if pod is None:
            raise KeyError(f"no pod {namespace}/{name}")
        return str(pod["metadata"]["uid"])

    def _evict(self, namespace: str, name: str) -> None:
        self.runtime.kill(self._pod_uid(namespace, name), "Evicted")

    def _kill(self, namespace: str, name: str) -> None:
        self.runtime.kill(self._pod_uid(namespace, name), "NodeLost")

    def _compact(self) -> None:
        self.store.compact()
        self.api.forget_snapshots()
