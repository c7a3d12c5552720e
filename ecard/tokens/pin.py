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

Lockout: :class:`PinGuard` counts a failure *before* checking, through an
:class:`AttemptCounter` whose ``fail`` is atomic; so however many guesses race, at most
:data:`MAX_FAILURES` are ever checked after the last success. A correct PIN resets the count.
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
    WrongPinError,
)

#: Consecutive wrong PINs before the card is locked for PIN use.
MAX_FAILURES = 6
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


# --- lockout -----------------------------------------------------------------------------


class AttemptCounter(Protocol):
    """Consecutive PIN failures per key (e.g. ``pin:<card id>``).

    ``fail`` must be atomic across every process (an SQL ``UPDATE ... SET n = n + 1 RETURNING
    n``): it adds one failure and returns the new count. The service implements it on its
    database (``ecard.store.audit.DbAttemptCounter``); :class:`MemoryAttemptCounter` serves one
    process.
    """

    def failures(self, key: str) -> int: ...

    def fail(self, key: str) -> int: ...

    def reset(self, key: str) -> None: ...


class MemoryAttemptCounter:
    """Thread-safe in-memory :class:`AttemptCounter`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def failures(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, 0)

    def fail(self, key: str) -> int:
        with self._lock:
            n = self._counts.get(key, 0) + 1
            self._counts[key] = n
            return n

    def reset(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)


class PinGuard:
    """Lock a key after :data:`MAX_FAILURES` consecutive wrong PINs.

    Each try first *reserves* a failure (atomic ``fail``); only tries whose reservation is within
    the limit are checked at all, and a correct PIN resets the count. Concurrent guesses
    therefore can never get more than ``limit`` checks: the counter, not a read-then-write, is
    the authority. Raises ``pin_locked`` or ``wrong_pin`` (with the tries left).
    """

    def __init__(self, counter: AttemptCounter, limit: int = MAX_FAILURES) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.counter = counter
        self.limit = limit

    def remaining(self, key: str) -> int:
        return max(0, self.limit - self.counter.failures(key))

    def check(self, key: str, is_correct: Callable[[], bool]) -> None:
        """Run ``is_correct`` (the slow hash check) if ``key`` is not locked, and count it."""
        if self.counter.failures(key) >= self.limit:
            raise PinLockedError()
        n = self.counter.fail(key)
        if n > self.limit:
            raise PinLockedError()
        if is_correct():
            self.counter.reset(key)
            return
        left = self.limit - n
        if left <= 0:
            raise PinLockedError("Too many wrong PINs; the card is now locked for PIN use.")
        raise WrongPinError(f"The PIN is wrong; {left} {'try' if left == 1 else 'tries'} left.")

    def check_pin(self, key: str, pin: object, stored_hash: str, pepper: bytes) -> None:
        """:meth:`check` with :func:`verify_pin` against ``stored_hash``."""
        self.check(key, lambda: verify_pin(pin, stored_hash, pepper))
