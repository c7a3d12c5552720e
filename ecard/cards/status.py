"""A card's status and its slot in a status list (IETF Token Status List, ``ecard.tokens.status``).

The database keeps ``active`` / ``suspended`` / ``revoked`` (``cards.status``); each card has a
slot ``(status_list, status_idx)`` in one of the lists the service publishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ecard.store.models import StatusListRow

if TYPE_CHECKING:
    from ecard.tokens.status import StatusList

#: Entries per status list; a new list starts when one is full.
STATUS_LIST_SIZE = 100_000


class CardStatus(StrEnum):
    """The card's status as stored (``cards.status``, :data:`ecard.store.models.CARD_STATUSES`)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"

    @property
    def list_value(self) -> int:
        """The card's entry in its status list: 0 valid, 1 invalid (final), 2 suspended
        (:class:`ecard.tokens.status.CardStatus`, the IETF draft's values)."""
        return _LIST_VALUES[self]


#: The one mapping from a stored status to the status list's value (a test checks it against
#: :class:`ecard.tokens.status.CardStatus`, which is not imported here: it loads the JOSE stack).
_LIST_VALUES: Mapping[CardStatus, int] = {
    CardStatus.ACTIVE: 0,  # VALID
    CardStatus.REVOKED: 1,  # INVALID
    CardStatus.SUSPENDED: 2,  # SUSPENDED
}


def status_list(size: int, entries: Mapping[int, str]) -> StatusList:
    """The status list of ``size`` entries from ``{index: stored status}``
    (:meth:`ecard.cards.Cards.status_entries`); unused slots stay 0."""
    from ecard.tokens.status import StatusList

    values = {i: CardStatus(s).list_value for i, s in entries.items()}
    return StatusList.from_statuses(values, size=size, bits=2)


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
