"""Card API: online verification (channels), and the holder's QR code, loss report and login."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from flask import Blueprint, g

from ecard.cards import CardInfo, Cards, CardStatus
from ecard.errors import CardStateError, TokenError
from ecard.web.apispec import BASIC, BEARER_CARD, parsed_json, responses, validate
from ecard.web.http import bearer, channel, services
from ecard.web.schemas import (
    CardStatusResult,
    CardSummary,
    LoginBody,
    LoginResult,
    PinBody,
    Qr,
    TokenBody,
    VerifyResult,
)

bp = Blueprint("cards", __name__, url_prefix="/api/v1/cards")


def _cards() -> Cards:
    return services().cards()


def holder_card() -> CardInfo:
    """The card of the Bearer e-card token (signature, issuer and expiry checked); memoised
    for the request (a route's guard and its view may both ask)."""
    from ecard.tokens.cards import verify_card

    known: CardInfo | None = g.get("holder_card")
    if known is not None:
        return known
    svc = services()
    verified = verify_card(bearer(), svc.require_keys(), issuer=svc.issuer)
    # the card's current jti only: a token older than the last /login is token_superseded
    card = _cards().current(verified.card.card_id, verified.jti)
    g.holder_card = card
    return card


def card_summary(card: CardInfo) -> CardSummary:
    return CardSummary(
        card_no=card.card_no,
        status=card.status,
        name=card.name,
        id_number_masked=card.id_number_masked,
        issued_at=card.issued_at,
        expires_at=card.expires_at,
    )


def _channel_verify() -> None:
    channel("verify")


def _holder(**_: str) -> None:
    holder_card()


@bp.post("/verify")
@validate(
    json=TokenBody,
    resp=responses({200: VerifyResult}, 400, 401, 403, 415, 429),
    tags=["cards"],
    security=BASIC,
    guard=_channel_verify,
)
def verify() -> VerifyResult:
    """Verify an e-card online, status included (channel, scope verify)

    Signature, claims and the card's current status."""
    from ecard.tokens.cards import verify_card

    svc = services()
    token = parsed_json(TokenBody).token
    try:
        verified = verify_card(token, svc.require_keys(), issuer=svc.issuer)
    except TokenError as exc:
        return VerifyResult(valid=False, error=exc.code, message=exc.message)
    status = _cards().status_of(verified.card.card_id)
    if status is None:
        return VerifyResult(
            valid=False, error="unknown_card", message="This card was not issued here."
        )
    if status != "active":
        return VerifyResult(
            valid=False, error=f"card_{status}", status=status, message=f"The card is {status}."
        )
    return VerifyResult(valid=True, status=status, claims=verified.to_dict())


@bp.post("/qr")
@validate(
    json=PinBody,
    resp=responses({201: Qr}, 400, 401, 403, 404, 409, 415, 423, 429),
    tags=["cards"],
    security=BEARER_CARD,
    guard=_holder,
)
def qr() -> tuple[Qr, int]:
    """A single-use QR token (60 s) for the holder (Bearer card + PIN)"""
    from ecard.tokens.qr import issue_qr, render_png

    card = holder_card()
    pin = parsed_json(PinBody).pin
    cards = _cards()
    cards.check_pin(card.id, pin, action="qr")
    if card.status != "active":
        raise CardStateError(f"The card is {card.status}; no QR code can be shown.")
    svc = services()
    issued = issue_qr(svc.require_keys(), card_no=card.card_no, issuer=svc.issuer)
    png = render_png(issued.text)
    return Qr(
        qr_token=issued.text,
        expires_at=datetime.fromtimestamp(issued.expires_at, UTC),
        expires_in=issued.expires_at - int(datetime.now(UTC).timestamp()),
        qr_png=base64.b64encode(png).decode("ascii"),
    ), 201


@bp.post("/suspend")
@validate(
    json=PinBody,
    resp=responses({200: CardStatusResult}, 400, 401, 403, 404, 409, 415, 423, 429),
    tags=["cards"],
    security=BEARER_CARD,
    guard=_holder,
)
def suspend() -> CardStatusResult:
    """Report loss: suspend the card (Bearer card + PIN)

    The status list says so at once."""
    card = holder_card()
    pin = parsed_json(PinBody).pin
    cards = _cards()
    cards.check_pin(card.id, pin, action="suspend")
    info = cards.set_status(card.id, CardStatus.SUSPENDED, actor="citizen")
    return CardStatusResult(card_no=info.card_no, status=info.status)


@bp.post("/login")
@validate(
    json=LoginBody,
    resp=responses({200: LoginResult}, 400, 403, 404, 409, 415, 423, 429),
    tags=["cards"],
)
def login() -> LoginResult:
    """Get the e-card back with card number + PIN

    A freshly signed e-card token."""
    from ecard.cards.signing import sign_card

    body = parsed_json(LoginBody)
    card_no, pin = body.card_no, body.pin
    cards = _cards()
    card = cards.login(card_no, pin)
    svc = services()
    token = sign_card(
        svc.require_keys(), card, issuer=svc.issuer, jti=lambda: cards.rotate_jti(card.id)
    )
    return LoginResult(card=token, **card_summary(card).model_dump())


@bp.get("/me")
@validate(resp=responses({200: CardSummary}, 400, 401, 429), tags=["cards"], security=BEARER_CARD)
def me() -> CardSummary:
    """The holder's card and its current status (Bearer card)"""
    return card_summary(holder_card())
