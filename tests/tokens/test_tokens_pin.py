"""PIN policy tables, argon2id + pepper storage, and lockout under concurrent guesses."""

from __future__ import annotations

import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecard.errors import ConfigError, PinLockedError, PinPolicyError, PinWaitError, WrongPinError
from ecard.tokens.pin import (
    COMMON_PINS,
    DAILY_LIMIT,
    FREE_TRIES,
    MAX_CONSECUTIVE,
    PIN_LOCKOUT,
    LockoutPolicy,
    MemoryAttemptCounter,
    PinGuard,
    PinHasher,
    check_pin_policy,
    hash_pin,
    load_pepper,
    pin_needs_rehash,
    verify_pin,
)

ID_NUMBER = "11010519491231002X"  # born 1949-12-31 (the GB 11643 example number)


@pytest.mark.parametrize(
    ("pin", "code"),
    [
        ("12345", "pin_format"),
        ("1234567", "pin_format"),
        ("12a456", "pin_format"),
        (" 48291", "pin_format"),
        ("４８２９１３", "pin_format"),  # full-width digits
        ("٤٨٢٩١٣", "pin_format"),  # Arabic-Indic digits: str.isdigit() would accept them
        (482913, "pin_format"),
        (None, "pin_format"),
        ("000000", "pin_repeated"),
        ("777777", "pin_repeated"),
        ("121212", "pin_repeated"),
        ("707070", "pin_repeated"),
        ("123123", "pin_repeated"),
        ("840840", "pin_repeated"),
        ("123456", "pin_sequence"),
        ("456789", "pin_sequence"),
        ("012345", "pin_sequence"),
        ("890123", "pin_sequence"),  # wraps round 9 -> 0
        ("654321", "pin_sequence"),
        ("987654", "pin_sequence"),
        ("210987", "pin_sequence"),
        ("147258", "pin_common"),
        ("520520", "pin_repeated"),
        ("131420", "pin_common"),
        ("112233", "pin_common"),
        ("159753", "pin_common"),
        ("168168", "pin_repeated"),
        ("584520", "pin_common"),
    ],
)
def test_policy_refusals_without_id(pin: object, code: str) -> None:
    with pytest.raises(PinPolicyError) as exc:
        check_pin_policy(pin)
    assert exc.value.code == code
    assert exc.value.status == 422 and exc.value.exit_code == 2
    if isinstance(pin, str):
        assert pin not in exc.value.message


@pytest.mark.parametrize(
    ("pin", "code"),
    [
        ("491231", "pin_birth_date"),  # YYMMDD
        ("311249", "pin_birth_date"),  # DDMMYY
        ("123149", "pin_birth_date"),  # MMDDYY
        ("194912", "pin_birth_date"),  # YYYYMM
        ("121949", "pin_birth_date"),  # MMYYYY
        ("901231", "pin_birth_date"),  # contains MMDD
        ("731120", "pin_birth_date"),  # contains DDMM
        ("31002X", "pin_format"),
        ("191002", "pin_ok"),
    ],
)
def test_policy_with_the_holders_id_number(pin: str, code: str) -> None:
    if code == "pin_ok":
        check_pin_policy(pin, id_number=ID_NUMBER)
        return
    with pytest.raises(PinPolicyError) as exc:
        check_pin_policy(pin, id_number=ID_NUMBER)
    assert exc.value.code == code


def test_last_six_of_the_id_number() -> None:
    with pytest.raises(PinPolicyError) as exc:
        check_pin_policy("048273", id_number="110105198702048273")
    assert exc.value.code in ("pin_id_number", "pin_birth_date")
    with pytest.raises(PinPolicyError) as exc:
        check_pin_policy("315736", id_number="110105198811315736")
    assert exc.value.code == "pin_id_number"


@pytest.mark.parametrize("pin", ["482913", "730518", "069247", "905172", "318064"])
def test_ordinary_pins_are_accepted(pin: str) -> None:
    check_pin_policy(pin, id_number=ID_NUMBER)


