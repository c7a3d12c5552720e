"""A card's token: its claims, its status-list URI and its signature, built in one place.

Every e-card token the service gives out comes from :func:`sign_card`: at issuance (through
:func:`card_signer`, the signer :meth:`ecard.enrollment.Enrollments.issue` calls) and when the
holder gets the card back (``/api/v1/cards/login``). The status-list URI in a card is the URL
the service publishes that list at (:func:`status_list_uri`, also the ``sub`` of the list's
token), so both always agree.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ecard.errors import CardStateError

if TYPE_CHECKING:
    from ecard.cards.values import CardDraft, CardInfo, Signer
    from ecard.tokens.cards import CardClaims
    from ecard.tokens.keys import KeyStore

#: Where status list ``{list_id}`` is published, under the issuer.
STATUS_LIST_PATH = "/api/v1/status-lists/{list_id}"


def status_list_uri(issuer: str, list_id: int) -> str:
    """The URI of status list ``list_id`` (in every card on it, and the list token's ``sub``)."""
    return issuer + STATUS_LIST_PATH.format(list_id=int(list_id))


def card_claims(card: CardInfo, *, issuer: str) -> CardClaims:
    """The claims of ``card``'s token (its id becomes ``sub``)."""
    from ecard.tokens.cards import CardClaims

    return CardClaims(
        card_id=card.id,
        card_no=card.card_no,
        name=card.name,
        id_number_masked=card.id_number_masked,
        status_idx=card.status_idx,
        status_uri=status_list_uri(issuer, card.status_list),
    )


def sign_card(
    keys: KeyStore,
    card: CardInfo,
    *,
    issuer: str,
    jti: str | Callable[[], str],
    now: datetime | None = None,
) -> str:
    """The signed e-card token of ``card``, valid until the card expires.

    ``jti`` may be a callable (e.g. :meth:`ecard.cards.Cards.rotate_jti`), called only once
    the card is known to be signable. 409 ``card_not_active`` for a revoked (replaced) or
    expired card.
    """
    from ecard.cards.status import CardStatus
    from ecard.tokens.cards import issue_card

    now = now if now is not None else datetime.now(UTC)
    remaining = card.expires_at - now
    if getattr(card, "status", None) == CardStatus.REVOKED or remaining.total_seconds() <= 0:
        raise CardStateError("This card was replaced or has expired.")
    claims = card_claims(card, issuer=issuer)
    jti = jti if isinstance(jti, str) else jti()
    return issue_card(keys, claims, issuer=issuer, now=now, lifetime=remaining, jti=jti)


def card_signer(keys: KeyStore, *, issuer: str) -> Signer:
    """The signer :meth:`ecard.enrollment.Enrollments.issue` calls for a new card."""

    def sign(draft: CardDraft) -> str:
        return sign_card(keys, draft, issuer=issuer, jti=draft.jti, now=draft.issued_at)

    return sign
