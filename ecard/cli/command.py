"""How an ``ecard`` command runs: its settings, read once, and its usage errors, one line.

The settings (:func:`ecard.config.load_settings`) are read once per run, after the command line
is parsed and just before the command's body runs, and reach it as click's context object
(``@click.pass_obj``): ``--help`` and a usage error need no settings, so they work even with a
bad variable.

click prints a usage error as three lines (``Usage: ...``, ``Try ... for help.``, ``Error:
...``); ``ecard`` prints one, ``ecard: error: <message> (see '<command> --help')``, naming the
command whose ``--help`` explains it. :class:`Command` and :class:`Group` make sure every usage
error knows its command (click's option parser raises some, such as "Option '--port' requires
an argument.", without it).
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ecard.config import Settings


def settings_for(ctx: click.Context) -> Settings:
    """The run's settings, read on first use and shared by every context of the run."""
    root = ctx.find_root()
    if root.obj is None:
        from ecard.config import load_settings

        root.obj = load_settings()  # a bad value: ConfigError, one line naming the variable
    node: click.Context | None = ctx
    while node is not None and node.obj is None:
        node.obj = root.obj
        node = node.parent
    settings: Settings = root.obj
    return settings


def _with_context(exc: click.UsageError, ctx: click.Context) -> click.UsageError:
    if exc.ctx is None:
        exc.ctx = ctx
    return exc


class Command(click.Command):
    """A click command whose usage errors always carry their context, and whose body runs with
    the settings as its context object."""

    def invoke(self, ctx: click.Context) -> Any:
        settings_for(ctx)
        return super().invoke(ctx)

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
