"""Developer tools: the guided tours (``tenantctl demo``, ``tenantctl cluster demo``) and what
they start (the sandbox, the local emulators). Only the ``demo``, ``sandbox`` and ``cluster``
commands (inside their bodies), the tests and the benchmarks import this room; production code
paths never load it, so it may import ``sandbox`` at module level.
"""
