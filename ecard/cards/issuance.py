"""A new card row: number, status-list slot, jti and lifetime, replacing the citizen's live card.

Called by :meth:`ecard.enrollment.Enrollments.issue` inside its write transaction (the
enrollment decides *whether* a card is issued; this module knows *what* a card is).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from ecard.cards.numbers import new_card_no
from ecard.cards.status import CardStatus, allocate_status_slot
from ecard.cards.values import CARD_LIFETIME
from ecard.store.audit import record
from ecard.store.models import Card, Citizen


def new_card(
    s: Session, citizen: Citizen, *, enrollment_id: str, pin_hash: str, now: datetime
) -> Card:
    """A new active card of ``citizen`` added in ``s``; any live card of theirs is revoked
    (audited ``revoke``/``reissued``). The partial unique index keeps one live card per citizen
    when two issuances race (the caller turns the ``IntegrityError`` into a 409)."""
    revoked = s.execute(
        update(Card)
        .where(Card.citizen_id == citizen.id, Card.status != CardStatus.REVOKED)
        .values(status=CardStatus.REVOKED, changed_at=now)
        .returning(Card.id)
    ).all()
    list_id, idx = allocate_status_slot(s)
    card = Card(
        id=secrets.token_hex(16),
        card_no=new_card_no(),
        citizen_id=citizen.id,
        enrollment_id=enrollment_id,
        status=CardStatus.ACTIVE,
        status_list=list_id,
        status_idx=idx,
        pin_hash=pin_hash,
        jti=secrets.token_hex(16),
        issued_at=now,
        expires_at=now + CARD_LIFETIME,
        changed_at=now,
    )
    s.add(card)
    s.flush()
    for (old_id,) in revoked:
        record(
            s,
            actor="system",
            action="revoke",
            outcome="revoked",
            card_id=old_id,
            enrollment_id=enrollment_id,
            detail="reissued",
            now=now,
        )
    return card
