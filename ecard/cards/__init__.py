"""Cards: numbers, values, status, and the lifecycle after issuance (no Flask here).

- :mod:`ecard.cards.numbers`: card numbers (12 digits, Luhn check digit)
- :mod:`ecard.cards.values`: :class:`CardInfo`, :class:`CardDraft`, :class:`IssuedCard`
- :mod:`ecard.cards.status`: :class:`CardStatus`, its status-list value, status-list slots
- :mod:`ecard.cards.issuance`: a new card row (called by :meth:`ecard.enrollment.Enrollments.issue`)
- :mod:`ecard.cards.signing`: a card's claims, status-list URI and signed token
- :mod:`ecard.cards.timeline`: the holder's timeline of the card
- :mod:`ecard.cards.lifecycle`: :class:`Cards` (lookup, PIN checks, suspend, status lists)
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
