"""The card PIN: policy, storage (argon2id + pepper) and lockout.

Policy (:func:`check_pin_policy`), each refusal with its own stable code:

- ``pin_format``: exactly 6 ASCII digits (not ``"١٢٣٤٥٦"``, no spaces);
- ``pin_repeated``: one digit six times (``111111``) or a 2- or 3-digit pattern repeated
  (``121212``, ``123123``);
- ``pin_sequence``: six consecutive digits up or down, wrapping round 9-0 (``123456``,
  ``654321``, ``890123``);
- ``pin_birth_date`` (when the 18-digit ID number is given): the birth date ``YYYYMMDD`` at
  positions 7-14 of the ID number as ``YYMMDD``, ``DDMMYY``, ``MMDDYY``, ``YYYYMM``, ``MMYYYY``, or
  any PIN containing ``MMDD`` or ``DDMM`` (the month-day pair is what people reuse);
- ``pin_id_number``: the last six characters of the ID number (a common choice in China);
- ``pin_common``: one of the most common 6-digit PINs (:data:`COMMON_PINS`).

Storage: ``argon2id(HMAC-SHA256(pepper, pin))`` with the OWASP parameters (19 MiB, t=2, p=1).
The pepper is 32 random bytes in ``<instance>/pin_pepper`` (mode 0600), never in the database,
so a stolen database alone cannot be brute-forced even over the 10^6 possible PINs.

Lockout (:class:`LockoutPolicy`, docs/service.md "PIN policy and lockout"): per card, with a
time-based component so that nobody who merely knows a card number can lock it for good:
the first :data:`FREE_TRIES` wrong PINs cost nothing, each later one imposes a growing wait
(1 min, 5 min, 30 min, then 1 h), at most :data:`DAILY_LIMIT` wrong PINs are checked in any
24 hours, and after :data:`MAX_CONSECUTIVE` consecutive wrong PINs (NIST SP 800-63B §5.2.2:
"no more than 100 consecutive failed attempts") the PIN is blocked until the holder sets a new
one after a fresh face check (``ecard.recovery``). The holder can always report a loss, PIN or
not. :class:`PinGuard` reserves a try *before* checking, through an :class:`AttemptCounter`
whose ``reserve`` is atomic (one SQL ``UPDATE ... WHERE <allowed> RETURNING``), so however
many guesses race, no more are ever checked than the policy allows. A correct PIN resets it.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ecard.errors import (
    ConfigError,
    PinBirthDateError,
    PinCommonError,
    PinFormatError,
    PinIdNumberError,
    PinLockedError,
    PinRepeatedError,
    PinSequenceError,
    PinWaitError,
    WrongPinError,
)

PIN_LENGTH = 6

_SIX_DIGITS = re.compile(r"[0-9]{6}")

#: Most common 6-digit PINs, compiled by hand (not a verbatim copy of any list) after the top
#: entries reported by studies of leaked and user-chosen 6-digit PINs (Wang et al.,
#: "Understanding Human-Chosen PINs", 2017, with Chinese users; Markert et al. 2020), plus keypad
#: shapes (columns, diagonals, crosses) and culturally lucky numbers (520 "I love you", 168,
#: 518, 888). Repeats and plain sequences are refused by their own rules.
_COMMON = """
    123123 321321 123321 112233 332211 121212 101010 111222 222111 112211 110110 100100 100200
    101101 111000 000111 102030 010203 123654 123789 147258 258369 369258 147369 159357 159753
    357159 357951 741852 852963 963852 852741 147852 258456 456852 789456 654987 789123 321987
    987123 147963 741963 369147 753951 951753 159951 520520 521521 520521 521520 131420 131421
    201314 520131 584520 530530 168168 518518 888999 666888 888666 668899 998877 778899 223344
    445566 556677 667788 789789 456456 123000 000123 100000 200000 111112 111122 121314 135790
    246810 135246 102938 010101 020202 030303 050505 070707 090909 007007 119119 120120 110120
    999000 199001 198964 147147 258258 369369 142536 142857 171717 131313 696969 212121 777888
    654321 456789 987654 666999 112358 314159 271828 161803 100200 888000 520000 250250 222333
