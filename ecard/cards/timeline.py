"""The card's timeline: the steps of its application and what happened to the card since.

One query (:func:`card_timeline`) for every reader: the card page (``/card/overview``) and any
API that shows a holder their card's history. PIN checks and QR issuing are left out (they are
audited, but a holder's page is not the place for every try).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from ecard.store.models import AuditEvent, Card

if TYPE_CHECKING:
    from ecard.store import Store

#: Audit actions the holder sees (PIN checks and QR issuing are left out).
TIMELINE_ACTIONS = (
    "authorize",
    "consent",
    "liveness",
    "issue",
    "card_suspended",
    "card_active",
    "card_revoked",
    "revoke",
    "scan",
    "confirm",
    "login",
)
#: The most events a timeline shows (oldest first).
TIMELINE_LIMIT = 200


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    action: str
    outcome: str


def card_timeline(
    store: Store, card_id: str, *, limit: int = TIMELINE_LIMIT
) -> tuple[TimelineEvent, ...]:
    """The events of the card and of the enrollment that issued it, oldest first."""
    with store.read() as s:
        enrollment_id = s.scalar(select(Card.enrollment_id).where(Card.id == card_id))
        mine = AuditEvent.card_id == card_id
        if enrollment_id is not None:  # (never "enrollment_id IS NULL": other cards' events)
            mine = or_(mine, AuditEvent.enrollment_id == enrollment_id)
        rows = s.execute(
            select(AuditEvent.at, AuditEvent.action, AuditEvent.outcome)
            .where(mine, AuditEvent.action.in_(TIMELINE_ACTIONS))
            .order_by(AuditEvent.at, AuditEvent.id)
            .limit(limit)
        ).all()
    return tuple(TimelineEvent(at, action, outcome) for at, action, outcome in rows)
