"""``tenantctl listen``: the consumer of lifecycle requests (:mod:`.consumer`), the local
engine's result publisher (:mod:`.publisher`), the running regions (:mod:`.runtime`) and the
service that wires them (:mod:`.service`, the one composition root)."""

from orchestrator.listen.consumer import Consumer, ConsumerSettings
from orchestrator.listen.publisher import LocalResultPublisher
from orchestrator.listen.runtime import RegionalRuntime, build_regional_runtime, step_runners_for
from orchestrator.listen.service import Service

__all__ = [
    "Consumer",
    "ConsumerSettings",
    "LocalResultPublisher",
    "RegionalRuntime",
    "Service",
    "build_regional_runtime",
    "step_runners_for",
]