"""
COMMON_PINS = frozenset(_COMMON.split())


# --- policy ------------------------------------------------------------------------------


def _is_sequence(pin: str) -> bool:
    d = [int(c) for c in pin]
    steps = {(b - a) % 10 for a, b in itertools.pairwise(d)}
    return steps in ({1}, {9})


def _is_repeated(pin: str) -> bool:
    return any(pin == pin[:n] * (PIN_LENGTH // n) for n in (1, 2, 3))


def _birth_date_forms(id_number: str) -> tuple[set[str], set[str]]:
    """Whole-PIN forms and 4-digit month-day forms of the birth date in an 18-digit ID."""
    if not re.fullmatch(r"[0-9]{17}[0-9Xx]", id_number):
        return set(), set()
    yyyy, mm, dd = id_number[6:10], id_number[10:12], id_number[12:14]
    yy = yyyy[2:]
    whole = {yy + mm + dd, dd + mm + yy, mm + dd + yy, yyyy + mm, mm + yyyy}
    return whole, {mm + dd, dd + mm}


def check_pin_policy(pin: object, *, id_number: str | None = None) -> None:
    """Raise a :class:`~ecard.errors.PinPolicyError` subclass if ``pin`` may not be used.

    ``id_number`` (the holder's 18-character resident ID) enables the birth-date and ID rules.
    Never logs or echoes the PIN.
    """
    if not isinstance(pin, str) or not _SIX_DIGITS.fullmatch(pin):
        raise PinFormatError()
    if _is_repeated(pin):
        raise PinRepeatedError()
    if _is_sequence(pin):
        raise PinSequenceError()
    if id_number:
        whole, month_day = _birth_date_forms(id_number)
        if pin in whole or any(md in pin for md in month_day):
            raise PinBirthDateError()
        if pin == id_number[-PIN_LENGTH:].upper():
            raise PinIdNumberError()
    if pin in COMMON_PINS:
        raise PinCommonError()


# --- storage -----------------------------------------------------------------------------

#: OWASP Password Storage Cheat Sheet, argon2id option 2: m=19 MiB, t=2, p=1.
_HASHER = PasswordHasher(
    time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)
PEPPER_FILE = "pin_pepper"


def load_pepper(instance: Path | str, *, create: bool = True) -> bytes:
    """The PIN pepper of ``instance`` (32 bytes in ``pin_pepper``, mode 0600), made on first run.

    Keep it out of the database and out of backups of the database: it is what makes a stolen
    table of PIN hashes useless. Losing it makes every stored PIN unverifiable.
    """
    path = Path(instance) / PEPPER_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise ConfigError("The PIN pepper file is missing.") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return load_pepper(instance, create=False)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
            f.flush()
            os.fsync(f.fileno())
        return load_pepper(instance, create=False)
    except OSError as exc:
        raise ConfigError("The PIN pepper file cannot be read.") from exc
    if len(data) != 32:
        raise ConfigError("The PIN pepper file is damaged.")
    return data


def _peppered(pin: str, pepper: bytes) -> bytes:
    if len(pepper) < 16:
        raise ConfigError("The PIN pepper is too short.")
    return hmac.new(pepper, pin.encode("utf-8"), hashlib.sha256).digest()


def hash_pin(pin: str, pepper: bytes) -> str:
    """argon2id hash (PHC string, about 100 characters) of the peppered PIN. Takes ~50 ms."""
    if not isinstance(pin, str) or not _SIX_DIGITS.fullmatch(pin):
        raise PinFormatError()
    return _HASHER.hash(_peppered(pin, pepper))


def verify_pin(pin: object, stored_hash: str, pepper: bytes) -> bool:
    """True when ``pin`` matches ``stored_hash`` (constant-time inside libargon2).

    A malformed PIN is simply wrong, after the same slow check (no timing difference).
    """
    well_formed = isinstance(pin, str) and bool(_SIX_DIGITS.fullmatch(pin))
    candidate = pin if well_formed and isinstance(pin, str) else "\x00" * PIN_LENGTH
    try:
        ok = _HASHER.verify(stored_hash, _peppered(candidate, pepper))
    except VerifyMismatchError:
        return False
    except (InvalidHashError, VerificationError) as exc:  # cannot be decoded at all
        raise ConfigError("A stored PIN hash is damaged.") from exc
    return bool(ok) and well_formed


def pin_needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(stored_hash)


class PinHasher:
    """:func:`hash_pin` / :func:`verify_pin` bound to one instance's pepper (build once)."""

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 16:
            raise ConfigError("The PIN pepper is too short.")
        self._pepper = pepper
        self._decoy: str | None = None

    @classmethod
    def open(cls, instance: Path | str) -> PinHasher:
        """The hasher of ``instance``, creating its pepper file on first run."""
        return cls(load_pepper(instance))

    def __repr__(self) -> str:
        return "PinHasher(pepper=<hidden>)"

    def hash(self, pin: str) -> str:
        return hash_pin(pin, self._pepper)

    def verify(self, pin: object, stored_hash: str) -> bool:
        return verify_pin(pin, stored_hash, self._pepper)

    def decoy_hash(self) -> str:
        """A hash of a random PIN, made once per hasher: checking against it costs what a real
        check costs, for answers that must not tell a missing card from a wrong PIN."""
        if self._decoy is None:
            import secrets

            self._decoy = self.hash(f"{secrets.randbelow(10**6):06d}")
        return self._decoy


# --- lockout -----------------------------------------------------------------------------

#: Consecutive wrong PINs that cost no wait (a holder mistyping twice never notices).
FREE_TRIES = 5
#: The wait imposed by each wrong PIN after the free ones: the 5th wrong PIN gives 1 min, the
#: 6th 5 min, the 7th 30 min, every later one 1 h.
DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=1))
#: Wrong PINs checked per card in any rolling 24 hours (a stranger's guesses per day).
DAILY_LIMIT = 10
#: NIST SP 800-63B §5.2.2: at most 100 consecutive failed attempts on one account; after that
#: the PIN is blocked until reset by a fresh face check (reporting a loss still works).
MAX_CONSECUTIVE = 100


