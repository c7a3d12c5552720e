"""The :class:`Store`: one engine per process, read sessions and write transactions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ecard.store.engine import make_engine, make_fork_safe
from ecard.store.migrate import upgrade


class FastScalar:
    """One compiled single-value query run on a raw pooled DBAPI connection.

    For the hottest read (a card's status on every online verification): the statement is
    compiled once per dialect, so a call costs a pool checkout and one ``execute``, about a
    sixth of an ORM/Core round trip. Only for statements whose result needs no type processing.
    """

    def __init__(self, engine: Engine, stmt: Select[Any]) -> None:
        compiled = stmt.compile(dialect=engine.dialect)
        self._engine = engine
        self._sql = str(compiled)
        self._names = tuple(compiled.positiontup or ()) if compiled.positional else None

    def __call__(self, **params: Any) -> Any:
        args: Any = tuple(params[n] for n in self._names) if self._names is not None else params
        conn = self._engine.raw_connection()
        try:
            cur = conn.cursor()
            try:
                cur.execute(self._sql, args)
                row = cur.fetchone()
            finally:
                cur.close()
        finally:
            conn.close()  # back to the pool (which rolls back the implicit transaction)
        return None if row is None else row[0]


class Store:
    """The database of one service process.

    ``read()`` gives a session for queries; ``write()`` a session inside one transaction that
    commits on success and rolls back on any exception (on SQLite it holds the write lock from
    the start, so concurrent writers queue instead of failing).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: compiled hot queries of this engine (:meth:`fast_scalar`); they die with the store
        self._fast: dict[str, FastScalar] = {}

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with (
            self.engine.connect().execution_options(ecard_write=True) as conn,
            Session(bind=conn, expire_on_commit=False, join_transaction_mode="rollback_only") as s,
        ):
            conn.begin()
            try:
                yield s
                s.flush()
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def fast_scalar(self, name: str, build: Callable[[], Select[Any]]) -> FastScalar:
        """The :class:`FastScalar` called ``name`` on this store's engine, compiled from
        ``build()`` on first use and kept by the store (never in a process-wide cache keyed by
        an object's ``id``, which a later engine may reuse)."""
        query = self._fast.get(name)
        if query is None:
            query = self._fast.setdefault(name, FastScalar(self.engine, build()))
        return query

    def migrate(self) -> None:
        """Apply every Alembic migration not yet applied (idempotent)."""
        upgrade(self.engine)

    def reachable(self) -> bool:
        """Whether a trivial query succeeds (for /readyz)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def after_fork(self) -> None:
        make_fork_safe(self.engine)

    def close(self) -> None:
        self._fast.clear()
        self.engine.dispose()


def open_store(url: str, *, migrate: bool = True) -> Store:
    """A :class:`Store` for ``url``, migrated to the latest schema unless ``migrate`` is False."""
    store = Store(make_engine(url))
    if migrate:
        store.migrate()
    return store
