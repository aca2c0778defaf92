"""The soak: many lifecycle requests through the real Pub/Sub emulator into ``tenantctl listen
--engine local`` against the sandbox, with faults injected at random from a fixed seed, and the
invariants checked by code afterwards. Run it with ``python -m tests.soak --help``."""
