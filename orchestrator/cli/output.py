"""Shared output helpers for ``tenantctl`` commands: ``--output text|json``, JSON, tables.

Every command that prints data offers ``--output text`` (for people: tables, one problem per
line) and ``--output json`` (for scripts: a stable document on stdout, nothing else there).
Diagnostics always go to stderr so that ``-o json | jq`` keeps working.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

OUTPUT_FORMATS = ("text", "json")

F = TypeVar("F", bound=Callable[..., Any])


def output_option(function: F) -> F:
    """``--output/-o text|json`` (env ``TENANTCTL_<COMMAND>_OUTPUT``), passed as ``output``."""
    return click.option(
        "--output",
        "-o",
        type=click.Choice(OUTPUT_FORMATS),
        default="text",
        show_default=True,
        help="text for people, json for scripts (a stable document on stdout)",
    )(function)


def dump_json(data: Any, *, compact: bool = False) -> str:
    """JSON text: indented for people, or compact (no spaces) for machines and size limits.

    Key order is the order the data was built in (stable by construction); non-ASCII stays
    readable. Values JSON cannot hold (dates, enums) fall back to ``str``.
    """
    if compact:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def echo_json(data: Any, *, compact: bool = False) -> None:
    """Print ``data`` as one JSON document on stdout."""
    click.echo(dump_json(data, compact=compact))


def render_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = "(none)"
) -> str:
    """A plain aligned table (two spaces between columns, no trailing spaces).

    Cells are converted with ``str``; ``None`` shows as ``-``; newlines become spaces so a row
    stays one line. With no rows, the ``empty`` text is returned instead of a bare header.
    """
    table = [[_cell(value) for value in row] for row in rows]
    if not table:
        return empty
    head = [str(h) for h in headers]
    widths = [len(h) for h in head]
    for row in table:
        for index, cell in enumerate(row):
            if index < len(widths):
                widths[index] = max(widths[index], len(cell))
            else:
                widths.append(len(cell))
    lines = []
    for row in [head, *table]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return str(value).replace("\n", " ")


def echo_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = "(none)"
) -> None:
    click.echo(render_table(headers, rows, empty=empty))


def plural(count: int, word: str, plural_word: str | None = None) -> str:
    """``1 Job``, ``3 Jobs``."""
    return f"{count} {word if count == 1 else (plural_word or word + 's')}"