@dataclass(frozen=True)
class LockoutPolicy:
    """How wrong tries are limited per key.

    ``free_tries`` consecutive failures cost nothing; failure number ``free_tries + i`` makes the
    key wait ``delays[min(i, len(delays) - 1)]`` before the next try (no wait when ``delays`` is
    empty); at most ``window_limit`` failures count in any ``window``; after ``max_consecutive``
    consecutive failures (None: no such limit) the key is blocked until :meth:`PinGuard.reset`.
    """

    free_tries: int = FREE_TRIES
    delays: tuple[timedelta, ...] = DELAYS
    window: timedelta = timedelta(hours=24)
    window_limit: int = DAILY_LIMIT
    max_consecutive: int | None = MAX_CONSECUTIVE

    def __post_init__(self) -> None:
        if self.free_tries < 1 or self.window_limit < 1:
            raise ValueError("free_tries and window_limit must be >= 1")
        if self.max_consecutive is not None and self.max_consecutive < self.free_tries:
            raise ValueError("max_consecutive must be >= free_tries")

    def allows(
        self,
        failures: int,
        window_start: datetime | None,
        window_failures: int,
        next_try_at: datetime | None,
        now: datetime,
    ) -> bool:
        """Whether a key with these counts may try at ``now`` (the rule the database counter's
        ``UPDATE ... WHERE`` states in SQL)."""
        fresh_window = window_start is None or window_start <= now - self.window
        return (
            (next_try_at is None or next_try_at <= now)
            and (self.max_consecutive is None or failures < self.max_consecutive)
            and (fresh_window or window_failures < self.window_limit)
        )

    def delay_after(self, failures: int) -> timedelta | None:
        """The wait after the ``failures``-th consecutive failure, or None."""
        if not self.delays or failures < self.free_tries:
            return None
        return self.delays[min(failures - self.free_tries, len(self.delays) - 1)]


#: The card PIN's policy (the figures above).
PIN_LOCKOUT = LockoutPolicy()


@dataclass(frozen=True)
class Reservation:
    """The answer of :meth:`AttemptCounter.reserve`.

    ``allowed``: this try may be checked (and already counts as a failure: ``failures`` is the
    new consecutive count, ``window_failures`` the count in the window). Refused: ``retry_at``
    is when a try is possible again, None when blocked until a reset.
    """

    allowed: bool
    failures: int
    window_failures: int = 0
    retry_at: datetime | None = None
    window_start: datetime | None = None


class AttemptCounter(Protocol):
    """Failed tries per key (e.g. ``pin:<card id>``, ``desk-login:<address>``).

    ``reserve`` must be atomic across every process: it checks that ``policy`` allows a try at
    ``now`` and, in the same step, counts it as a failure (an SQL ``UPDATE ... WHERE <allowed>
    RETURNING``). The service implements it on its database (``ecard.store.audit.
    DbAttemptCounter``); :class:`MemoryAttemptCounter` serves one process.
    """

    def failures(self, key: str) -> int: ...

    def reserve(self, key: str, policy: LockoutPolicy, now: datetime) -> Reservation: ...

    def reset(self, key: str) -> None: ...


@dataclass
class _Count:
    failures: int
    window_start: datetime
    window_failures: int
    next_try_at: datetime | None


