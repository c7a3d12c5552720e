"""Alembic environment: the engine comes from ecard.store.migrate (no alembic.ini, no URL here)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from ecard.store.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    if connection.dialect.name == "postgresql":
        # Several gunicorn masters or test runs may start at once: migrate one at a time.
        connection.execute(text("SELECT pg_advisory_xact_lock(47110815)"))
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
