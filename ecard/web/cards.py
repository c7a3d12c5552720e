"""Card API: online verification (channels), and the holder's QR code, loss report and login."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify

from ecard.cards import CardInfo, Cards, CardStatus
from ecard.errors import CardStateError, NotFoundError, TokenError
from ecard.web.http import bearer, channel, json_body, services, str_field

bp = Blueprint("cards", __name__, url_prefix="/api/v1/cards")


def _cards() -> Cards:
    return services().cards()


def holder_card() -> CardInfo:
    """The card of the Bearer e-card token (signature, issuer and expiry checked)."""
    from ecard.tokens.cards import verify_card

    svc = services()
    verified = verify_card(bearer(), svc.require_keys(), issuer=svc.issuer)
    try:
        return _cards().get(verified.card.card_id)
    except NotFoundError:
        raise TokenError("The card is not known to this service.") from None


def card_summary(card: CardInfo) -> dict[str, Any]:
    return {
        "card_no": card.card_no,
        "status": card.status,
        "name": card.name,
        "id_number_masked": card.id_number_masked,
        "issued_at": card.issued_at.isoformat().replace("+00:00", "Z"),
        "expires_at": card.expires_at.isoformat().replace("+00:00", "Z"),
    }


@bp.post("/verify")
def verify() -> Response:
    """Verify an e-card online: signature, claims and the card's current status."""
    from ecard.tokens.cards import verify_card

    channel("verify")
    svc = services()
    token = str_field(json_body(), "token", max_len=8192)
    try:
        verified = verify_card(token, svc.require_keys(), issuer=svc.issuer)
    except TokenError as exc:
        return jsonify(valid=False, error=exc.code, message=exc.message)
    status = _cards().status_of(verified.card.card_id)
    if status is None:
        return jsonify(valid=False, error="unknown_card", message="This card was not issued here.")
    if status != "active":
        return jsonify(
            valid=False, error=f"card_{status}", status=status, message=f"The card is {status}."
        )
    return jsonify(valid=True, status=status, claims=verified.to_dict())


@bp.post("/qr")
def qr() -> tuple[Response, int]:
    """A short-lived single-use QR token for the holder (PIN required)."""
    from ecard.tokens.qr import issue_qr, render_png

    card = holder_card()
    pin = str_field(json_body(), "pin", max_len=64)
    cards = _cards()
    cards.check_pin(card.id, pin, action="qr")
    if card.status != "active":
        raise CardStateError(f"The card is {card.status}; no QR code can be shown.")
    svc = services()
    issued = issue_qr(svc.require_keys(), card_no=card.card_no, issuer=svc.issuer)
    png = render_png(issued.text)
    return jsonify(
        qr_token=issued.text,
        expires_at=datetime.fromtimestamp(issued.expires_at, UTC)
        .isoformat()
        .replace("+00:00", "Z"),
        expires_in=issued.expires_at - int(datetime.now(UTC).timestamp()),
        qr_png=base64.b64encode(png).decode("ascii"),
    ), 201


@bp.post("/suspend")
def suspend() -> Response:
    """Report loss: the card is suspended and the status list says so at once."""
    card = holder_card()
    pin = str_field(json_body(), "pin", max_len=64)
    cards = _cards()
    cards.check_pin(card.id, pin, action="suspend")
    info = cards.set_status(card.id, CardStatus.SUSPENDED, actor="citizen")
    return jsonify(card_no=info.card_no, status=info.status)


@bp.post("/login")
def login() -> Response:
    """Get back to a card later: card number + PIN -> a freshly signed e-card token."""
    from ecard.cards.signing import sign_card

    body = json_body()
    card_no = str_field(body, "card_no", max_len=32).strip()
    pin = str_field(body, "pin", max_len=64)
    cards = _cards()
    try:
        card = cards.by_number(card_no)
    except NotFoundError:
        raise NotFoundError("No card with this number.") from None
    cards.check_pin(card.id, pin, action="login")
    svc = services()
    token = sign_card(
        svc.require_keys(), card, issuer=svc.issuer, jti=lambda: cards.rotate_jti(card.id)
    )
    return jsonify(card=token, **card_summary(card))


@bp.get("/me")
def me() -> Response:
    """The holder's card as the service sees it now (status included)."""
    return jsonify(card_summary(holder_card()))
