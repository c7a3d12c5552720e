"""Database engines: SQLite in the instance folder by default, PostgreSQL by URL.

SQLite runs in WAL mode with foreign keys on and a busy timeout; write transactions start with
``BEGIN IMMEDIATE`` so that two writers queue on the lock instead of failing half-way with
"database is locked". A ``postgresql://`` URL is mapped to the psycopg 3 driver.

The SQLite file holds ID numbers, names, ID photos and face templates: it is created 0600
before SQLite opens it (SQLite gives its ``-wal`` and ``-shm`` files the mode of the database
file), and an existing file (or ``-wal``/``-shm``) with a looser mode is closed again, whatever
the umask.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ecard.errors import ConfigError

#: Seconds a SQLite writer waits for the lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 15.0


def normalize_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` to ``postgresql+psycopg://``; refuse others."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError("ECARD_DATABASE_URL is not a valid database URL.") from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError("ECARD_DATABASE_URL must be a sqlite:// or postgresql:// URL.")
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        raise ConfigError("PostgreSQL URLs use the psycopg 3 driver (postgresql://...).")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the project's connection settings applied."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        if url in ("sqlite://", "sqlite:///:memory:"):
            raise ConfigError("An in-memory SQLite database cannot be shared; use a file.")
        _private_sqlite_files(make_url(url).database)
        kwargs.setdefault(
            "connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        )
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


#: Database file and the files SQLite keeps beside it in WAL mode.
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _private_sqlite_files(database: str | None) -> None:
    """Create the SQLite file 0600 (its folder 0700 if we make it); tighten looser modes."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError as exc:
        raise ConfigError(f"The SQLite database {path} cannot be created.") from exc
    for suffix in _SQLITE_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            side = Path(f"{path}{suffix}")
            if side.stat().st_mode & 0o077:
                os.chmod(side, 0o600)


def make_fork_safe(engine: Engine) -> None:
    """Drop pooled connections inherited across fork() (gunicorn preload)."""
    engine.dispose(close=False)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred and late).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("ecard_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


__all__ = ["make_engine", "make_fork_safe", "normalize_url"]
