"""Live capture API (docs/liveness-protocol.md): start, frames in batches, finish.

Views parse the request, call :class:`ecard.capture.Captures` and serialise its answer; the
protocol's rules live there. Every step carries the citizen's ``Authorization: Bearer
<enrollment_token>``.

Tests may set ``app.config["CAPTURE_CLOCK"]`` to a callable returning an aware ``datetime``: the
server's time for the capture steps (arrival and answer times), so that a test can stream a
clip faster than real time.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Blueprint, current_app, g

from ecard.capture import CaptureLimits, Captures, LiveAnalysers
from ecard.enrollment import Enrollments
from ecard.errors import NotFoundError
from ecard.web.apispec import BEARER_ENROLL, parsed_form, responses, validate
from ecard.web.http import bearer, optional_json_body, services
from ecard.web.schemas import (
    CaptureAnswer,
    CaptureBatchForm,
    CaptureStarted,
    CaptureVerdict,
)
from ecard.web.verdicts import capture_answer

bp = Blueprint("capture", __name__, url_prefix="/api/v1/enrollments")

_CAPTURE_ID = re.compile(r"^[0-9a-f]{24}$")


def _clock() -> Callable[[], datetime]:
    clock = current_app.config.get("CAPTURE_CLOCK")
    if callable(clock):
        return clock
    return lambda: datetime.now(UTC)


def _citizen(enrollment_id: str, capture_id: str | None = None) -> None:
    """401 unless the request carries this enrollment's Bearer token (memoised per request);
    404 for a capture id of the wrong shape."""
    if g.get("enrollment_checked") != enrollment_id:
        Enrollments(services().store).check_token(enrollment_id, bearer())
        g.enrollment_checked = enrollment_id
    if capture_id is not None:
        _capture_id(capture_id)


#: the statuses a capture step may answer besides its success
STEP_ERRORS = (400, 401, 404, 409, 410, 415, 422, 423, 429)


def _captures(*, models: bool) -> Captures:
    """The protocol over this process's store; ``models``: the face models are needed (503
    when they cannot be loaded)."""
    svc = services()
    web = svc.web
    limits = CaptureLimits(
        max_ms=web.max_clip_ms,
        max_frames=web.max_frames,
        max_frame_side=web.max_frame_side,
        max_batch_bytes=web.max_body_bytes,
    )
    if models:
        analysers = LiveAnalysers(svc.require_models(), pad=svc.require_pad())
    else:
        analysers = LiveAnalysers(svc.models)
    return Captures(svc.store, analysers, limits)


def _capture_id(capture_id: str) -> str:
    if not _CAPTURE_ID.match(capture_id):
        raise NotFoundError("No such capture.")
    return capture_id


@bp.post("/<enrollment_id>/capture")
@validate(
    resp=responses({201: CaptureStarted}, *STEP_ERRORS),
    tags=["capture"],
    security=BEARER_ENROLL,
)
def start(enrollment_id: str) -> tuple[CaptureStarted, int]:
    """Start a live capture: uses one of the 3 attempts; the challenge stays secret

    409 capture_running while another runs. The body, if any, is an empty JSON object."""
    _citizen(enrollment_id)
    optional_json_body()
    captures = _captures(models=False)
    settings = services().settings
    seed = settings.liveness_seed
    rng = (
        random.Random(seed) if seed is not None else secrets.SystemRandom()
    )  # seeded: tests only (ECARD_LIVENESS_SEED)
    started = captures.start(
        enrollment_id, fixed_blinks=settings.liveness_challenge, rng=rng, now=_clock()()
    )
    lim = started.limits
    return CaptureStarted(
        capture_id=started.capture_id,
        expires_at=started.expires_at,
        batch_ms=lim.batch_ms,
        max_batch_frames=lim.max_batch_frames,
        fps=lim.fps,
        max_side=lim.max_side,
        max_ms=lim.max_ms,
        attempts_left=started.attempts_left,
    ), 201


def _arrival(enrollment_id: str, capture_id: str) -> None:
    """The batch's arrival time (before the body is read), then the token."""
    g.capture_arrived = _clock()()
    _citizen(enrollment_id, capture_id)


@bp.post("/<enrollment_id>/capture/<capture_id>/frames")
@validate(
    form=CaptureBatchForm,
    resp=responses({200: CaptureAnswer}, *STEP_ERRORS, 413, 503),
    tags=["capture"],
    security=BEARER_ENROLL,
    guard=_arrival,
)
def frames(enrollment_id: str, capture_id: str) -> CaptureAnswer:
    """Send one batch of frames; the answer reveals a cue when it is due"""
    clock = _clock()
    arrived: datetime = g.capture_arrived
    batch = parsed_form(CaptureBatchForm)
    answer = _captures(models=True).add_batch(
        enrollment_id,
        capture_id,
        seq=batch.seq,
        timestamps=batch.stamps(),
        frames=batch.frames,
        now=arrived,
        clock=clock,
    )
    del batch
    return CaptureAnswer(
        cue=answer.cue,
        action=answer.action,
        done=answer.done,
        face=answer.face,
        seq=answer.seq,
        cues_total=answer.cues_total,
        cues_shown=answer.cues_shown,
    )


@bp.post("/<enrollment_id>/capture/<capture_id>/finish")
@validate(
    resp=responses({200: CaptureVerdict}, *STEP_ERRORS, 503),
    tags=["capture"],
    security=BEARER_ENROLL,
)
def finish(enrollment_id: str, capture_id: str) -> CaptureVerdict:
    """End the capture: the verdict (liveness, cues, ID-photo match) at once

    The body, if any, is an empty JSON object."""
    _citizen(enrollment_id)
    optional_json_body()
    verdict = _captures(models=True).finish(enrollment_id, _capture_id(capture_id), now=_clock()())
    return capture_answer(verdict)
