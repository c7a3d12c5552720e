"""Finding 2: wrong-PIN lockout per card with a time-based component, counted atomically in the
database (SQLite and PostgreSQL), and the holder's ways out (face check, channel)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from ecard.errors import PinLockedError, PinWaitError, WrongPinError
from ecard.store import Store
from ecard.store.audit import DbAttemptCounter
from ecard.tokens.pin import FREE_TRIES, LockoutPolicy, PinGuard

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def _try(guard: PinGuard, key: str, right: bool, now: datetime) -> tuple[str, int | None]:
    try:
        guard.check(key, lambda: right, now=now)
    except PinWaitError as exc:
        return exc.code, exc.retry_after
    except (WrongPinError, PinLockedError) as exc:
        return exc.code, None
    return "ok", None


def test_database_counter_follows_the_policy(store: Store) -> None:
    guard = PinGuard(DbAttemptCounter(store))
    now = T0
    assert [_try(guard, "pin:c", False, now)[0] for _ in range(4)] == ["wrong_pin"] * 4
    assert _try(guard, "pin:c", False, now) == ("pin_wait", 60)
    assert _try(guard, "pin:c", True, now + timedelta(seconds=30))[0] == "pin_wait"
    waits = []
    now += timedelta(seconds=60)
    for _ in range(5):  # wrong PINs 6-10
        code, wait = _try(guard, "pin:c", False, now)
        assert code == "pin_wait" and wait is not None
        waits.append(wait)
        now += timedelta(seconds=wait)
    assert waits == [300, 1800, 3600, 3600, 24 * 3600 - 60 - 300 - 1800 - 3600 - 3600]
    assert _try(guard, "pin:c", True, now) == ("ok", None)
    assert DbAttemptCounter(store).failures("pin:c") == 0


def test_database_counter_blocks_after_100_consecutive_until_reset(store: Store) -> None:
    counter = DbAttemptCounter(store)
    policy = LockoutPolicy(free_tries=5, delays=(), window_limit=1000, max_consecutive=100)
    results = [counter.reserve("k", policy, T0).allowed for _ in range(101)]
    assert results.count(True) == 100 and results[-1] is False
    refused = counter.reserve("k", policy, T0 + timedelta(days=30))
    assert refused.allowed is False and refused.retry_at is None  # only a reset ends it
    counter.reset("k")
    assert counter.reserve("k", policy, T0).allowed


def test_concurrent_wrong_pins_in_the_database_get_five_checks(store: Store) -> None:
    """30 threads with a wrong PIN at the same instant: the counter lets exactly the five
    free tries through (the fifth sets the wait in the same statement)."""
    guard = PinGuard(DbAttemptCounter(store))
    barrier = threading.Barrier(30)
    checks = 0
    lock = threading.Lock()
    out: list[str] = []

    def wrong() -> bool:
        nonlocal checks
        with lock:
            checks += 1
        return False

    def run() -> None:
        barrier.wait()
        try:
            guard.check("pin:race", wrong, now=T0)
        except (WrongPinError, PinWaitError, PinLockedError) as exc:
            with lock:
                out.append(exc.code)

    threads = [threading.Thread(target=run) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert checks == FREE_TRIES
    assert sorted(set(out)) == ["pin_wait", "wrong_pin"]
    assert out.count("wrong_pin") == FREE_TRIES - 1


@pytest.mark.parametrize("limit", [10])
def test_concurrent_desk_logins_never_pass_the_limit(store: Store, limit: int) -> None:
    """Finding 10's mechanism: the desk-login policy on the same atomic counter."""
    counter = DbAttemptCounter(store)
    policy = LockoutPolicy(
        free_tries=limit,
        delays=(),
        window=timedelta(hours=1),
        window_limit=limit,
        max_consecutive=None,
    )
    barrier = threading.Barrier(25)
    allowed: list[bool] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        got = counter.reserve("desk-login:10.0.0.9", policy, T0).allowed
        with lock:
            allowed.append(got)

    threads = [threading.Thread(target=run) for _ in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == limit
    assert counter.reserve("desk-login:10.0.0.9", policy, T0 + timedelta(minutes=61)).allowed
