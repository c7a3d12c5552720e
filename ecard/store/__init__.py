"""Storage: SQLAlchemy 2.0 models, Alembic migrations and the repositories the service uses.

SQLite in the instance folder by default; ``ECARD_DATABASE_URL=postgresql://...`` works the same.
"""

from __future__ import annotations

from ecard.store.db import Store, open_store

__all__ = ["Store", "open_store"]
