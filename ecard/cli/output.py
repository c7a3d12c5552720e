"""What the commands print: JSON documents on stdout, one per line (CONTRACT.md, Command line)."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(obj: Any, *, indent: int | None = None) -> None:
    """One JSON document on stdout (one line unless ``indent`` is given); non-ASCII kept."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def print_line(text: str) -> None:
    """A line for the person at the terminal (the non-``--json`` output)."""
    sys.stdout.write(text + "\n")


def warn(text: str) -> None:
    """A line on stderr that is not an error (the demo's link for the person)."""
    sys.stderr.write(text + "\n")
