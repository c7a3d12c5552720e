"""Usage errors as one line: ``ecard: error: <message> (see '<command> --help')``.

click prints a usage error as three lines (``Usage: ...``, ``Try ... for help.``, ``Error:
...``); ``ecard`` prints one, naming the command whose ``--help`` explains it. The
:class:`Command` and :class:`Group` here only make sure every usage error knows its command
(click's option parser raises some, such as "Option '--port' requires an argument.", without
it).
"""

from __future__ import annotations

import unicodedata
from typing import Any

import click


def _with_context(exc: click.UsageError, ctx: click.Context) -> click.UsageError:
    if exc.ctx is None:
        exc.ctx = ctx
    return exc


class Command(click.Command):
    """A click command whose usage errors always carry their context."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _with_context(exc, ctx) from exc.__cause__


class Group(click.Group):
    """A click group whose usage errors (and its subcommands') always carry their context.
    A group without its subcommand is a usage error (exit 2), not a help page."""

    command_class = Command
    group_class = type  # subgroups are of this class too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("no_args_is_help", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _with_context(exc, ctx) from exc.__cause__


def one_line(text: str) -> str:
    """``text`` as one line for a terminal: every run of white space (new lines included) made
    one space, and control and format characters (ESC, BEL, bidi overrides) shown as
    ``\\uXXXX`` instead of acting on the terminal."""
    shown = "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cc", "Cf") and not ch.isspace() else ch
        for ch in text
    )
    return " ".join(shown.split())


def usage_line(exc: click.UsageError) -> str:
    """The one stderr line for a usage error."""
    ctx = exc.ctx
    message = exc.format_message()
    if ctx is not None and message == "Missing command.":
        group = ctx.command
        names = group.list_commands(ctx) if isinstance(group, click.Group) else []
        if names:
            message = f"Missing command (one of: {', '.join(names)})."
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"ecard: error: {one_line(message)}{hint}"
