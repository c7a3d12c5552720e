"""Recovery API (ecard/recovery.py): the holder's new PIN and loss report after a fresh face
check, and the channel's loss report on behalf of its authenticated user.

* ``POST /api/v1/cards/recovery`` (Bearer card, no PIN) or ``POST /api/v1/enrollments`` with
  ``"purpose": "recover"`` (channel, scope ``enroll``) start a recovery: 201 with an
  enrollment token and link, as for any enrollment.
* The holder then runs the usual steps on ``/api/v1/enrollments/{id}/...`` (consent, live
  capture) until the state is ``verified``.
* ``POST /api/v1/enrollments/{id}/recovery/suspend`` reports the loss;
  ``POST /api/v1/enrollments/{id}/recovery/pin`` ``{"pin"}`` sets a new PIN and answers a fresh
  card token (older tokens of the card stop working).
* ``POST /api/v1/cards/{card_no}/suspend`` (channel, scope ``enroll``: ``{"id_number"}``) reports
  the loss for the channel's user.
"""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint
from pydantic import Field

from ecard.recovery import Recoveries
from ecard.web.apispec import BASIC, BEARER_CARD, BEARER_ENROLL, parsed_json, responses, validate
from ecard.web.http import bearer, channel, services
from ecard.web.schemas import Answer, Authorized, Body, PinBody

bp = Blueprint("recovery", __name__, url_prefix="/api/v1")


class CardState(Answer):
    card_no: str
    status: str


class NewCard(Answer):
    card: str = Field(description="a fresh e-card token (older tokens of the card stop working)")
    card_no: str
    status: str


class ChannelSuspendBody(Body):
    """The holder's ID number, which the channel knows of its authenticated user."""

    id_number: Annotated[str, Field(min_length=1, max_length=64)]


def _recoveries() -> Recoveries:
    svc = services()
    return Recoveries(svc.store, svc.cards())


def _holder() -> None:
    from ecard.web.cards import holder_card

    holder_card()


def _enroll_channel(**_: str) -> None:
    channel("enroll")


def _citizen(enrollment_id: str) -> None:
    _recoveries().enrollments.check_token(enrollment_id, bearer())


@bp.post("/cards/recovery")
@validate(
    resp=responses({201: Authorized}, 401, 409, 429),
    tags=["recovery"],
    security=BEARER_CARD,
    guard=_holder,
)
def start_for_holder() -> tuple[Authorized, int]:
    """Start a recovery from the card token (no PIN): a face check opens a new PIN or a loss
    report"""
    from ecard.web.cards import holder_card
    from ecard.web.enroll import authorized_answer

    return authorized_answer(_recoveries().start_for_holder(holder_card().id)), 201


@bp.post("/enrollments/<enrollment_id>/recovery/suspend")
@validate(
    resp=responses({200: CardState}, 401, 404, 409, 410, 423, 429),
    tags=["recovery"],
    security=BEARER_ENROLL,
    guard=_citizen,
)
def report_loss(enrollment_id: str) -> CardState:
    """Report the loss after the face check of a recovery (no PIN)"""
    card = _recoveries().report_loss(enrollment_id)
    return CardState(card_no=card.card_no, status=card.status)


@bp.post("/enrollments/<enrollment_id>/recovery/pin")
@validate(
    json=PinBody,
    resp=responses({200: NewCard}, 400, 401, 404, 409, 410, 415, 422, 423, 429, 503),
    tags=["recovery"],
    security=BEARER_ENROLL,
    guard=_citizen,
)
def new_pin(enrollment_id: str) -> NewCard:
    """A new PIN after the face check of a recovery; answers a fresh card token"""
    from ecard.cards.signing import sign_card

    svc = services()
    keys = svc.require_keys()
    done = _recoveries().new_pin(enrollment_id, parsed_json(PinBody).pin, svc.pins)
    token = sign_card(keys, done.card, issuer=svc.issuer, jti=done.jti)
    return NewCard(card=token, card_no=done.card.card_no, status=done.card.status)


@bp.post("/cards/<card_no>/suspend")
@validate(
    json=ChannelSuspendBody,
    resp=responses({200: CardState}, 400, 401, 403, 404, 409, 415, 422, 429),
    tags=["recovery"],
    security=BASIC,
    guard=_enroll_channel,
)
def suspend_for_channel(card_no: str) -> CardState:
    """The channel reports a loss for its authenticated user (scope enroll; audited)"""
    ch = channel("enroll")
    card = _recoveries().suspend_for_channel(
        ch, card_no[:32], parsed_json(ChannelSuspendBody).id_number
    )
    return CardState(card_no=card.card_no, status=card.status)
