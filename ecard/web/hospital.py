"""Hospital desk: scan a QR code (single use) and confirm the holder's PIN for settlement."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request

from ecard.errors import (
    InvalidFieldError,
    MissingFieldError,
    NotFoundError,
    TokenError,
    TokenReplayedError,
    UnsupportedMediaTypeError,
)
from ecard.web.http import channel, json_body, services, str_field

bp = Blueprint("hospital", __name__, url_prefix="/api/v1/scan")


def _qr_text() -> str:
    from ecard.tokens.qr import decode_qr_image

    if request.mimetype == "multipart/form-data":
        images = request.files.getlist("image")
        if len(images) != 1:
            raise MissingFieldError("Send exactly one 'image' file.")
        return decode_qr_image(images[0].read())
    if request.is_json:
        return str_field(json_body(), "qr_token", max_len=2048).strip()
    raise UnsupportedMediaTypeError("Send JSON {\"qr_token\"} or a multipart 'image'.")


@bp.post("")
def scan() -> Response:
    """Who is the patient: verify a QR token once; a second scan answers ``replayed``."""
    from ecard.tokens.qr import verify_qr

    ch = channel("scan")
    svc = services()
    text = _qr_text()
    cards = svc.cards()
    actor = f"hospital:{ch.client_id}"
    try:
        qr = verify_qr(text, svc.require_keys(), issuer=svc.issuer, replay_guard=svc.replay)
    except TokenReplayedError as exc:
        cards.audit(actor, "scan", "replayed", None)
        return jsonify(valid=False, error=exc.code, message="This QR code was already used.")
    except TokenError as exc:
        return jsonify(valid=False, error=exc.code, message=exc.message)
    try:
        card = cards.by_number(qr.card_no)
    except NotFoundError:
        return jsonify(valid=False, error="unknown_card", message="This card was not issued here.")
    cards.audit(actor, "scan", card.status, card.id)
    expires_in = max(0, qr.expires_at - int(datetime.now(UTC).timestamp()))
    return jsonify(
        valid=card.status == "active",
        card_no=card.card_no,
        name=card.name,
        id_number_masked=card.id_number_masked,
        status=card.status,
        expires_in=expires_in,
    )


@bp.post("/confirm")
def confirm() -> Response:
    """Settlement: the holder types the PIN at the desk (6 wrong PINs lock the card's PIN)."""
    ch = channel("scan")
    body = json_body()
    card_no = str_field(body, "card_no", max_len=32).strip()
    pin = str_field(body, "pin", max_len=64)
    if not card_no:
        raise InvalidFieldError("The card number is empty.")
    svc = services()
    cards = svc.cards()
    card = cards.by_number(card_no)
    cards.check_pin(card.id, pin, actor=f"hospital:{ch.client_id}", action="confirm")
    if card.status != "active":
        return jsonify(confirmed=False, card_no=card.card_no, status=card.status)
    cards.audit(f"hospital:{ch.client_id}", "confirm", "confirmed", card.id)
    return jsonify(confirmed=True, card_no=card.card_no, name=card.name, status=card.status)