def test_blocklist_is_six_digit_pins_only() -> None:
    assert len(COMMON_PINS) > 100
    assert all(len(p) == 6 and p.isascii() and p.isdigit() for p in COMMON_PINS)


def test_how_many_pins_the_policy_leaves() -> None:
    """Almost all of the 10^6 PINs stay available: the rules cut the guessable top only."""
    refused = 0
    for n in range(0, 1_000_000, 7):
        try:
            check_pin_policy(f"{n:06d}")
        except PinPolicyError:
            refused += 1
    assert refused / (1_000_000 / 7) < 0.01


@pytest.fixture(scope="module")
def pepper(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return load_pepper(tmp_path_factory.mktemp("inst"))


@pytest.fixture(scope="module")
def stored(pepper: bytes) -> str:
    return hash_pin("482913", pepper)


def test_hash_is_argon2id_with_owasp_parameters(stored: str) -> None:
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "482913" not in stored
    assert not pin_needs_rehash(stored)


def test_verify_right_and_wrong(stored: str, pepper: bytes) -> None:
    assert verify_pin("482913", stored, pepper)
    assert not verify_pin("482914", stored, pepper)
    assert not verify_pin("48291", stored, pepper)
    assert not verify_pin(None, stored, pepper)


def test_same_pin_hashes_differently(pepper: bytes, stored: str) -> None:
    assert hash_pin("482913", pepper) != stored


def test_the_pepper_is_needed(stored: str) -> None:
    """A stolen database without the instance's pepper cannot check any PIN."""
    other = bytes(32)
    assert not verify_pin("482913", stored, other)


def test_pepper_file_is_private_and_stable(tmp_path: Path) -> None:
    first = load_pepper(tmp_path)
    assert stat.S_IMODE((tmp_path / "pin_pepper").stat().st_mode) == 0o600
    assert load_pepper(tmp_path) == first and len(first) == 32
    (tmp_path / "pin_pepper").write_bytes(b"short")
    with pytest.raises(ConfigError):
        load_pepper(tmp_path)


def test_damaged_hash_is_a_config_error(pepper: bytes) -> None:
    with pytest.raises(ConfigError):
        verify_pin("482913", "$argon2id$garbage", pepper)


def test_pin_hasher_binds_the_pepper(tmp_path: Path) -> None:
    hasher = PinHasher.open(tmp_path)
    h = hasher.hash("730518")
    assert hasher.verify("730518", h) and not hasher.verify("730519", h)
    assert "pepper=<hidden>" in repr(hasher)


# --- lockout -------------------------------------------------------------------------------

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def _code(guard: PinGuard, key: str, right: bool) -> str:
    try:
        guard.check(key, lambda: right)
    except (WrongPinError, PinWaitError, PinLockedError) as exc:
        return exc.code
    return "ok"


def test_five_free_tries_then_a_wait_that_even_the_right_pin_must_respect() -> None:
    clock = Clock()
    guard = PinGuard(MemoryAttemptCounter(), clock=clock)
    messages = []
    for _ in range(FREE_TRIES - 1):
        with pytest.raises(WrongPinError) as exc:
            guard.check("pin:c1", lambda: False)
        messages.append(exc.value.message)
    assert "4 tries left" in messages[0] and "1 try left" in messages[-1]
    with pytest.raises(PinWaitError) as wait:
        guard.check("pin:c1", lambda: False)  # the fifth wrong PIN: 1 min
    assert wait.value.retry_after == 60 and wait.value.status == 429
    with pytest.raises(PinWaitError):
        guard.check("pin:c1", lambda: True)  # not even the right PIN is checked meanwhile
    guard.check("pin:c2", lambda: True)  # other cards are not affected
    clock.advance(seconds=61)
    guard.check("pin:c1", lambda: True)  # a minute later the holder gets in
    assert guard.counter.failures("pin:c1") == 0


def test_the_wait_grows_and_ten_wrong_pins_a_day_at_most() -> None:
    clock = Clock()
    guard = PinGuard(MemoryAttemptCounter(), clock=clock)
    for _ in range(4):
        assert _code(guard, "k", False) == "wrong_pin"
    waits = []
    for _ in range(6):  # wrong PINs 5-10, each as soon as it is allowed
        with pytest.raises(PinWaitError) as exc:
            guard.check("k", lambda: False)
        waits.append(exc.value.retry_after)
        clock.advance(seconds=exc.value.retry_after)
    assert waits[:5] == [60, 300, 1800, 3600, 3600]
    # the tenth wrong PIN of the day: the next try is 24 h after the first failure
    elapsed = sum(waits[:5])
    assert waits[5] == 24 * 3600 - elapsed
    assert _code(guard, "k", True) == "ok"  # a day later, the right PIN works again


def test_a_stranger_never_locks_the_card_for_good_and_gets_at_most_100_guesses() -> None:
    """Guessing as fast as the policy allows: 10 checks a day, so the NIST SP 800-63B limit
    of 100 consecutive failures takes 10 days; then the PIN is blocked until the holder sets a
    new one after a face check (the reset), never before, and the holder can always reset."""
    clock = Clock()
    guard = PinGuard(MemoryAttemptCounter(), clock=clock)
    checks = 0

    def wrong() -> bool:
        nonlocal checks
        checks += 1
        return False

    days = 0
    while True:
        try:
            guard.check("k", wrong)
        except WrongPinError:
            continue
        except PinWaitError as exc:
            clock.advance(seconds=exc.retry_after)
            continue
        except PinLockedError:
            break
        raise AssertionError("a wrong PIN was accepted")
    days = (clock.now - T0).days
    assert checks == MAX_CONSECUTIVE == 100
    assert 9 <= days <= 10
    assert _code(guard, "k", True) == "pin_locked"
    guard.reset("k")  # the holder's new PIN after a fresh face check
    assert _code(guard, "k", True) == "ok"


def test_success_resets_the_count() -> None:
    counter = MemoryAttemptCounter()
    guard = PinGuard(counter)
    for _ in range(4):
        with pytest.raises(WrongPinError):
            guard.check("k", lambda: False)
    guard.check("k", lambda: True)
    assert counter.failures("k") == 0
    with pytest.raises(WrongPinError) as exc:
        guard.check("k", lambda: False)
    assert exc.value.message.endswith("4 tries left before a wait.")


def test_policy_figures() -> None:
    assert (FREE_TRIES, DAILY_LIMIT, MAX_CONSECUTIVE) == (5, 10, 100)
    assert [PIN_LOCKOUT.delay_after(n) for n in (4, 5, 6, 7, 8, 50)] == [
        None,
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=1),
        timedelta(hours=1),
    ]
    with pytest.raises(ValueError):
        LockoutPolicy(free_tries=0)


