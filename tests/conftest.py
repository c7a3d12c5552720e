"""Shared fixtures. Tests that need ../shared/data skip with a message where it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from sharedpaths import REPO, SHARED_DATA, shared_path

__all__ = ["REPO", "SHARED_DATA", "shared_path"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def face_models():
    """The real dlib models, loaded once for the whole test session."""
    from ecard.faces.models import shared_models

    return shared_models()
