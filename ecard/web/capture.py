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
from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, jsonify, request

from ecard.capture import CaptureLimits, Captures, LiveAnalysers, read_timestamps
from ecard.enrollment import Enrollments
from ecard.errors import (
    InvalidFieldError,
    MissingFieldError,
    NotFoundError,
    TooManyFramesError,
    UnsupportedMediaTypeError,
)
from ecard.web import metrics
from ecard.web.http import bearer, optional_json_body, services

if TYPE_CHECKING:
    pass

bp = Blueprint("capture", __name__, url_prefix="/api/v1/enrollments")

_CAPTURE_ID = re.compile(r"^[0-9a-f]{24}$")


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _clock() -> Callable[[], datetime]:
    clock = current_app.config.get("CAPTURE_CLOCK")
    if callable(clock):
        return clock
    return lambda: datetime.now(UTC)


def _citizen(enrollment_id: str) -> None:
    """401 unless the request carries this enrollment's Bearer token."""
    Enrollments(services().store).check_token(enrollment_id, bearer())


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
def start(enrollment_id: str) -> tuple[Response, int]:
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
    return jsonify(
        capture_id=started.capture_id,
        expires_at=iso(started.expires_at),
        batch_ms=lim.batch_ms,
        max_batch_frames=lim.max_batch_frames,
        fps=lim.fps,
        max_side=lim.max_side,
        max_ms=lim.max_ms,
        attempts_left=started.attempts_left,
    ), 201


def _seq() -> int:
    raw = request.form.get("seq")
    if raw is None or raw == "":
        raise MissingFieldError("The field 'seq' is required (0, 1, 2 ...).")
    if not raw.isdecimal() or len(raw) > 9:
        raise InvalidFieldError("The field 'seq' must be a whole number (0, 1, 2 ...).")
    return int(raw)


@bp.post("/<enrollment_id>/capture/<capture_id>/frames")
def frames(enrollment_id: str, capture_id: str) -> Response:
    clock = _clock()
    arrived = clock()
    _citizen(enrollment_id)
    cid = _capture_id(capture_id)
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaTypeError("Send the batch as multipart/form-data.")
    seq = _seq()
    parts = request.files.getlist("frames")
    most = CaptureLimits().max_batch_frames
    if len(parts) > most:
        raise TooManyFramesError(f"{len(parts)} frames in one batch; at most {most}.")
    stamps = read_timestamps(request.form.get("timestamps_ms"))
    data = [part.read() for part in parts]
    answer = _captures(models=True).add_batch(
        enrollment_id,
        cid,
        seq=seq,
        timestamps=stamps,
        frames=data,
        now=arrived,
        clock=clock,
    )
    del data
    return jsonify(
        cue=answer.cue,
        action=answer.action,
        done=answer.done,
        face=answer.face,
        seq=answer.seq,
        cues_total=answer.cues_total,
        cues_shown=answer.cues_shown,
    )


@bp.post("/<enrollment_id>/capture/<capture_id>/finish")
def finish(enrollment_id: str, capture_id: str) -> Response:
    _citizen(enrollment_id)
    optional_json_body()
    verdict = _captures(models=True).finish(enrollment_id, _capture_id(capture_id), now=_clock()())
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
        cues={"asked": verdict.cues_asked, "answered": verdict.cues_answered},
    )
