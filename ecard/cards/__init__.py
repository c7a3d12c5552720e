"""Cards: numbers, values, status, and the lifecycle after issuance (no Flask here).

- :mod:`ecard.cards.numbers`: card numbers (12 digits, Luhn check digit)
- :mod:`ecard.cards.values`: :class:`CardInfo`, :class:`CardDraft`, :class:`IssuedCard`
- :mod:`ecard.cards.status`: :class:`CardStatus` and status-list slots
- :mod:`ecard.cards.lifecycle`: :class:`Cards` (lookup, PIN checks, suspend, status lists)

A card is issued by :meth:`ecard.enrollment.Enrollments.issue`.
"""

from ecard.cards.lifecycle import Cards
from ecard.cards.numbers import new_card_no
from ecard.cards.status import STATUS_LIST_SIZE, CardStatus
from ecard.cards.values import CARD_LIFETIME, CardDraft, CardInfo, IssuedCard, Signer

__all__ = [
    "CARD_LIFETIME",
    "STATUS_LIST_SIZE",
    "CardDraft",
    "CardInfo",
    "CardStatus",
    "Cards",
    "IssuedCard",
    "Signer",
    "new_card_no",
]