def refusal(
    policy: LockoutPolicy,
    failures: int,
    window_start: datetime,
    window_failures: int,
    next_try_at: datetime | None,
    now: datetime,
) -> Reservation:
    """Why ``policy`` refuses a try now, as a :class:`Reservation` (shared by the counters)."""
    if policy.max_consecutive is not None and failures >= policy.max_consecutive:
        return Reservation(False, failures, window_failures, None)
    retry = next_try_at if next_try_at is not None and next_try_at > now else now
    if window_start > now - policy.window and window_failures >= policy.window_limit:
        retry = max(retry, window_start + policy.window)
    return Reservation(False, failures, window_failures, retry)


class MemoryAttemptCounter:
    """Thread-safe in-memory :class:`AttemptCounter` (the same rules as the database one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, _Count] = {}

    def failures(self, key: str) -> int:
        with self._lock:
            c = self._counts.get(key)
            return c.failures if c else 0

    def reserve(self, key: str, policy: LockoutPolicy, now: datetime) -> Reservation:
        with self._lock:
            c = self._counts.get(key)
            if c is None:
                c = self._counts[key] = _Count(0, now, 0, None)
            fresh_window = c.window_start <= now - policy.window
            if not policy.allows(c.failures, c.window_start, c.window_failures, c.next_try_at, now):
                return refusal(
                    policy, c.failures, c.window_start, c.window_failures, c.next_try_at, now
                )
            c.failures += 1
            if fresh_window:
                c.window_start, c.window_failures = now, 1
            else:
                c.window_failures += 1
            delay = policy.delay_after(c.failures)
            c.next_try_at = now + delay if delay else None
            return Reservation(True, c.failures, c.window_failures, None, c.window_start)

    def reset(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.0f} h"


class PinGuard:
    """Limit wrong PINs per key with a :class:`LockoutPolicy` (default :data:`PIN_LOCKOUT`).

    Each try first *reserves* a failure (atomic ``reserve``); only reserved tries are checked at
    all, and a correct PIN resets the count. Concurrent guesses can therefore never get more
    checks than the policy allows: the counter, not a read-then-write, is the authority.
    Raises ``wrong_pin`` (403, with the tries left before a wait), ``pin_wait`` (429, with
    ``retry_after`` seconds) or ``pin_locked`` (423: blocked until reset by a face check).
    ``clock`` gives the current time (tests pass their own).
    """

    def __init__(
        self,
        counter: AttemptCounter,
        policy: LockoutPolicy = PIN_LOCKOUT,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.counter = counter
        self.policy = policy
        self.clock = clock or (lambda: datetime.now(UTC))

    def reset(self, key: str) -> None:
        """Forget the failures of ``key`` (after a right PIN, or a new PIN set after a face
        check)."""
        self.counter.reset(key)

    def check(
        self, key: str, is_correct: Callable[[], bool], *, now: datetime | None = None
    ) -> None:
        """Run ``is_correct`` (the slow hash check) if the policy allows a try, and count it."""
        now = now or self.clock()
        got = self.counter.reserve(key, self.policy, now)
        if not got.allowed:
            raise self._refused(got, now)
        if is_correct():
            self.counter.reset(key)
            return
        p = self.policy
        if p.max_consecutive is not None and got.failures >= p.max_consecutive:
            raise PinLockedError()
        waits = []
        delay = p.delay_after(got.failures)
        if delay is not None:
            waits.append(now + delay)
        if got.window_failures >= p.window_limit and got.window_start is not None:
            waits.append(got.window_start + p.window)
        if waits:
            raise self._wait("The PIN is wrong", max(waits), now)
        left = p.free_tries - got.failures
        raise WrongPinError(
            f"The PIN is wrong; {left} {'try' if left == 1 else 'tries'} left before a wait."
        )

    def _refused(self, got: Reservation, now: datetime) -> Exception:
        if got.retry_at is None:
            return PinLockedError()
        return self._wait("Too many wrong PINs", got.retry_at, now)

    @staticmethod
    def _wait(head: str, retry_at: datetime, now: datetime) -> PinWaitError:
        seconds = max(1, int((retry_at - now).total_seconds() + 0.999))
        return PinWaitError(f"{head}; try again in {_minutes(seconds)}.", retry_after=seconds)

    def check_pin(self, key: str, pin: object, stored_hash: str, pepper: bytes) -> None:
        """:meth:`check` with :func:`verify_pin` against ``stored_hash``."""
        self.check(key, lambda: verify_pin(pin, stored_hash, pepper))
