"""Enrollment API: authorize (channel) -> show -> consent -> challenge -> liveness -> PIN + issue.

The citizen's steps carry ``Authorization: Bearer <enrollment_token>``; the channel that started
an enrollment may also read it (HTTP Basic) to track it. With the default random challenge the
liveness step is the live capture protocol (``ecard/web/capture.py``); the one-shot
``/challenge`` + ``/liveness`` upload exists only with ``ECARD_LIVENESS_CHALLENGE=N``.
"""

from __future__ import annotations

from flask import Blueprint, g, request

from ecard.enrollment import (
    AGREEMENT_VERSION,
    Enrollments,
    EnrollmentState,
    EnrollmentView,
    agreement,
)
from ecard.enrollment import Authorized as AuthorizedValue
from ecard.enrollment.verify import decide_and_record
from ecard.errors import AuthError, LiveCaptureRequiredError, NotFoundError
from ecard.web import metrics
from ecard.web.apispec import (
    BASIC,
    BEARER_ENROLL,
    parsed_form,
    parsed_json,
    responses,
    validate,
)
from ecard.web.http import bearer, channel, optional_json_body, services
from ecard.web.schemas import (
    AgreementText,
    AuthorizeBody,
    Authorized,
    CaptureInfo,
    Challenge,
    ChallengeInfo,
    CitizenMasked,
    ConsentBody,
    Consented,
    ConsentRecord,
    Enrollment,
    Issued,
    LivenessForm,
    LivenessResult,
    PinBody,
    TimelineEntry,
)
from ecard.web.upload import read_upload
from ecard.web.verdicts import liveness_answer

bp = Blueprint("enroll", __name__, url_prefix="/api/v1/enrollments")


def _enrollments() -> Enrollments:
    return Enrollments(services().store)


def _citizen(enrollment_id: str) -> Enrollments:
    """The enrollments service after checking the Bearer enrollment token for this id
    (memoised for the request: a route's guard and its view both ask)."""
    enr = _enrollments()
    if g.get("enrollment_checked") != enrollment_id:
        enr.check_token(enrollment_id, bearer())
        g.enrollment_checked = enrollment_id
    return enr


def view_model(v: EnrollmentView) -> Enrollment:
    challenge = None
    if v.challenge_blinks is not None:
        # the one-shot "N blinks anywhere" challenge: no cue times (live cues stay secret)
        challenge = ChallengeInfo(
            blinks=v.challenge_blinks, cues_ms=[], expires_at=v.nonce_expires_at
        )
    capture = None
    if v.capture_expires_at is not None:
        capture = CaptureInfo(expires_at=v.capture_expires_at)
    text = agreement()
    return Enrollment(
        enrollment_id=v.id,
        state=EnrollmentState(v.state),
        citizen=CitizenMasked(name=v.name_masked, id_number=v.id_number_masked),
        agreement=AgreementText(version=text.version, text=text.text, texts=dict(text.texts)),
        consent=(
            ConsentRecord(version=v.agreement_version, at=v.consented_at)
            if v.consented_at
            else None
        ),
        challenge=challenge,
        capture=capture,
        attempts_left=v.attempts_left,
        reason=v.reason,
        card_no=v.card_no,
        purpose=v.purpose,
        created_at=v.created_at,
        expires_at=v.expires_at,
        timeline=[
            TimelineEntry(step=t.step, outcome=t.outcome, actor=t.actor.split(":")[0], at=t.at)
            for t in v.timeline
        ],
    )


#: the statuses a citizen's step may answer besides its success
STEP_ERRORS = (400, 401, 404, 409, 410, 415, 422, 423, 429)


def _channel_enroll() -> None:
    channel("enroll")


@bp.post("")
@validate(
    json=AuthorizeBody,
    resp=responses({201: Authorized}, 400, 401, 403, 404, 415, 422, 429),
    tags=["enroll"],
    security=BASIC,
    guard=_channel_enroll,
)
def authorize() -> tuple[Authorized, int]:
    """Start an enrollment (channel, scope enroll); ``purpose: recover`` starts a recovery"""
    ch = channel("enroll")
    body = parsed_json(AuthorizeBody)
    if body.purpose == "recover":
        from ecard.recovery import Recoveries

        svc = services()
        auth = Recoveries(svc.store, svc.cards()).start_for_channel(ch, body.id_number, body.name)
    else:
        auth = _enrollments().authorize(ch, body.id_number, body.name)
    return authorized_answer(auth), 201


