"""The engine seam: any engine is an object with ``submit(request) -> SubmitOutcome``
(:class:`Engine`), so Argo (:class:`orchestrator.argo.submit.ArgoEngine`), the local engine
(``--engine local``) and the region router plug in at the same place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

from orchestrator.events import LifecycleRequest

DEFAULT_PARALLELISM: Final = 10


@dataclass(frozen=True)
class SubmitOutcome:
    """``submitted``: this call started the run; ``duplicate``: it already existed."""

    status: Literal["submitted", "duplicate"]
    name: str
    namespace: str = ""
    engine: str = "argo"

    @property
    def duplicate(self) -> bool:
        return self.status == "duplicate"


class Engine(Protocol):
    def submit(self, request: LifecycleRequest) -> SubmitOutcome:
        """Start the lifecycle for ``request`` once. Raises UnavailableError (and other APIError)
        on transient failures -- the consumer then nacks and the bus redelivers."""
        ...
