"""The test bed's certificates: one cluster CA and what a kubeadm cluster would sign with it.

Made with the ``openssl`` command (as the sandbox's TLS listener is), ECDSA P-256 throughout:

* the apiserver's serving certificate, valid for 127.0.0.1 and the in-cluster service names;
* client certificates for the admin (``system:masters``), kube-controller-manager,
  kube-scheduler and the node agent (``system:node:NAME`` in ``system:nodes``, so the real
  Node authorizer applies to it), and
  for the apiserver's calls to the kubelet API;
* the node agent's serving certificate (the apiserver verifies it with the CA);
* the service-account signing key pair.

Keys are written with mode 0600 in a directory that lives exactly as long as the control plane.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVICE_IP = "10.0.0.1"
_CURVE = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
_DAYS = "30"


class PKIError(RuntimeError):
    """A certificate could not be made (no ``openssl``, or it failed)."""


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPKI:
    directory: Path
    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    node: KeyPair
    apiserver_kubelet_client: KeyPair
    kubelet_serving: KeyPair
    service_account_key: Path
    service_account_pub: Path


def _openssl(*args: str) -> None:
    if shutil.which("openssl") is None:
        raise PKIError("the openssl command is not installed: the test bed needs it for its CA")
    done = subprocess.run(
        ["openssl", *args], capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise PKIError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _private(path: Path) -> None:
    os.chmod(path, 0o600)


def _sign(
    directory: Path,
    ca: KeyPair,
    name: str,
    *,
    subject: str,
    usage: str,
    sans: tuple[str, ...] = (),
) -> KeyPair:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    _openssl("req", "-new", *_CURVE, "-keyout", str(key), "-out", str(csr), "-subj", subject)
    _private(key)
    lines = [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca.cert),
        "-CAkey",
        str(ca.key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        _DAYS,
        "-extfile",
        str(ext),
    )
    csr.unlink()
    ext.unlink()
    return KeyPair(cert, key)


def _make_ca(directory: Path) -> KeyPair:
    """The self-signed cluster CA that signs every other certificate."""
    ca = KeyPair(directory / "ca.crt", directory / "ca.key")
    _openssl(
        "req",
        "-x509",
        *_CURVE,
        "-keyout",
        str(ca.key),
        "-out",
        str(ca.cert),
        "-days",
        _DAYS,
        "-subj",
        "/CN=testbed-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )
    _private(ca.key)
    return ca


def _make_service_account_keys(directory: Path) -> tuple[Path, Path]:
    """The key pair that signs and verifies service account tokens: (private, public)."""
    sa_key, sa_pub = directory / "sa.key", directory / "sa.pub"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(sa_key))
    _private(sa_key)
    _openssl("ec", "-in", str(sa_key), "-pubout", "-out", str(sa_pub))
    return sa_key, sa_pub


def make(directory: Path, *, node_name: str) -> ClusterPKI:
    """Every certificate and key the control plane and node agent need, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(directory)
    server_names = (
        "IP:127.0.0.1",
        f"IP:{SERVICE_IP}",
        "DNS:localhost",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
    )
    apiserver = _sign(
        directory, ca, "apiserver", subject="/CN=kube-apiserver", usage="serverAuth",
        sans=server_names,
    )  # fmt: skip
    admin = _sign(
        directory, ca, "admin", subject="/O=system:masters/CN=testbed-admin", usage="clientAuth"
    )
    controller_manager = _sign(
        directory,
        ca,
        "controller-manager",
        subject="/CN=system:kube-controller-manager",
        usage="clientAuth",
    )
    scheduler = _sign(
        directory, ca, "scheduler", subject="/CN=system:kube-scheduler", usage="clientAuth"
    )
    node = _sign(
        directory,
        ca,
        "node",
        subject=f"/O=system:nodes/CN=system:node:{node_name}",
        usage="clientAuth",
    )
    kubelet_client = _sign(
        directory,
        ca,
        "apiserver-kubelet-client",
        subject="/O=system:masters/CN=kube-apiserver-kubelet-client",
        usage="clientAuth",
    )
    kubelet_serving = _sign(
        directory,
        ca,
        "kubelet",
        subject=f"/O=system:nodes/CN=system:node:{node_name}",
        usage="serverAuth",
        sans=("IP:127.0.0.1", "DNS:localhost", f"DNS:{node_name}"),
    )
    sa_key, sa_pub = _make_service_account_keys(directory)
    (directory / "ca.srl").unlink(missing_ok=True)
    return ClusterPKI(
        directory=directory,
        ca=ca,
        apiserver=apiserver,
        admin=admin,
        controller_manager=controller_manager,
        scheduler=scheduler,
        node=node,
        apiserver_kubelet_client=kubelet_client,
        kubelet_serving=kubelet_serving,
        service_account_key=sa_key,
        service_account_pub=sa_pub,
    )
