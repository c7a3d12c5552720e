"""Enrollment API: authorize (channel) -> show -> consent -> challenge -> liveness -> PIN + issue.

The citizen's steps carry ``Authorization: Bearer <enrollment_token>``; the channel that started
an enrollment may also read it (HTTP Basic) to track it. With the default random challenge the
liveness step is the live capture protocol (``ecard/web/capture.py``); the one-shot
``/challenge`` + ``/liveness`` upload exists only with ``ECARD_LIVENESS_CHALLENGE=N``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ecard.enrollment import AGREEMENT_VERSION, Enrollments, EnrollmentView, agreement
from ecard.enrollment.verify import decide_and_record
from ecard.errors import AuthError, InvalidFieldError, LiveCaptureRequiredError, NotFoundError
from ecard.web import metrics
from ecard.web.http import bearer, channel, json_body, optional_json_body, services, str_field
from ecard.web.upload import read_upload

bp = Blueprint("enroll", __name__, url_prefix="/api/v1/enrollments")


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def _enrollments() -> Enrollments:
    return Enrollments(services().store)


def _citizen(enrollment_id: str) -> Enrollments:
    """The enrollments service after checking the Bearer enrollment token for this id."""
    enr = _enrollments()
    enr.check_token(enrollment_id, bearer())
    return enr


def view_to_dict(v: EnrollmentView) -> dict[str, Any]:
    challenge = None
    if v.challenge_blinks is not None:
        # the one-shot "N blinks anywhere" challenge: no cue times (live cues stay secret)
        challenge = {
            "blinks": v.challenge_blinks,
            "cues_ms": [],
            "expires_at": iso(v.nonce_expires_at),
        }
    capture = None
    if v.capture_expires_at is not None:
        capture = {"expires_at": iso(v.capture_expires_at)}
    return {
        "enrollment_id": v.id,
        "state": v.state,
        "citizen": {"name": v.name_masked, "id_number": v.id_number_masked},
        "agreement": {
            "version": agreement().version,
            "text": agreement().text,
            "texts": dict(agreement().texts),
        },
        "consent": (
            {"version": v.agreement_version, "at": iso(v.consented_at)} if v.consented_at else None
        ),
        "challenge": challenge,
        "capture": capture,
        "attempts_left": v.attempts_left,
        "reason": v.reason,
        "card_no": v.card_no,
        "created_at": iso(v.created_at),
        "expires_at": iso(v.expires_at),
        "timeline": [
            {"step": t.step, "outcome": t.outcome, "actor": t.actor.split(":")[0], "at": iso(t.at)}
            for t in v.timeline
        ],
    }


@bp.post("")
def authorize() -> tuple[Response, int]:
    ch = channel("enroll")
    body = json_body()
    auth = _enrollments().authorize(
        ch, str_field(body, "id_number", max_len=64), str_field(body, "name", max_len=200)
    )
    base = services().public_url  # configured origin only, never the Host header
    return jsonify(
        enrollment_id=auth.enrollment_id,
        enrollment_token=auth.token,
        enroll_url=f"{base}/enroll/{auth.token}",
        expires_at=iso(auth.expires_at),
    ), 201


@bp.get("/<enrollment_id>")
def show(enrollment_id: str) -> Response:
    enr = _enrollments()
    scheme = request.headers.get("Authorization", "").partition(" ")[0].lower()
    if scheme == "basic":
        ch = channel("enroll")
        if enr.channel_of(enrollment_id) != ch.id:
            raise NotFoundError("No such enrollment.")
    elif scheme == "bearer":
        enr.check_token(enrollment_id, bearer())
    else:
        raise AuthError("Send the enrollment token (Bearer) or the channel's credentials (Basic).")
    return jsonify(view_to_dict(enr.view(enrollment_id)))


@bp.post("/<enrollment_id>/consent")
def consent(enrollment_id: str) -> Response:
    enr = _citizen(enrollment_id)
    body = json_body()
    agree = body.get("agree")
    if not isinstance(agree, bool):
        raise InvalidFieldError("The field 'agree' must be true or false.")
    version = body.get("agreement_version")
    if version is not None and not isinstance(version, str):
        raise InvalidFieldError("The field 'agreement_version' must be a string.")
    state = enr.consent(enrollment_id, agree, agreement_version=version)
    reason = "consent_declined" if state == "failed" else None
    return jsonify(state=state, agreement_version=AGREEMENT_VERSION, reason=reason)


def _one_shot_allowed() -> int:
    """The fixed blink count of the one-shot upload; 409 ``live_capture_required`` when the
    challenge is random (its cues are revealed live, through the capture endpoints)."""
    fixed = services().settings.liveness_challenge
    if fixed is None:
        raise LiveCaptureRequiredError()
    return fixed


@bp.post("/<enrollment_id>/challenge")
def challenge(enrollment_id: str) -> Response:
    enr = _citizen(enrollment_id)
    optional_json_body()
    spec = enr.challenge(enrollment_id, _one_shot_allowed())
    return jsonify(
        nonce=spec.nonce,
        blinks=spec.blinks,
        cues_ms=list(spec.cues_ms),
        expires_at=iso(spec.expires_at),
    )


@bp.post("/<enrollment_id>/liveness")
def liveness(enrollment_id: str) -> Response:
    enr = _citizen(enrollment_id)
    svc = services()
    _one_shot_allowed()
    enr.ensure_state(enrollment_id, "challenged")
    upload = read_upload(svc.web)
    models = svc.require_models()
    pad = svc.require_pad()
    from ecard.liveness import Challenge, MediaLimits, analyze_frames, analyze_video

    ticket = enr.take_nonce(enrollment_id, upload.nonce)
    challenge = Challenge(blinks=ticket.blinks, cues_ms=ticket.cues_ms)
    web = svc.web
    limits = MediaLimits(
        max_bytes=web.max_body_bytes,
        max_frames=web.max_frames * (3 if upload.video is not None else 1),
        max_duration_ms=web.max_clip_ms,
        max_width=web.max_frame_side,
        max_height=web.max_frame_side,
    )
    if upload.video is not None:
        result = analyze_video(
            upload.video, models=models, challenge=challenge, limits=limits, pad=pad
        )
    else:
        frames = [(data, float(t)) for data, t in upload.frames]
        result = analyze_frames(frames, models=models, challenge=challenge, limits=limits, pad=pad)
    del upload  # frames are dropped as soon as they are analysed
    verdict = decide_and_record(enr, enrollment_id, result, template=ticket.template)
    metrics.LIVENESS.labels(
        outcome=verdict.state if verdict.reason is None else verdict.reason
    ).inc()
    return jsonify(
        live=verdict.live,
        blinks=verdict.blinks,
        match=verdict.match,
        state=verdict.state,
        reason=verdict.reason,
        attempts_left=verdict.attempts_left,
    )


@bp.post("/<enrollment_id>/pin")
def set_pin(enrollment_id: str) -> tuple[Response, int]:
    from ecard.cards.signing import card_signer
    from ecard.tokens.pin import check_pin_policy

    enr = _citizen(enrollment_id)
    svc = services()
    keys = svc.require_keys()
    enr.ensure_state(enrollment_id, "verified")
    pin = str_field(json_body(), "pin", max_len=64)
    check_pin_policy(pin, id_number=enr.id_number_of(enrollment_id))
    pin_hash = svc.pins.hash(pin)

    issued = enr.issue(enrollment_id, pin_hash, card_signer(keys, issuer=svc.issuer))
    metrics.CARDS_ISSUED.inc()
    return jsonify(card=issued.token, card_no=issued.card.card_no), 201
