"""Card numbers: 12 digits, the last a Luhn check digit (catches one mistyped digit at a desk)."""

from __future__ import annotations

import random
import secrets


def luhn_digit(body: str) -> str:
    """The Luhn check digit of the digits ``body``."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        v = d * 2 if i % 2 == 0 else d
        total += v - 9 if v > 9 else v
    return str((10 - total % 10) % 10)


def new_card_no(rng: random.Random | secrets.SystemRandom | None = None) -> str:
    """12 digits: 11 random (the first not 0) plus a Luhn check digit."""
    r = rng or secrets.SystemRandom()
    body = "".join(map(str, [r.randrange(1, 10)] + [r.randrange(10) for _ in range(10)]))
    return body + luhn_digit(body)


def is_card_no(value: str) -> bool:
    """Whether ``value`` is 12 ASCII digits with a valid check digit."""
    return (
        len(value) == 12
        and value.isascii()
        and value.isdigit()
        and luhn_digit(value[:-1]) == value[-1]
    )
