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

    @staticmethod
    def _help_path(ctx: click.Context, exc: click.UsageError, subcommand: str | None) -> str:
        """The command whose ``--help`` answers the error, e.g. ``tenantctl render``."""
        if exc.ctx is not None and exc.ctx is not ctx:
            return exc.ctx.command_path
        # Some parser errors ("--out requires an argument") carry no context of their own.
        return f"{ctx.command_path} {subcommand}" if subcommand else ctx.command_path

    def invoke(self, ctx: click.Context) -> Any:
        # The group consumes its arguments while dispatching: remember which command was asked.
        asked = [*getattr(ctx, "_protected_args", ()), *ctx.args]
        subcommand = asked[0] if asked and asked[0] in self.commands else None
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise  # a bare command group: click prints its help, as it should
        except click.UsageError as exc:
            # click's rendering is three lines (usage, "Try --help", the error); one line that
            # names the flag and where to read more is what a person scanning a terminal needs.
            path = self._help_path(ctx, exc, subcommand)
            click.echo(f"error: {exc.format_message()} (see `{path} --help`)", err=True)
            sys.exit(2)
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
