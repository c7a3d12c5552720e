"""The request and response models of the HTTP API (pydantic v2): the one HTTP contract.

They validate what comes in (through :mod:`ecard.web.apispec`) and generate ``/openapi.json``.
The models check shape and bounds (types, lengths, ranges); rules of the domain (an ID number's
check digit, the PIN policy) stay in the domain, so the API and the CLI refuse the same things
with the same code. Unknown request fields are ignored (clients may send more than we read).

Three bases:

* :class:`Body`: a JSON request body, strict (``1`` is not ``"1"``, ``"true"`` is not ``true``);
* :class:`Form`: multipart fields, which arrive as text (``"3"`` is read as ``3``);
* :class:`Answer`: a response body, built by the views.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Json,
    WithJsonSchema,
    model_validator,
)

from ecard.enrollment.state import EnrollmentState
from ecard.errors import InvalidFieldError, MissingFieldError

#: A non-negative integer that fits every store and every float conversion (ms, counts).
BoundedInt = Annotated[int, Field(ge=0, le=10**12)]

#: One uploaded file part (multipart), kept in memory as bytes.
FilePart = Annotated[bytes, WithJsonSchema({"type": "string", "format": "binary"})]
#: Several file parts under one name, in order.
FileParts = Annotated[
    list[bytes],
    WithJsonSchema({"type": "array", "items": {"type": "string", "format": "binary"}}),
]


def check_text(value: str) -> str:
    """A person's name as the domain accepts it (:func:`ecard.names.check_name`: no control,
    bidi or invisible characters; NFC; 422 ``invalid_name`` naming the character otherwise)."""
    from ecard.names import check_name

    return check_name(value)


#: A person's name: checked by the domain's rule.
SafeText = Annotated[str, AfterValidator(check_text)]


class Body(BaseModel):
    """Base of JSON request bodies: strict types, unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Form(BaseModel):
    """Base of multipart fields: text read as the declared types, unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Answer(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Error(Answer):
    """Every error answer: a stable code (CONTRACT.md) and a sentence for the person."""

    error: str = Field(description="stable machine-readable code", examples=["missing_field"])
    message: str = Field(description="a plain sentence; never contains secrets")


class Status(Answer):
    status: str


def _strip(value: str) -> str:
    return value.strip()


Stripped = Annotated[str, AfterValidator(_strip)]
Pin = Annotated[
    str,
    Field(
        max_length=64,
        description="the card's 6-digit PIN (the policy is checked by the service)",
        examples=["480613"],
    ),
]
CardNo = Annotated[Stripped, Field(max_length=32, examples=["100000000017"])]


# --- enrollment --------------------------------------------------------------------------------


class AuthorizeBody(Body):
    """A channel starts an enrollment for a citizen of the registry."""

    id_number: str = Field(
        max_length=64,
        description="GB 11643 resident ID number (check digit verified)",
        examples=["11010519491231002X"],
    )
    name: Annotated[SafeText, Field(max_length=200, examples=["张三"])]
    purpose: Literal["issue", "recover"] = Field(
        default="issue",
        description=(
            "issue: a new card; recover: a face check for the citizen's live card, then a new "
            "PIN or a loss report (ecard/recovery.py)"
        ),
    )


class Authorized(Answer):
    enrollment_id: str
    enrollment_token: str
    enroll_url: str
    expires_at: datetime


class CitizenMasked(Answer):
    name: str
    id_number: str


class AgreementText(Answer):
    version: str
    text: str
    texts: dict[str, str] = Field(description="the same agreement by language tag (en, zh-CN)")


class ConsentRecord(Answer):
    version: str | None
    at: datetime | None


class ChallengeInfo(Answer):
    """The one-shot "N blinks anywhere" challenge (live cues are never shown in advance)."""

    blinks: int
    cues_ms: list[int]
    expires_at: datetime | None


class CaptureInfo(Answer):
    """The running live capture (state ``capturing``): when it expires."""

    expires_at: datetime


class TimelineEntry(Answer):
    step: str
    outcome: str
    actor: str
    at: datetime


class Enrollment(Answer):
    """Masked personal info, agreement, state and the timeline of steps."""

    enrollment_id: str
    state: EnrollmentState
    citizen: CitizenMasked
    agreement: AgreementText
    consent: ConsentRecord | None = None
    challenge: ChallengeInfo | None = None
    capture: CaptureInfo | None = None
    attempts_left: int
    reason: str | None = None
    card_no: str | None = None
    purpose: Literal["issue", "recover"] = Field(
        default="issue", description="recover: a face check for the live card (ecard/recovery.py)"
    )
    created_at: datetime | None = None
    expires_at: datetime | None = None
    timeline: list[TimelineEntry]


class ConsentBody(Body):
    agree: bool = Field(description="true: accept; false: decline (the enrollment ends)")
    agreement_version: str | None = Field(default=None, max_length=64)


class Consented(Answer):
    state: EnrollmentState
    agreement_version: str
    reason: str | None = None


class Challenge(Answer):
    nonce: str
    blinks: int
    cues_ms: list[int]
    expires_at: datetime


class LivenessForm(Form):
    """Either one ``video`` file, or ``frames`` JPEG parts in order. Frame times:
    ``timestamps_ms`` (a JSON list of non-decreasing integers, one per frame), else an even
    rate from ``fps`` (default 15). Limits: body, frame count, duration and frame sides are
    checked before analysis (413/422)."""

    nonce: str = Field(min_length=1, max_length=200)
    video: FilePart | None = None
    frames: FileParts = Field(default_factory=list)
    timestamps_ms: Json[list[BoundedInt]] | None = Field(
        default=None, description="a JSON list of integers (ms), one per frame"
    )
    fps: float = Field(default=15.0, ge=1.0, le=120.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_source(self) -> LivenessForm:
        if (self.video is None) == (not self.frames):
            raise MissingFieldError("Send either one 'video' file or 'frames' JPEG parts.")
        stamps = self.timestamps_ms
        if stamps is not None and (
            len(stamps) != len(self.frames) or any(b < a for a, b in itertools.pairwise(stamps))
        ):
            raise InvalidFieldError(
                "timestamps_ms must list one non-negative, non-decreasing integer per frame."
            )
        return self

    def frame_times(self) -> list[int]:
        """One time (ms) per frame: ``timestamps_ms``, else the even rate of ``fps``."""
        if self.timestamps_ms is not None:
            return list(self.timestamps_ms)
        return [round(i * 1000.0 / self.fps) for i in range(len(self.frames))]


class LivenessResult(Answer):
    live: bool
    blinks: int
    match: bool
    state: EnrollmentState
    reason: str | None = None
    attempts_left: int


class PinBody(Body):
    pin: Pin


class Issued(Answer):
    card: str = Field(description="the e-card (a signed JWT)")
    card_no: str


# --- the live capture ----------------------------------------------------------------------------


class CaptureStarted(Answer):
    capture_id: str
    expires_at: datetime
    batch_ms: int = Field(description="send a batch about this often (ms)")
    max_batch_frames: int = Field(description="most frames in one batch")
    fps: int = Field(description="frames per second to record")
    max_side: int = Field(description="downscale frames to at most this many px a side")
    max_ms: int = Field(description="longest capture (ms of client time)")
    attempts_left: int


def _capture_stamps(raw: str) -> list[float]:
    from ecard.capture import read_timestamps  # the protocol's rule: 422 bad_timestamps

    return read_timestamps(raw)


def _batch_frames(parts: list[bytes]) -> list[bytes]:
    from ecard.capture import CaptureLimits
    from ecard.errors import TooManyFramesError

    most = CaptureLimits().max_batch_frames
    if len(parts) > most:
        raise TooManyFramesError(f"{len(parts)} frames in one batch; at most {most}.")
    return parts


class CaptureBatchForm(Form):
    """One batch of the live capture: ``seq`` 0, 1, 2 ... (the next expected; a repeated or
    skipped one is 409 ``batch_repeated`` / ``batch_out_of_order``), ``timestamps_ms`` (a JSON
    list: ms since the capture's first frame, one per frame, strictly increasing also across
    batches; else 422 ``bad_timestamps``) and ``frames`` (JPEG parts in order; too many in the
    batch or the capture is 413 ``too_many_frames``). Timing is judged by the server: a batch
    far behind real time is 422 ``frames_too_late``, one stamped ahead of the time elapsed
    since the first batch 422 ``frames_from_future``. A refused batch changes nothing: send it
    again correctly, or send the next frames under the same ``seq``."""

    seq: int = Field(ge=0, le=999_999_999)
    timestamps_ms: Annotated[
        str,
        Field(max_length=64 * 1024, description="a JSON list of numbers (ms), one per frame"),
        AfterValidator(_capture_stamps),
        WithJsonSchema({"type": "string", "description": "a JSON list of numbers (ms)"}),
    ]
    frames: Annotated[FileParts, AfterValidator(_batch_frames)] = Field(default_factory=list)

    def stamps(self) -> list[float]:
        """The validated times (the validator turned the JSON text into numbers)."""
        value: Any = self.timestamps_ms
        return list(value)


class CaptureAnswer(Answer):
    cue: bool = Field(description="true: the person should act now (blink)")
    action: str | None = Field(description='"blink" while a cue is due, else null')
    done: bool = Field(description="true: stop recording and call finish")
    face: Literal["ok", "none", "multiple"]
    seq: int
    cues_total: int
    cues_shown: int


class CuesCount(Answer):
    asked: int
    answered: int


class CaptureVerdict(Answer):
    live: bool
    blinks: int
    match: bool
    state: EnrollmentState
    reason: str | None = None
    attempts_left: int
    cues: CuesCount


# --- cards ---------------------------------------------------------------------------------------


class TokenBody(Body):
    token: str = Field(max_length=8192, description="an e-card (JWT)")


class VerifyResult(Answer):
    """``valid`` with the claims, or why not (``error``, ``message``; ``status`` when the card
    is known but not active)."""

    valid: bool
    status: str | None = None
    claims: dict[str, Any] | None = None
    error: str | None = None
    message: str | None = None


class Qr(Answer):
    qr_token: str
    expires_at: datetime
    expires_in: int = Field(description="seconds left")
    qr_png: str = Field(description="the QR code as a base64 PNG")


class CardStatusResult(Answer):
    card_no: str
    status: str


class LoginBody(Body):
    card_no: CardNo
    pin: Pin


class CardSummary(Answer):
    card_no: str
    status: str
    name: str
    id_number_masked: str
    issued_at: datetime
    expires_at: datetime


class LoginResult(CardSummary):
    card: str = Field(description="a freshly signed e-card (JWT)")


class CardEvent(Answer):
    at: datetime
    action: str
    outcome: str
    by: Literal["you", "hospital", "app", "service"] = Field(
        "service", description="who: the holder's device, a hospital, a city app, this service"
    )
    where: str | None = Field(None, description="the hospital's or app's name")
    alert: bool = Field(False, description="a wrong PIN was entered: a security alert")


class CardOverview(CardSummary):
    """The card's status now and the timeline of its application."""

    events: list[CardEvent]


# The hospital's scan and settlement models live beside their routes (ecard/web/hospital.py,
# ecard/web/desk.py), as do the recovery's (ecard/web/recovery.py).


# --- pages' JSON routes ----------------------------------------------------------------------


class FaceCheckForm(Form):
    """One small JPEG of what the preview shows, and the enrollment it belongs to."""

    enrollment_id: str = Field(max_length=64)
    frame: Annotated[
        list[bytes],
        Field(min_length=1, max_length=1),
        WithJsonSchema({"type": "string", "format": "binary"}),
    ]


class FaceCheck(Answer):
    """What the preview shows; ``box``, ``brightness`` and ``sharpness`` are null with no face."""

    faces: int
    face_width: float
    box: list[float] | None = None
    brightness: float | None = None
    sharpness: float | None = None
    verdict: str
