"""Fixtures of the service tests: a store on SQLite *and* PostgreSQL, apps, channels, citizens.

PostgreSQL tests run in a schema of their own on 127.0.0.1:5432 (database ``test``) that is
dropped afterwards; they skip with a message where no server answers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from svc_helpers import Clients, app_config

from ecard.store import Store, open_store

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_reachable() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_BASE, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at 127.0.0.1:5432/test is not reachable: {exc}".splitlines()[0]


@pytest.fixture(scope="session")
def pg_skip_reason() -> str | None:
    return _pg_reachable()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_skip_reason: str | None
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ecard.sqlite3'}"
        return
    if pg_skip_reason:
        pytest.skip(pg_skip_reason)
    import psycopg

    schema = "ecard_t_" + secrets.token_hex(6)
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def unloaded_models() -> Any:
    from ecard.faces.models import FaceModels

    return FaceModels()


@pytest.fixture
def app(tmp_path: Path, store: Store, unloaded_models: Any) -> Any:
    from ecard.web import create_app

    return create_app(app_config(tmp_path, store, unloaded_models))


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def creds(store: Store) -> Clients:
    return Clients(store)
