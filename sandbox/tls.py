"""A throwaway certificate authority and server certificate for the sandbox's HTTPS listener.

kubectl (client-go) reads a kubeconfig's credentials only for TLS servers ("only try to read the
auth information if we are secure"), so a plain-HTTP kubeconfig makes every kubectl request
anonymous. The sandbox therefore also serves HTTPS with a certificate made here by the
``openssl`` command line: a CA (its PEM goes in the kubeconfig's certificate-authority-data) and
a server certificate for 127.0.0.1 and localhost signed by it. It is made once per process (it
names no port) and written into each sandbox's workdir; the CA's key is thrown away at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path


class TLSUnavailableError(RuntimeError):
    """No ``openssl`` command to make a certificate with."""


@dataclass(frozen=True)
class Certificate:
    ca_pem: bytes
    cert_path: Path
    key_path: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


@dataclass(frozen=True)
class _Material:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


_lock = threading.Lock()
_material: list[_Material] = []  # made once per process: the certificate does not name a port


def _make_material(directory: Path) -> _Material:
    if shutil.which("openssl") is None:
        raise TLSUnavailableError("the openssl command is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_cert),
        "-days",
        "7",
        "-subj",
        "/CN=sandbox-ca",
    )
    _openssl(
        "req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=sandbox-apiserver"
    )
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "7",
        "-extfile",
        str(ext),
    )
    material = _Material(ca_cert.read_bytes(), cert.read_bytes(), key.read_bytes())
    # The CA key is not needed again: nothing else is ever signed with it.
    for path in (ca_key, csr, ext, directory / "ca.srl"):
        path.unlink(missing_ok=True)
    return material


def make_certificate(directory: Path) -> Certificate:
    """The server certificate and key written into ``directory`` (the key with mode 0600)."""
    with _lock:
        if not _material:
            _material.append(_make_material(directory / "make"))
        material = _material[0]
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(material.cert_pem)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(material.key_pem)
    return Certificate(ca_pem=material.ca_pem, cert_path=cert_path, key_path=key_path)
