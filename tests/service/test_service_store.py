"""The storage layer on SQLite and PostgreSQL: migrations, constraints, atomic guards."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError
from svc_helpers import insert_citizen, make_id_number

from ecard.citizens import check_digit, mask_id_number, validate_id_number
from ecard.errors import ConfigError, InvalidIdNumberError
from ecard.store import Store, open_store
from ecard.store.audit import DbAttemptCounter, DbReplayGuard
from ecard.store.engine import normalize_url
from ecard.store.models import Base, Card, Citizen, Enrollment, StatusListRow
from ecard.tokens.pin import LockoutPolicy


def test_migrations_match_the_models(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrating_twice_changes_nothing(db_url: str) -> None:
    first = open_store(db_url)
    first.close()
    again = open_store(db_url)
    with again.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0003"
    again.close()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:
    s = open_store(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(IntegrityError), s.write() as w:  # no such citizen / channel
        w.execute(
            insert(Enrollment).values(
                id="e1",
                citizen_id=42,
                channel_id=42,
                token_hash="0" * 64,
                state="authorized",
                created_at=datetime.now(UTC),
                expires_at=datetime.now(UTC),
                attempts=0,
            )
        )
    s.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("sqlite:////tmp/x.sqlite3", "sqlite:////tmp/x.sqlite3"),
    ],
)
def test_database_urls_are_normalised(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "postgresql+psycopg2://u@h/db"])
def test_unsupported_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        normalize_url(url)


def _card(card_id: str, citizen_id: int, enrollment_id: str, status: str, idx: int) -> dict:
    now = datetime.now(UTC)
    return dict(
        id=card_id,
        card_no=card_id[:12],
        citizen_id=citizen_id,
        enrollment_id=enrollment_id,
        status=status,
        status_list=1,
        status_idx=idx,
        pin_hash="x",
        jti=card_id,
        issued_at=now,
        expires_at=now + timedelta(days=1),
        changed_at=now,
    )


def test_database_refuses_a_second_live_card_for_one_citizen(store: Store, creds) -> None:
    insert_citizen(store)
    now = datetime.now(UTC)
    with store.write() as s:
        cid = s.query(Citizen.id).scalar()
        s.add(StatusListRow(id=1, size=10, next_idx=0))
        for eid in ("e1", "e2", "e3"):
            s.add(
                Enrollment(
                    id=eid,
                    citizen_id=cid,
                    channel_id=1,
                    token_hash=eid * 10,
                    state="issued",
                    created_at=now,
                    expires_at=now,
                    attempts=0,
                )
            )
        s.flush()
        s.execute(insert(Card).values(**_card("a" * 32, cid, "e1", "revoked", 0)))
        s.execute(insert(Card).values(**_card("b" * 32, cid, "e2", "suspended", 1)))
    with pytest.raises(IntegrityError), store.write() as s:
        s.execute(insert(Card).values(**_card("c" * 32, cid, "e3", "active", 2)))


def test_replay_guard_lets_one_of_many_concurrent_uses_through(store: Store) -> None:
    guard = DbReplayGuard(store)
    exp = datetime.now(UTC) + timedelta(seconds=60)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def use() -> None:
        barrier.wait()
        results.append(guard.use("jti-1", exp))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert guard.use("jti-2", exp) is True


def test_attempt_counter_counts_every_concurrent_failure(store: Store) -> None:
    unlimited = LockoutPolicy(delays=(), window_limit=1000, max_consecutive=None)
    counter = DbAttemptCounter(store)
    seen: list[int] = []
    barrier = threading.Barrier(10)

    def fail() -> None:
        barrier.wait()
        seen.append(counter.reserve("pin:x", unlimited, datetime.now(UTC)).failures)

    threads = [threading.Thread(target=fail) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 11))
    assert counter.failures("pin:x") == 10
    counter.reset("pin:x")
    assert counter.failures("pin:x") == 0


# --- GB 11643 ID numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "number", ["11010519491231002X", "11010519491231002x", make_id_number(7), "440524188001010014"]
)
def test_valid_id_numbers_are_accepted(number: str) -> None:
    assert validate_id_number(number) == number.upper()


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("110105194912310021", "check digit"),
        ("11010519491331002X", "birth date"),
        ("11010519491231002", "17 digits"),
        ("1101051949123100XX", "17 digits"),
        ("", "17 digits"),
        ("１１０１０５１９４９１２３１００２X", "17 digits"),
    ],
)
def test_invalid_id_numbers_are_refused_with_a_reason(number: str, why: str) -> None:
    with pytest.raises(InvalidIdNumberError, match=why):
        validate_id_number(number)


def test_check_digit_and_mask() -> None:
    assert check_digit("11010519491231002") == "X"
    assert mask_id_number("11010519491231002X") == "110105********002X"
