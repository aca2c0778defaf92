"""The ``python -m bridge`` command group: discover, run, sweep, one module each.

Commands that are not on the run path (discover, sweep) import their modules inside the
command body: every Workflow node starts ``python -m bridge run`` in a fresh interpreter.
"""

from __future__ import annotations

import click

from bridge.cli.discover_command import discover
from bridge.cli.run_command import run
from bridge.cli.sweep_command import sweep

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The bridge programs of tenant-lifecycle: discover, run, sweep.

    \b
    Example:
      python -m bridge discover --operation lifecycle.upsert --output plan.json
    """


main.add_command(discover)
main.add_command(run)
main.add_command(sweep)
