"""`ecard ...` commands: thin wrappers over the domain functions (see CONTRACT.md, Command line).

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 1 anything else.
Heavy modules are imported inside each command so that `ecard --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ecard.errors import EcardError, InputError

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line on stderr with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, sort_keys=False) + "\n")


# --- face pipeline: liveness, match, blinks ---------------------------------------------------


def _register_face_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    """Face pipeline commands (owned by ecard/liveness and ecard/faces)."""


# --- tokens: keys rotate, verify, scan ---------------------------------------------------------


def _register_token_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    """Token commands (owned by ecard/tokens)."""


# --- service: citizens, channels, serve --------------------------------------------------------


def _register_service_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    """Service commands (owned by ecard/web and the store)."""


# --- entry point -------------------------------------------------------------------------------


def build_parser() -> _Parser:
    parser = _Parser(prog="ecard", description="Electronic social security cards.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _register_face_commands(sub)
    _register_token_commands(sub)
    _register_service_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except EcardError as exc:
        sys.stderr.write(f"ecard: {exc.code}: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("ecard: interrupted\n")
        return 1
    except OSError as exc:  # a file the user named cannot be read or written
        sys.stderr.write(f"ecard: {InputError.code}: {exc.strerror or exc}: {exc.filename}\n")
        return InputError.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
