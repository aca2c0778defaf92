"""``tenantctl``: the command-line entry point.

Commands live one per module in :mod:`orchestrator.cli.commands`; each module exposes
``commands``, a list of click commands, and is discovered here so that adding a command never
touches this file. Command modules import their heavy dependencies inside the command body, so
``tenantctl --help`` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

import click

from bridge.errors import LifecycleError, UsageError

from . import commands as _commands_pkg

ENV_PREFIX = "TENANTCTL"


class LifecycleGroup(click.Group):
    """A click group that maps the project's errors to one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except LifecycleError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(
    cls=LifecycleGroup,
    context_settings={"auto_envvar_prefix": ENV_PREFIX, "help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="tenant-lifecycle", prog_name="tenantctl")
def main() -> None:
    """Run tenant lifecycle operations over teams' bridged Jobs.

    \b
    Examples:
      tenantctl validate lifecycle-jobs/
      tenantctl plan --operation lifecycle.upsert lifecycle-jobs/
      tenantctl demo
    """


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(_commands_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{_commands_pkg.__name__}.{info.name}")
        for command in getattr(module, "commands", ()):
            main.add_command(command)


_register_commands()
