"""A local stand-in for the Kubernetes API server that runs pod containers as local processes.

See ``docs/sandbox.md`` for what is emulated and what is not.
"""

from __future__ import annotations

from .faults import Faults
from .sandbox import Sandbox

__all__ = ["Faults", "Sandbox"]
