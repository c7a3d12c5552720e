"""Reading the files a person names on the command line, with a size bound: a path such as
``/dev/zero`` or a FIFO, or a file far larger than the command can use, is refused after at
most ``limit + 1`` bytes (or, for the paths the face pipeline opens itself, before it opens
them) instead of being read until memory runs out."""

from __future__ import annotations

import os
import stat
import sys

from ecard.errors import InputError, TokenMalformedError, UnreadableMediaError

#: A JWKS of a few dozen keys is a few kB.
MAX_JWKS_BYTES = 1024 * 1024
#: A token read from stdin (the JWS itself is at most ``ecard.tokens.jws.MAX_TOKEN_CHARS``).
MAX_STDIN_TOKEN_CHARS = 64 * 1024


def regular_path(
    name: str, *, limit: int | None = None, error: type[InputError] = UnreadableMediaError
) -> str:
    """``name`` when it is a regular file (of at most ``limit`` bytes) or a folder, or does not
    exist (the caller reports that); a device or a FIFO is ``error``. For the paths handed on
    to code that opens them itself (the face pipeline, the CSV reader), which would read a
    device without end."""
    try:
        st = os.stat(name)
    except OSError:
        return name
    if stat.S_ISDIR(st.st_mode):
        return name
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{name} is not a regular file.")
    if limit is not None and st.st_size > limit:
        raise error(f"{name} is larger than {limit} bytes.")
    return name


def read_bounded(
    path: str, limit: int, *, what: str, error: type[InputError] = InputError
) -> bytes:
    """The bytes of ``path``; ``error`` (exit 2) when it holds more than ``limit`` bytes."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise error(f"The {what} is larger than {limit} bytes.")
    return data


def read_token(value: str) -> str:
    """A token from the command line, or from stdin when given as ``-``."""
    if value != "-":
        return value.strip()
    try:
        text = sys.stdin.read(MAX_STDIN_TOKEN_CHARS + 1)
    except UnicodeDecodeError:
        raise TokenMalformedError("The token on stdin is not text.") from None
    if len(text) > MAX_STDIN_TOKEN_CHARS:
        raise TokenMalformedError(f"The token on stdin is longer than {MAX_STDIN_TOKEN_CHARS}.")
    return text.strip()
