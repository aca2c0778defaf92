"""``python -m bridge``: the programs every lifecycle workflow runs (discover, run, sweep).

Connection for all: ``--kubeconfig``/``--context`` (env ``BRIDGE_KUBECONFIG``/``BRIDGE_CONTEXT``),
else ``$KUBECONFIG``/``~/.kube/config``, else the in-cluster service account. Every option can
be set from the environment as ``BRIDGE_<OPTION>`` (e.g. ``BRIDGE_STUCK_GRACE=30``).
User mistakes end with one line ``error: ...`` on stderr, never a traceback.
"""

from __future__ import annotations

from bridge.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    main(prog_name="python -m bridge")
