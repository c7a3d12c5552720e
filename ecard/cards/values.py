"""The card's values: what the store holds of a card, and what the signer gets for a new one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ecard.citizens import mask_id_number

if TYPE_CHECKING:
    from ecard.store.models import Card, Citizen

#: How long an issued card is valid.
CARD_LIFETIME = timedelta(days=5 * 365)


@dataclass(frozen=True)
class CardInfo:
    id: str
    card_no: str
    citizen_id: int
    name: str
    id_number_masked: str
    status: str
    status_list: int
    status_idx: int
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class CardDraft(CardInfo):
    """A new card as its signer gets it: the card and the ``jti`` of its first token."""

    jti: str


@dataclass(frozen=True)
class IssuedCard:
    card: CardInfo
    token: str


Signer = Callable[[CardDraft], str]


def card_info(card: Card, citizen: Citizen) -> CardInfo:
    return CardInfo(
        id=card.id,
        card_no=card.card_no,
        citizen_id=card.citizen_id,
        name=citizen.name,
        id_number_masked=mask_id_number(citizen.id_number),
        status=card.status,
        status_list=card.status_list,
        status_idx=card.status_idx,
        issued_at=card.issued_at,
        expires_at=card.expires_at,
    )