def authorized_answer(auth: AuthorizedValue) -> Authorized:
    """A started enrollment (or recovery) as the channel and the holder receive it."""
    base = services().public_url  # configured origin only, never the Host header
    return Authorized(
        enrollment_id=auth.enrollment_id,
        enrollment_token=auth.token,
        enroll_url=f"{base}/enroll/{auth.token}",
        expires_at=auth.expires_at,
    )


@bp.get("/<enrollment_id>")
@validate(
    resp=responses({200: Enrollment}, 401, 403, 404, 429),
    tags=["enroll"],
    security={**BEARER_ENROLL, **BASIC},
)
def show(enrollment_id: str) -> Enrollment:
    """Masked personal info, agreement, state and the timeline of steps

    With the enrollment token (Bearer), or the credentials of the channel that started it."""
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
    return view_model(enr.view(enrollment_id))


@bp.post("/<enrollment_id>/consent")
@validate(
    json=ConsentBody,
    resp=responses({200: Consented}, *STEP_ERRORS),
    tags=["enroll"],
    security=BEARER_ENROLL,
    guard=_citizen,
)
def consent(enrollment_id: str) -> Consented:
    """Accept (or decline: the enrollment ends) the agreement; version and time recorded"""
    enr = _citizen(enrollment_id)
    body = parsed_json(ConsentBody)
    state = enr.consent(enrollment_id, body.agree, agreement_version=body.agreement_version)
    reason = "consent_declined" if state == "failed" else None
    return Consented(
        state=EnrollmentState(state), agreement_version=AGREEMENT_VERSION, reason=reason
    )


def _one_shot_allowed() -> int:
    """The fixed blink count of the one-shot upload; 409 ``live_capture_required`` when the
    challenge is random (its cues are revealed live, through the capture endpoints)."""
    fixed = services().settings.liveness_challenge
    if fixed is None:
        raise LiveCaptureRequiredError()
    return fixed


@bp.post("/<enrollment_id>/challenge")
@validate(
    resp=responses({200: Challenge}, *STEP_ERRORS),
    tags=["enroll"],
    security=BEARER_ENROLL,
)
def challenge(enrollment_id: str) -> Challenge:
    """A fresh single-use one-shot challenge

    With ECARD_LIVENESS_CHALLENGE=N: N blinks anywhere; with the random challenge 409
    live_capture_required. The body, if any, is an empty JSON object."""
    enr = _citizen(enrollment_id)
    optional_json_body()
    spec = enr.challenge(enrollment_id, _one_shot_allowed())
    return Challenge(
        nonce=spec.nonce,
        blinks=spec.blinks,
        cues_ms=list(spec.cues_ms),
        expires_at=spec.expires_at,
    )


def _ready_for_upload(enrollment_id: str) -> None:
    """Before the upload is looked at: the token, the one-shot mode and the state."""
    enr = _citizen(enrollment_id)
    _one_shot_allowed()
    enr.ensure_state(enrollment_id, "challenged")


@bp.post("/<enrollment_id>/liveness")
@validate(
    form=LivenessForm,
    resp=responses({200: LivenessResult}, *STEP_ERRORS, 413, 503),
    tags=["enroll"],
    security=BEARER_ENROLL,
    guard=_ready_for_upload,
)
def liveness(enrollment_id: str) -> LivenessResult:
    """Upload the clip: blink liveness and ID-photo match (3 attempts)

    With the random challenge 409 live_capture_required (use the capture endpoints)."""
    enr = _citizen(enrollment_id)
    svc = services()
    upload = read_upload(parsed_form(LivenessForm), svc.web)
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
    return liveness_answer(verdict)


def _ready_for_pin(enrollment_id: str) -> None:
    _citizen(enrollment_id).ensure_state(enrollment_id, "verified")


@bp.post("/<enrollment_id>/pin")
@validate(
    json=PinBody,
    resp=responses({201: Issued}, *STEP_ERRORS, 503),
    tags=["enroll"],
    security=BEARER_ENROLL,
    guard=_ready_for_pin,
)
def set_pin(enrollment_id: str) -> tuple[Issued, int]:
    """Set the 6-digit PIN and issue the e-card"""
    from ecard.cards.signing import card_signer
    from ecard.tokens.pin import check_pin_policy

    enr = _citizen(enrollment_id)
    svc = services()
    keys = svc.require_keys()
    enr.ensure_state(enrollment_id, "verified")
    pin = parsed_json(PinBody).pin
    check_pin_policy(pin, id_number=enr.id_number_of(enrollment_id))
    pin_hash = svc.pins.hash(pin)

    issued = enr.issue(enrollment_id, pin_hash, card_signer(keys, issuer=svc.issuer))
    metrics.CARDS_ISSUED.inc()
    return Issued(card=issued.token, card_no=issued.card.card_no), 201
