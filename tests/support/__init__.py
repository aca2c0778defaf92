"""Test doubles shared by the tests: stand-ins for the product's seams (the bus, a fleet's
per-tenant runner), kept out of the product so production code cannot reach them."""
