"""``ecard ...``: the command line, on click (see CONTRACT.md, Command line).

Exit codes: 0 success, 2 bad input or bad usage, 1 anything else, 130 when interrupted. Every
failure is exactly one line on stderr, ``ecard: <code>: <message>`` for an
:class:`~ecard.errors.EcardError` (its ``code`` and ``exit_code``) and ``ecard: error: <message>
(see '<command> --help')`` for a usage error; never a traceback (``ecard --traceback ...`` shows
one for an unexpected error, for a bug report).

The settings are read once, after the command line is parsed, and reach the command as click's
context object (:mod:`ecard.cli.command`). Commands import the heavy modules (dlib, OpenCV,
numpy, the database) inside their body, so that ``ecard --help`` and a usage error stay
instant.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from ecard.cli import faces, service, tokens
from ecard.cli.command import Group, one_line, usage_line
from ecard.errors import EcardError, InputError

__all__ = ["cli", "main"]

#: Tab completion: ``eval "$(_ECARD_COMPLETE=bash_source ecard)"`` (or zsh_source, fish_source).
COMPLETE_VAR = "_ECARD_COMPLETE"


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="ecard", prog_name="ecard", message="%(prog)s %(version)s")
@click.option(
    "--traceback",
    "show_traceback",
    is_flag=True,
    help="Show the traceback of an unexpected error (for a bug report).",
)
def cli(show_traceback: bool) -> None:
    """Electronic social security cards: blink liveness, ID-photo matching, e-card tokens and
    the service that issues them.

    Configuration comes from the environment (ECARD_INSTANCE, ECARD_DATABASE_URL, ...; see
    docs/service.md). Exit 0 on success, 2 on bad input, 1 on anything else."""


for _command in (
    faces.liveness,
    faces.blinks,
    faces.match,
    tokens.keys,
    tokens.verify,
    tokens.scan,
    service.citizens,
    service.channels,
    service.db,
    service.demo,
    service.serve,
):
    cli.add_command(_command)


def _fail(line: str, code: int) -> int:
    sys.stderr.write(line + "\n")
    return code


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ecard`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    if argv is None and os.environ.get(COMPLETE_VAR):  # the shell asks for tab completion
        from click.shell_completion import shell_complete

        return shell_complete(cli, {}, "ecard", COMPLETE_VAR, os.environ[COMPLETE_VAR])
    args = list(sys.argv[1:] if argv is None else argv)
    ctx: click.Context | None = None
    try:
        ctx = cli.make_context("ecard", args)
        with ctx:
            result: Any = cli.invoke(ctx)
        return int(result or 0)
    except click.exceptions.Exit as exc:  # --help
        return int(exc.exit_code)
    except click.UsageError as exc:
        return _fail(usage_line(exc), 2)
    except click.ClickException as exc:
        return _fail(f"ecard: error: {one_line(exc.format_message())}", exc.exit_code)
    except click.Abort:
        return 130
    except EcardError as exc:
        return _fail(f"ecard: {exc.code}: {one_line(exc.message)}", exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ecard keys list | head -1`: the reader left; nothing to say
        _drop_stdout()
        return 1
    except OSError as exc:  # a file the user named cannot be read or written
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"ecard: {InputError.code}: {one_line(f'{exc.strerror or exc}{where}')}", 2)
    except Exception as exc:
        if ctx is not None and ctx.params.get("show_traceback"):
            raise
        name = type(exc).__name__
        return _fail(
            f"ecard: internal_error: unexpected {name}; run `ecard --traceback ...` to see it", 1
        )
