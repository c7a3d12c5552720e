"""Where the shared real data lives: ../shared/data beside the clone (or $ECARD_SHARED_DATA).

A plain module (not conftest) so that test files import it by name: several conftest.py files
exist under tests/, and `from conftest import ...` would pick whichever was imported first.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ECARD_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or a skip when the shared data set is not beside the clone."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs ../shared/data ({path} is absent): real clips and faces live there")
    return path