def test_concurrent_guesses_never_get_more_than_the_free_checks(stored: str, pepper: bytes) -> None:
    """40 threads guess at once, each running the real argon2id check: the fifth reservation
    already sets the wait, so five checks run and everyone else is told to wait."""
    guard = PinGuard(MemoryAttemptCounter())
    checks = 0
    lock = threading.Lock()
    barrier = threading.Barrier(40)
    outcomes: list[str] = []

    def wrong_guess(i: int) -> None:
        def is_correct() -> bool:
            nonlocal checks
            with lock:
                checks += 1
            return verify_pin(f"{100000 + i:06d}", stored, pepper)

        barrier.wait()
        try:
            guard.check("pin:card", is_correct)
            outcomes.append("ok")
        except (WrongPinError, PinWaitError, PinLockedError) as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=wrong_guess, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert checks == FREE_TRIES
    assert outcomes.count("wrong_pin") == FREE_TRIES - 1
    assert outcomes.count("pin_wait") == 40 - (FREE_TRIES - 1)
    assert "ok" not in outcomes


def test_guard_check_pin_uses_the_hash(stored: str, pepper: bytes) -> None:
    guard = PinGuard(MemoryAttemptCounter())
    with pytest.raises(WrongPinError):
        guard.check_pin("k", "111112", stored, pepper)
    guard.check_pin("k", "482913", stored, pepper)
    assert guard.counter.failures("k") == 0
