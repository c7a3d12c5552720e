"""The enrollment state machine: its states and the one table of legal transitions.

::

    authorized -consent-> consented -challenge-> challenged -liveness ok-> verified -PIN-> issued
         |                 ^  |  ^                   |  (failed, attempts left)
         |                 |  |  +-------------------+
         |                 |  +-capture-> capturing -finish ok-> verified
         |                 +-------------------+ (failed or capture expired, attempts left)
         +-> expired (15 min, from any open state)   +-> locked (third failed attempt)
         +-> failed (consent declined)

Every step of :class:`ecard.enrollment.Enrollments` moves a row through :func:`transition`, so a
step asked for in the wrong state is refused with :class:`ecard.errors.StateError` (409) in one
place. The values are those of the ``enrollments.state`` column
(:data:`ecard.store.models.ENROLLMENT_STATES`, kept equal by a test).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from ecard.errors import StateError


class EnrollmentState(StrEnum):
    AUTHORIZED = "authorized"
    CONSENTED = "consented"
    CAPTURING = "capturing"
    CHALLENGED = "challenged"
    VERIFIED = "verified"
    ISSUED = "issued"
    EXPIRED = "expired"
    FAILED = "failed"
    LOCKED = "locked"


S = EnrollmentState

#: The legal moves: state -> the states a step may take it to. Expiry is legal from every open
#: state; the terminal states go nowhere.
TRANSITIONS: Mapping[EnrollmentState, frozenset[EnrollmentState]] = {
    S.AUTHORIZED: frozenset({S.CONSENTED, S.FAILED, S.EXPIRED}),
    S.CONSENTED: frozenset({S.CHALLENGED, S.CAPTURING, S.EXPIRED}),
    # a new challenge replaces an unused one; a capture drops the unused one-shot nonce
    S.CHALLENGED: frozenset(
        {S.CHALLENGED, S.CAPTURING, S.VERIFIED, S.CONSENTED, S.LOCKED, S.EXPIRED}
    ),
    S.CAPTURING: frozenset({S.VERIFIED, S.CONSENTED, S.LOCKED, S.EXPIRED}),
    S.VERIFIED: frozenset({S.ISSUED, S.EXPIRED}),
    S.ISSUED: frozenset(),
    S.EXPIRED: frozenset(),
    S.FAILED: frozenset(),
    S.LOCKED: frozenset(),
}

#: States no step leaves.
TERMINAL: frozenset[EnrollmentState] = frozenset(s for s, to in TRANSITIONS.items() if not to)
#: States an enrollment can still expire from.
OPEN: frozenset[EnrollmentState] = frozenset(EnrollmentState) - TERMINAL


def can_move(current: str, target: EnrollmentState) -> bool:
    """Whether a step may take an enrollment in ``current`` to ``target``."""
    return target in TRANSITIONS[EnrollmentState(current)]


def transition(
    current: str, target: EnrollmentState, message: str | None = None
) -> EnrollmentState:
    """``target`` when the table allows ``current -> target``; else :class:`StateError` (409)."""
    if not can_move(current, target):
        raise StateError(message or f"This step is not possible in state {current}.")
    return target


def sources(target: EnrollmentState) -> frozenset[EnrollmentState]:
    """The states a step to ``target`` may start from."""
    return frozenset(s for s, to in TRANSITIONS.items() if target in to)
