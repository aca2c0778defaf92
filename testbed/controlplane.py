"""Start and stop the real control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and the node agent, each a process of the one test-bed binary, all on 127.0.0.1
and free ports.

:class:`ControlPlane` is a context manager. ``start()`` builds the binary when the cache has none
(see :mod:`testbed.build`), makes the certificates, starts each component and waits until it
serves; ``stop()`` stops them in reverse order (SIGTERM, a grace period, then SIGKILL) and
removes the temporary directory. A component that does not come up is one error naming it, with
the end of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import images, kubeconfig, pki
from .build import Progress, ensure_binary
from .ports import free_ports

NODE_NAME = "testbed-node"
SERVICE_CIDR = "10.0.0.0/24"
ISSUER = "https://kubernetes.default.svc.cluster.local"
_STOP_GRACE = 10.0


class ControlPlaneError(RuntimeError):
    """A component of the control plane did not start; the message names it and shows why."""


@dataclass
class _Component:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def tail(self, lines: int = 25) -> str:
        self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class ControlPlane:
    """The real control plane, started on free ports of 127.0.0.1.

    ``node_agent=False`` starts no node (API and controllers only: enough for RBAC and
    discovery). ``image_map`` adds images to the node agent's map (see :mod:`testbed.images`).
    """

    workdir: Path | None = None
    node_agent: bool = True
    image_map: Sequence[Mapping[str, Any]] = ()
    progress: Progress | None = None
    binary: Path | None = None
    ready_timeout: float = 90.0
    _tmp: Path | None = field(default=None, init=False, repr=False)
    _components: list[_Component] = field(default_factory=list, init=False, repr=False)
    port: int = field(default=0, init=False)
    kubelet_port: int = field(default=0, init=False)
    etcd_port: int = field(default=0, init=False)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    @property
    def root(self) -> Path:
        assert self._tmp is not None, "the control plane is not started"
        return self._tmp

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def ca_path(self) -> Path:
        return self.pki.ca.cert

    def start(self) -> ControlPlane:
        binary = self.binary or ensure_binary(progress=self.progress)
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix="cluster-", dir=self.workdir))
        else:
            self._tmp = Path(tempfile.mkdtemp(prefix="tenant-lifecycle-cluster-"))
        try:
            self._start(binary)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, binary: Path) -> None:
        root = self.root
        try:
            self.pki = pki.make(root / "pki", node_name=NODE_NAME)
        except pki.PKIError as exc:
            raise ControlPlaneError(f"the certificates could not be made: {exc}") from exc
        self.etcd_port, etcd_peer, self.port, self.kubelet_port = free_ports(4)
        (root / "logs").mkdir()
        self._say("starting etcd")
        self._spawn(binary, "etcd", self._etcd_args(etcd_peer))
        self._wait("etcd", self._etcd_healthy)
        self._say("starting kube-apiserver")
        self._spawn(binary, "kube-apiserver", self._apiserver_args())
        self._wait("kube-apiserver", self._apiserver_ready)
        self._kubeconfig("admin", self.pki.admin)
        kcm_config = self._kubeconfig("controller-manager", self.pki.controller_manager)
        self._say("starting kube-controller-manager")
        self._spawn(binary, "kube-controller-manager", self._controller_manager_args(kcm_config))
        # The ServiceAccount and root-CA controllers have run once every namespace has its
        # `default` account and `kube-root-ca.crt`: in-cluster clients need both.
        self._wait("kube-controller-manager", self._controllers_ready)
        scheduler_config = self._kubeconfig("scheduler", self.pki.scheduler)
        self._say("starting kube-scheduler")
        self._spawn(binary, "kube-scheduler", self._scheduler_args(scheduler_config))
        if self.node_agent:
            self._start_node_agent(binary)

    def _kubeconfig(self, name: str, client: pki.KeyPair) -> Path:
        """``<root>/<name>.kubeconfig``: this apiserver, its CA and ``client``'s certificate."""
        return kubeconfig.write(
            self.root / f"{name}.kubeconfig", url=self.url, ca=self.pki.ca.cert, client=client
        )

    def _start_node_agent(self, binary: Path) -> None:
        node_config = self._kubeconfig("node", self.pki.node)
        image_file = images.write(self.root / "images.yaml", extra=self.image_map)
        node_root = self.root / "node"
        node_root.mkdir()
        self._say(f"starting the node agent ({NODE_NAME})")
        args = [
            "--kubeconfig", str(node_config),
            "--node-name", NODE_NAME,
            "--root", str(node_root),
            "--images", str(image_file),
            "--port", str(self.kubelet_port),
            "--tls-cert-file", str(self.pki.kubelet_serving.cert),
            "--tls-private-key-file", str(self.pki.kubelet_serving.key),
            "--client-ca-file", str(self.pki.ca.cert),
            "--apiserver-host", "127.0.0.1",
            "--apiserver-port", str(self.port),
        ]  # fmt: skip
        self._spawn(binary, "node-agent", args)
        self._wait("node-agent", self._node_ready)

    def stop(self) -> None:
        """Stop every component (reverse order) and remove the temporary files."""
        for component in reversed(self._components):
            _terminate(component.process)
            component.log.close()
        self._components.clear()
        if self._tmp is not None:
            _remove_tree(self._tmp)
            self._tmp = None

    # -- components ------------------------------------------------------------------------
    def _etcd_args(self, peer: int) -> list[str]:
        client, peer_url = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{peer}"
        return [
            "--name", "testbed",
            "--data-dir", str(self.root / "etcd"),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"testbed={peer_url}",
            "--log-level", "warn",
            # A test bed's data dies with it: fsync buys nothing but time.
            "--unsafe-no-fsync",
            "--quota-backend-bytes", str(4 * 1024**3),
        ]  # fmt: skip

    def _apiserver_args(self) -> list[str]:
        p = self.pki
        return [
            "--etcd-servers", f"http://127.0.0.1:{self.etcd_port}",
            "--bind-address", "127.0.0.1",
            "--advertise-address", "127.0.0.1",
            "--secure-port", str(self.port),
            "--cert-dir", str(self.root / "apiserver-certs"),
            "--tls-cert-file", str(p.apiserver.cert),
            "--tls-private-key-file", str(p.apiserver.key),
            "--client-ca-file", str(p.ca.cert),
            "--authorization-mode", "Node,RBAC",
            "--enable-admission-plugins", "NodeRestriction",
            "--service-account-issuer", ISSUER,
            "--service-account-key-file", str(p.service_account_pub),
            "--service-account-signing-key-file", str(p.service_account_key),
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--kubelet-client-certificate", str(p.apiserver_kubelet_client.cert),
            "--kubelet-client-key", str(p.apiserver_kubelet_client.key),
            "--kubelet-certificate-authority", str(p.ca.cert),
            "--kubelet-preferred-address-types", "InternalIP",
            "--allow-privileged=true",
            # Endpoints may not name a loopback address: the `kubernetes` Service gets none, and
            # pods reach the apiserver through KUBERNETES_SERVICE_HOST=127.0.0.1 instead.
            "--endpoint-reconciler-type", "none",
            "--profiling=false",
            "-v", "0",
        ]  # fmt: skip

    def _controller_manager_args(self, config: Path) -> list[str]:
        p = self.pki
        return [
            *_controller_args(config),
            "--use-service-account-credentials=true",
            "--service-account-private-key-file", str(p.service_account_key),
            "--root-ca-file", str(p.ca.cert),
            "--cluster-signing-cert-file", str(p.ca.cert),
            "--cluster-signing-key-file", str(p.ca.key),
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--controllers", "*,-nodeipam,-cloud-node-lifecycle,-service,-route",
            "-v", "0",
        ]  # fmt: skip

    def _scheduler_args(self, config: Path) -> list[str]:
        # The real scheduler binds pods (nodeSelector, taints, Unschedulable conditions): the
        # node identity may not even list a pod before it is bound to it.
        return [*_controller_args(config), "-v", "0"]

    def _spawn(self, binary: Path, name: str, args: list[str]) -> None:
        log_path = self.root / "logs" / f"{name}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [str(binary), name, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._components.append(_Component(name, process, log_path, log))

    def _wait(self, name: str, ready: Any) -> None:
        component = next(c for c in self._components if c.name == name)
        deadline = time.monotonic() + self.ready_timeout
        last_error = ""
        while time.monotonic() < deadline:
            if component.process.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {component.process.returncode} while starting; "
                    f"the end of its log ({component.log_path}):\n{component.tail()}"
                )
            try:
                if ready():
                    return
            except (OSError, ValueError) as exc:
                last_error = str(exc)
            time.sleep(0.2)
        why = last_error or "no answer"
        raise ControlPlaneError(
            f"{name} was not ready within {self.ready_timeout:.0f} s ({why}); "
            f"the end of its log ({component.log_path}):\n{component.tail()}"
        )

    # -- readiness probes ------------------------------------------------------------------
    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.etcd_port}/health", timeout=2
        ) as reply:
            return bool(json.load(reply).get("health") == "true")

    def _apiserver_ready(self) -> bool:
        try:
            return self.request("GET", "/readyz").get("raw") == "ok"
        except urllib.error.HTTPError:
            return False

    def _controllers_ready(self) -> bool:
        try:
            self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
            self.request("GET", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
        except urllib.error.HTTPError:
            return False
        return True

    def _node_ready(self) -> bool:
        try:
            node = self.request("GET", f"/api/v1/nodes/{NODE_NAME}")
        except urllib.error.HTTPError:
            return False
        conditions = node.get("status", {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    # -- admin access (tests, the CLI) -----------------------------------------------------
    def ssl_context(self, *, client: pki.KeyPair | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        chosen = client or self.pki.admin
        context.load_cert_chain(str(chosen.cert), str(chosen.key))
        return context

    def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """One request as the cluster admin; the parsed JSON (``{"raw": text}`` otherwise)."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        # The URL is always our own https://127.0.0.1:PORT.
        request = urllib.request.Request(  # noqa: S310
            self.url + path, data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(  # noqa: S310
            request, timeout=10, context=self.ssl_context()
        ) as reply:
            raw = reply.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {"raw": raw.decode(errors="replace")}
        return parsed if isinstance(parsed, dict) else {"value": parsed}

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        """Run kubectl as the admin; its stdout (raises ControlPlaneError on failure)."""
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def service_account_token(
        self, namespace: str, name: str, *, seconds: int = 3600, audiences: Sequence[str] = ()
    ) -> str:
        """A real ServiceAccount token from the TokenRequest API."""
        spec: dict[str, Any] = {"expirationSeconds": seconds}
        if audiences:
            spec["audiences"] = list(audiences)
        reply = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        return str(reply["status"]["token"])

    def logs_of(self, name: str) -> str:
        component = next(c for c in self._components if c.name == name)
        return component.tail(200)


def _controller_args(config: Path) -> list[str]:
    """What kube-controller-manager and kube-scheduler share: one identity for the apiserver and
    for delegated authn/authz, no serving port, no leader election (there is one of each)."""
    return [
        "--kubeconfig", str(config),
        "--authentication-kubeconfig", str(config),
        "--authorization-kubeconfig", str(config),
        "--bind-address", "127.0.0.1",
        "--secure-port", "0",
        "--leader-elect=false",
    ]  # fmt: skip


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=_STOP_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=_STOP_GRACE)


def _remove_tree(path: Path) -> None:
    # A node agent that died hard may leave mounts below its root: unmount before removing.
    prefix = str(path)
    mounted = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if len(line.split()) > 1 and line.split()[1].startswith(prefix)
    ]
    for target in sorted(mounted, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)
