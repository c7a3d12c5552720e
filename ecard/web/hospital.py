"""Hospital API: scan a QR code (single use) and confirm the holder's PIN for settlement.

Both routes take the hospital's HTTP Basic credentials (scope ``scan``) and call
:class:`ecard.hospital.HospitalDesk`, the same domain functions the desk pages call
(``ecard/web/desk.py``). A confirmation names the ``scan_id`` its scan answered: unknown card
numbers, unscanned cards and other hospitals' scans all get one answer, 409 ``scan_required``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import Field

from ecard.hospital import Confirmation, HospitalDesk, ScanResult
from ecard.web.apispec import BASIC, parsed_form, parsed_json, responses, validate
from ecard.web.http import channel, services
from ecard.web.schemas import Answer, Body, FilePart, Form

bp = Blueprint("hospital", __name__, url_prefix="/api/v1/scan")

Guard = Callable[..., None]
Deco = Callable[[Callable[..., Any]], Callable[..., Any]]


class ScanBody(Body):
    """A QR code's text, as a handheld scanner types it."""

    qr_token: str = Field(min_length=1, max_length=2048)


class ScanForm(Form):
    """A picture of the QR code (desk camera frame or upload), decoded on the server."""

    image: FilePart


class ScanAnswer(Answer):
    """Who the patient is. ``valid`` false with an ``error`` for a refused code (``replayed``,
    ``token_expired``, ``unknown_card``, ``card_suspended`` ...); ``scan_id`` (valid scans
    only) is what the confirmation must name, until ``confirm_by``."""

    valid: bool
    error: str | None = None
    message: str | None = None
    scan_id: str | None = None
    card_no: str | None = None
    name: str | None = None
    id_number_masked: str | None = Field(
        default=None, description="first and last four digits, e.g. 1101**********002X"
    )
    birth_date: str | None = Field(
        default=None, description="YYYY-MM-DD, from the ID number, to check the patient's ID"
    )
    status: str | None = None
    expires_in: int | None = Field(
        default=None, description="seconds the QR code stays valid (valid codes only)"
    )
    valid_for_s: int | None = Field(default=None, description="the same, for the desk page")
    confirm_by: str | None = Field(default=None, description="end of the confirmation window")
    used_at: str | None = Field(default=None, description="replayed: when it was first used")
    used_by: str | None = Field(
        default=None,
        description="replayed: this_desk (this hospital) or other_desk (never its name)",
    )


class ConfirmBody(Body):
    """The settlement: the scan being confirmed and the PIN the patient typed."""

    scan_id: str | None = Field(default=None, max_length=64)
    pin: str = Field(max_length=64)


class ConfirmAnswer(Answer):
    confirmed: bool
    card_no: str
    status: str
    name: str | None = None


def desk_service() -> HospitalDesk:
    """The desk domain over this process's services (the API and the desk pages share it)."""
    svc = services()
    return HospitalDesk(
        svc.store, svc.cards(), svc.require_keys(), issuer=svc.issuer, replay=svc.replay
    )


def scan_answer(result: ScanResult) -> Response:
    """A :class:`ScanResult` as JSON (absent fields left out)."""
    card = result.card
    body: dict[str, Any] = {"valid": result.valid, "error": result.error}
    body["message"] = result.message
    body["scan_id"] = result.scan_id
    if card is not None:
        body |= {
            "card_no": card.card_no,
            "name": card.name,
            "id_number_masked": result.id_number_masked,
            "status": card.status,
        }
    if result.birth_date is not None:
        body["birth_date"] = result.birth_date.isoformat()
    body["expires_in"] = body["valid_for_s"] = result.expires_in
    if result.confirm_by is not None:
        body["confirm_by"] = _utc(result.confirm_by)
    if result.used_at is not None:
        body["used_at"] = _utc(result.used_at)
    body["used_by"] = result.used_by
    return jsonify({k: v for k, v in body.items() if v is not None})


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def confirm_answer(done: Confirmation) -> Response:
    body = {
        "confirmed": done.confirmed,
        "card_no": done.card_no,
        "status": done.status,
        "name": done.name,
    }
    return jsonify({k: v for k, v in body.items() if v is not None})


def qr_text() -> str:
    """The QR text of a validated scan request: the JSON ``qr_token`` or the decoded image."""
    from ecard.tokens.qr import decode_qr_image

    if request.mimetype == "multipart/form-data":
        return decode_qr_image(parsed_form(ScanForm).image)
    return parsed_json(ScanBody).qr_token.strip()


def _hospital() -> None:
    channel("scan")


def scan_route(*, tags: list[str], security: dict[str, list[str]], guard: Guard) -> Deco:
    """The validation of a scan route (the API's and the desk's): JSON or a picture."""
    return validate(
        json=ScanBody,
        form=ScanForm,
        resp=responses({200: ScanAnswer}, 400, 401, 403, 413, 415, 422, 429, 503),
        tags=tags,
        security=security,
        guard=guard,
    )


def confirm_route(
    body: type[Body], *, tags: list[str], security: dict[str, list[str]], guard: Guard
) -> Deco:
    """The validation of a confirmation route (the API's and the desk's)."""
    return validate(
        json=body,
        resp=responses({200: ConfirmAnswer}, 400, 401, 403, 409, 415, 422, 423, 429, 503),
        tags=tags,
        security=security,
        guard=guard,
    )


@bp.post("")
@scan_route(tags=["hospital"], security=BASIC, guard=_hospital)
def scan() -> Response:
    """Who is the patient: verify a QR token once; a second scan answers ``replayed``"""
    ch = channel("scan")
    return scan_answer(desk_service().scan(ch.client_id, qr_text()))


@bp.post("/confirm")
@confirm_route(ConfirmBody, tags=["hospital"], security=BASIC, guard=_hospital)
def confirm() -> Response:
    """Settlement: the patient types the PIN of the card this hospital just scanned

    ``scan_id`` is the one the scan answered (valid for 3 minutes, one settlement). Without a
    matching recent scan by this hospital the answer is 409 ``scan_required``, whatever the card.
    """
    ch = channel("scan")
    body = parsed_json(ConfirmBody)
    return confirm_answer(desk_service().confirm(ch.client_id, body.scan_id, body.pin))
