"""The card's timeline: the steps of its application and what happened to the card since.

One query (:func:`card_timeline`) for every reader: the card page (``/card/overview``) and any
API that shows a holder their card's history. Each event says what it was: its action, its
outcome, who did it (``by``: ``you``, ``hospital``, ``app`` or ``service``) and where (the
channel's name from the ``channels`` row, e.g. the hospital's), and whether it is a security
alert (``alert``: a wrong PIN, or a PIN refused after too many wrong ones, entered anywhere).
A right PIN for a QR code or a report of loss is not audited, so only failed tries of those
appear; the login, the desk's confirmation and the scans appear whatever their outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from ecard.store.models import AuditEvent, Card, Channel

if TYPE_CHECKING:
    from ecard.store import Store

#: Audit actions the holder sees.
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
    "pin_reset",
    # PIN checks audited only when refused (the holder's QR code, report of loss, others)
    "qr",
    "suspend",
    "pin_check",
)
#: Outcomes that are a security alert for the holder: somebody typed a wrong PIN.
ALERT_OUTCOMES = frozenset({"wrong_pin", "pin_wait", "pin_locked"})
#: The most events a timeline shows (oldest first).
TIMELINE_LIMIT = 200

_BY = {"citizen": "you", "hospital": "hospital", "channel": "app"}


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    action: str
    outcome: str
    #: Who: ``you`` (the holder's device), ``hospital``, ``app`` (a city-service channel) or
    #: ``service`` (this service itself).
    by: str = "service"
    #: The hospital's or app's name (its ``channels`` row), when ``by`` is one of those.
    where: str | None = None
    #: A wrong PIN (or a PIN refused after wrong ones) was entered: show it as an alert.
    alert: bool = False


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
            select(AuditEvent.at, AuditEvent.action, AuditEvent.outcome, AuditEvent.actor)
            .where(mine, AuditEvent.action.in_(TIMELINE_ACTIONS))
            .order_by(AuditEvent.at, AuditEvent.id)
            .limit(limit)
        ).all()
        client_ids = {a.partition(":")[2] for *_, a in rows if ":" in a}
        names: dict[str, str] = {}
        if client_ids:
            got = s.execute(
                select(Channel.client_id, Channel.name).where(Channel.client_id.in_(client_ids))
            )
            names = {str(cid): str(name) for cid, name in got}
    events = []
    for at, action, outcome, actor in rows:
        kind, _, client_id = actor.partition(":")
        by = _BY.get(kind, "service")
        where = names.get(client_id) if by in ("hospital", "app") else None
        events.append(
            TimelineEvent(at, action, outcome, by, where, alert=outcome in ALERT_OUTCOMES)
        )
    return tuple(events)
