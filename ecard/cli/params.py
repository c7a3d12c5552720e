"""Parameter types of the ``ecard`` commands: every range and file check happens while click
parses the command line, so a bad value is a usage error (exit 2, one line) before any work."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any

import click


class Between(click.IntRange):
    """A whole number in ``[low, high]``; the message says the range in words."""

    def __init__(self, low: int, high: int | None = None) -> None:
        super().__init__(min=low, max=high)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            if self.max is None:
                self.fail(f"must be a whole number >= {self.min}, not {value!r}.", param, ctx)
            self.fail(
                f"must be a whole number between {self.min} and {self.max}, not {value!r}.",
                param,
                ctx,
            )


class PositiveFinite(click.ParamType):
    """A finite number above 0 and at most ``high`` (``nan`` and ``inf`` are refused: click's
    ``FloatRange`` lets ``nan`` through, every comparison with it being false)."""

    name = "number"

    def __init__(self, high: float) -> None:
        self.high = high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"must be a number, not {value!r}.", param, ctx)
        if not math.isfinite(number) or not 0 < number <= self.high:
            self.fail(f"must be above 0 and at most {self.high:g}, not {value!r}.", param, ctx)
        return number


#: An existing regular file (not a folder).
FILE = click.Path(exists=True, dir_okay=False, readable=True)
#: An existing folder.
FOLDER = click.Path(exists=True, file_okay=False)
#: An existing file or folder (a clip, or a folder of JPEG frames).
FILE_OR_FOLDER = click.Path(exists=True)

#: The port of ``ecard serve`` and of the URLs ``ecard demo`` prints.
PORT = Between(1, 65535)


class Host(click.ParamType):
    """A host name or an IP address to listen on or to name in a URL (``0.0.0.0`` and ``::``
    included); nothing that could break out of ``host:port`` or a URL."""

    name = "host"
    _NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,252}[A-Za-z0-9])?$")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip()
        bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        try:
            ipaddress.ip_address(bare)
            return bare
        except ValueError:
            pass
        if not self._NAME.match(text):
            self.fail(f"must be a host name or an IP address, not {value!r}.", param, ctx)
        return text


HOST = Host()
