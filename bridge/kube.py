"""The one Kubernetes adapter: plain-dict REST calls over the official client's transport.

Everything above this adapter sees Kubernetes objects as plain JSON dicts (camelCase keys, as in
YAML) and errors as :mod:`bridge.errors` classes; nothing else in the product imports
``kubernetes``. We use the official client only for what it is good at -- configuration
(kubeconfig, in-cluster, exec plugins, token refresh, TLS) and its HTTP transport -- and build
URLs from small :class:`Resource` descriptors, so one adapter covers core, batch and custom
resources (Argo Workflows) alike, and we parse JSON ourselves (no model objects, no
deserialization surprises on fields the client does not know).

The adapter's parts, one concept each (this module re-exports their public names):

* :mod:`bridge.kube_resources` -- where a kind lives in the REST API (:class:`Resource`, the
  kinds we use);
* :mod:`bridge.kube_errors` -- HTTP statuses translated into :mod:`bridge.errors`;
* :mod:`bridge.kube_transport` -- :class:`KubeSettings` and the retry policy over the
  official client's urllib3 transport;
* :mod:`bridge.kube_streams` -- log and watch streams;
* :mod:`bridge.kube_api` -- the verbs (get, list, create, patch, delete, watch, log);
* this module -- loading the official client (only the few modules a pod needs) and its
  configuration, and :class:`Kube`, the verbs connected through it.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import threading
import time
import types
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

import urllib3

from bridge.errors import UsageError
from bridge.kube_api import KubeApi
from bridge.kube_errors import error_for_status
from bridge.kube_resources import (
    CONFIGMAPS,
    EVENTS,
    JOBS,
    JSON,
    NAMESPACES,
    PODS,
    SECRETS,
    SERVICEACCOUNTS,
    WORKFLOWS,
    WORKFLOWTEMPLATES,
    Resource,
)
from bridge.kube_streams import LogStream, WatchStream
from bridge.kube_transport import (
    SERVICE_ACCOUNT_DIR,
    KubeSettings,
    Transport,
    backoff_delay,
    parse_retry_after,
)

__all__ = [
    "CONFIGMAPS",
    "EVENTS",
    "JOBS",
    "JSON",
    "NAMESPACES",
    "PODS",
    "SECRETS",
    "SERVICEACCOUNTS",
    "SERVICE_ACCOUNT_DIR",
    "WORKFLOWS",
    "WORKFLOWTEMPLATES",
    "Kube",
    "KubeSettings",
    "LogStream",
    "Resource",
    "WatchStream",
    "backoff_delay",
    "error_for_status",
    "parse_retry_after",
]

# The packages of the official client whose ``__init__`` a bridge must not run (see below).
_OFFICIAL_PACKAGES: Final = (
    "kubernetes",
    "kubernetes.client",
    "kubernetes.config",
    "kubernetes.utils",
)
_OFFICIAL_IMPORT_LOCK = threading.Lock()


def _import_official(*names: str) -> list[types.ModuleType]:
    """Modules of the official ``kubernetes`` client, imported without its packages' ``__init__``.

    Why: ``import kubernetes.client.rest`` first runs ``kubernetes/__init__.py``, which imports
    every generated model and API class, the dynamic client, watch, stream, leader election and
    the kubeconfig loader (``google.auth``, ``cryptography``, ``requests_oauthlib``) -- ~0.3 s of
    CPU and most of a bridge's start-up, for the few modules a bridge in a pod uses: the
    ``Configuration``, the urllib3 REST transport (``rest.RESTClientObject``: TLS, client
    certificates, proxies, keep-alive) and the in-cluster loader. So while these load, the
    parent packages are stood in for by empty package modules on the same directories, and
    afterwards ``sys.modules`` is put back as it was: a later ``import kubernetes`` (the
    kubeconfig path, tests, tools) loads the whole official package as usual, unaffected; the
    modules loaded here are this adapter's own copies. When ``kubernetes`` is already loaded,
    its modules are used as they are. The stand-ins are visible only while this module is
    first imported, under the import lock of ``bridge.kube``: nothing else in the product
    imports ``kubernetes``, and the kubeconfig loader is imported only once this has run.

    ``tests/unit/bridge/test_bridge_imports.py`` fails when ``python -m bridge run`` in a pod
    imports the rest of the package again.
    """
    if "kubernetes" in sys.modules:
        return [importlib.import_module(name) for name in names]
    spec = importlib.util.find_spec("kubernetes")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the kubernetes package is not installed")
    root = next(iter(spec.submodule_search_locations))
    with _OFFICIAL_IMPORT_LOCK:
        before = set(sys.modules)
        loaded: list[types.ModuleType] = []
        try:
            for package in _OFFICIAL_PACKAGES:
                directory = os.path.join(root, *package.split(".")[1:])
                stand_in = types.ModuleType(package)
                stand_in.__path__ = [directory]
                stand_in.__package__ = package
                stand_in.__spec__ = importlib.machinery.ModuleSpec(package, None, is_package=True)
                stand_in.__spec__.submodule_search_locations = [directory]
                sys.modules[package] = stand_in
            for name in names:
                # __import__ rather than importlib.import_module: it is the import statement's
                # path, so `python -X importtime` lists these modules too.
                __import__(name)
                module = sys.modules[name]
                loaded.append(module)
                if name == "kubernetes.client.configuration":
                    # incluster_config does `from kubernetes.client import Configuration`.
                    setattr(  # noqa: B010 - a stand-in module's attribute
                        sys.modules["kubernetes.client"], "Configuration", module.Configuration
                    )
        finally:
            for name in set(sys.modules) - before:
                if name == "kubernetes" or name.startswith("kubernetes."):
                    del sys.modules[name]
    return loaded


# The official client is untyped: hold it as Any at the one place we touch it.
_configuration_module, _exceptions_module, _rest_module, _config_errors, _incluster_module = (
    _import_official(
        "kubernetes.client.configuration",
        "kubernetes.client.exceptions",
        "kubernetes.client.rest",
        "kubernetes.config.config_exception",
        "kubernetes.config.incluster_config",
    )
)
Configuration: Any = _configuration_module.Configuration
RESTClientObject: Any = _rest_module.RESTClientObject
ApiException: Any = _exceptions_module.ApiException
InClusterConfigLoader: Any = _incluster_module.InClusterConfigLoader
InClusterConfigException: Any = _config_errors.ConfigException


class Kube(KubeApi):
    """A generic, retrying Kubernetes REST client returning plain dicts.

    ``host`` + ``token`` connect directly (tests, the sandbox); otherwise the kubeconfig
    (``settings.kubeconfig``/``context``, else ``$KUBECONFIG``/``~/.kube/config``) or the
    in-cluster service account (``settings.in_cluster``, or automatically inside a pod when no
    kubeconfig is given).

    Requests go through the official client's ``Configuration`` (TLS, client certificates,
    tokens refreshed by its ``refresh_api_key_hook``: exec plugins, OIDC, rotated projected
    tokens) and its urllib3 transport ``rest.RESTClientObject`` -- not through ``ApiClient``,
    whose module imports every generated model. A kubeconfig is loaded by the official loader
    (``kubernetes.config``, imported only then); the in-cluster path, what every bridge pod
    uses, imports neither.
    """

    def __init__(
        self,
        *,
        settings: KubeSettings | None = None,
        host: str | None = None,
        token: str | None = None,
        ca_file: str | None = None,
        verify_ssl: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        settings = settings or KubeSettings()
        configuration = Configuration()
        if host:
            configuration.host = host.rstrip("/")
            if token:
                configuration.api_key = {"BearerToken": token}
                configuration.api_key_prefix = {"BearerToken": "Bearer"}
            # https with a private CA (ca_file), or -- for throwaway test servers only -- none.
            configuration.ssl_ca_cert = ca_file
            configuration.verify_ssl = verify_ssl
        else:
            _load_configuration(configuration, settings)
        # Our retry loop is the only one: no hidden urllib3 retries under it.
        configuration.retries = urllib3.Retry(total=0, redirect=0, raise_on_status=False)
        if settings.connection_pool_size is not None:
            configuration.connection_pool_maxsize = settings.connection_pool_size
        super().__init__(
            transport=Transport(
                configuration=configuration,
                rest=RESTClientObject(configuration),
                api_exception=ApiException,
                settings=settings,
                sleep=sleep,
            )
        )

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _load_configuration(configuration: Any, settings: KubeSettings) -> None:
    in_cluster = settings.in_cluster or (
        not settings.kubeconfig
        and not os.environ.get("KUBECONFIG")
        and not os.path.exists(os.path.expanduser("~/.kube/config"))
        and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    )
    if in_cluster:
        account = settings.service_account_dir
        try:
            InClusterConfigLoader(
                token_filename=os.path.join(account, "token"),
                cert_filename=os.path.join(account, "ca.crt"),
            ).load_and_set(configuration)
        except (InClusterConfigException, OSError, ValueError) as exc:
            raise UsageError(
                f"cannot load Kubernetes configuration from the in-cluster service account "
                f"({account}, $KUBERNETES_SERVICE_HOST/PORT): {exc}",
                hint="pass --kubeconfig/--context, or run inside a pod with a service account",
            ) from exc
        return
    # The official kubeconfig loader (contexts, exec plugins, OIDC, auth providers): it
    # imports the whole official package, so only here.
    from kubernetes import config as official_config  # noqa: PLC0415

    loader: Any = official_config
    try:
        loader.load_kube_config(
            config_file=settings.kubeconfig,
            context=settings.context,
            client_configuration=configuration,
        )
    except (loader.ConfigException, OSError, ValueError) as exc:
        raise UsageError(
            f"cannot load Kubernetes configuration from {settings.kubeconfig or 'kubeconfig'}: "
            f"{exc}",
            hint="pass --kubeconfig/--context, or run inside a pod with a service account",
        ) from exc
