"""A card's status and its slot in a status list (IETF Token Status List, ``ecard.tokens.status``).

The database keeps ``active`` / ``suspended`` / ``revoked`` (``cards.status``); each card has a
slot ``(status_list, status_idx)`` in one of the lists the service publishes.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ecard.store.models import StatusListRow

#: Entries per status list; a new list starts when one is full.
STATUS_LIST_SIZE = 100_000


class CardStatus(StrEnum):
    """The card's status as stored (``cards.status``, :data:`ecard.store.models.CARD_STATUSES`)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


def allocate_status_slot(s: Session) -> tuple[int, int]:
    """The next free (list, index), allocated with one atomic UPDATE ... RETURNING."""
    while True:
        got = s.execute(
            update(StatusListRow)
            .where(
                StatusListRow.id
                == select(StatusListRow.id)
                .where(StatusListRow.next_idx < StatusListRow.size)
                .order_by(StatusListRow.id)
                .limit(1)
                .scalar_subquery()
            )
            .values(next_idx=StatusListRow.next_idx + 1)
            .returning(StatusListRow.id, StatusListRow.next_idx)
        ).first()
        if got is not None:
            return int(got[0]), int(got[1]) - 1
        s.add(StatusListRow(size=STATUS_LIST_SIZE, next_idx=0))
        s.flush()
