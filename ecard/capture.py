"""The live capture protocol over the store (docs/liveness-protocol.md; no Flask here).

A capture is one liveness attempt recorded live: :meth:`Captures.start` draws the secret
challenge and counts the attempt, :meth:`Captures.add_batch` analyses each small batch of JPEG
frames as it arrives, judges its timing and reveals a cue when it is due, and
:meth:`Captures.finish` turns what was analysed into the verdict, matches the registry photo and
records the outcome through the same domain function as the one-shot upload
(:func:`ecard.enrollment.verify.decide_and_record`).

State between batches lives in the ``captures`` row (batches may reach different workers): the
secret plan, the next ``seq``, the timing figures, the cue reveal times and the analyser's state
(``LivenessSession.to_bytes()``: landmarks and measurements, no pixels), guarded by an integer
``version`` (optimistic concurrency: a batch analysed from version *v* is stored only if the row
is still at *v*). Pixels live only while their batch is analysed; no frame is written anywhere.
The row is deleted at finish and at expiry (``max_ms`` + 30 s after the start), when it is
touched, when the enrollment is read, or by the cheap sweep each new capture runs.

Timing, in milliseconds (``arrival`` is server time since the capture started, ``ts`` the
client's stamp of a batch's newest frame, ms since its first frame):

* ``offset = min over batches (arrival - ts)``: the clock offset plus the fastest upload;
* a batch with ``arrival - ts > offset + max_backlog_ms`` is ``frames_too_late``;
* a batch with ``ts > arrival - first_arrival + first_ts_newest + future_slack_ms`` is
  ``frames_from_future``;
* a cue revealed in the answer to a batch was shown at the earliest at client time
  ``shown = server_send - offset``; only blinks starting at or after ``shown +
  min_reaction_ms`` answer it (:func:`ecard.liveness.challenge.judge_live`), so frames already
  sent can never answer it.

Every refusal is a typed 4xx raised before anything is stored: the capture goes on and the
batch can be sent again correctly. Time (``now``, ``clock``) and randomness (``rng``) are
parameters so tests drive them.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ecard.enrollment import Enrollments, EnrollmentState, LivenessVerdict
from ecard.enrollment.verify import decide_and_record
from ecard.errors import (
    BatchOrderError,
    BatchRepeatedError,
    CaptureExpiredError,
    CaptureFinishedError,
    CaptureRunningError,
    CaptureTooLongError,
    EnrollmentExpiredError,
    FaceError,
    FramesFromFutureError,
    FramesTooLateError,
    NotFoundError,
    TimestampError,
    TooFewFramesError,
    TooManyFramesError,
    UnreadableMediaError,
)
from ecard.store.models import AuditEvent, CaptureRow, Enrollment

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ecard.faces.models import FaceModels
    from ecard.liveness.blinks import BlinkEvent
    from ecard.liveness.challenge import Challenge, LiveChallenge
    from ecard.liveness.policy import BlinkPolicy
    from ecard.liveness.result import LivenessResult
    from ecard.store import Store

    TimedFrame = tuple[npt.NDArray[np.uint8], float]

FaceState = Literal["ok", "none", "multiple"]
_JPEG = b"\xff\xd8\xff"
#: in count mode ("N blinks anywhere") the capture is done this long after the N-th blink ends,
#: so that the analyser sees open eyes after it (identity binding needs them)
COUNT_TAIL_MS = 1000.0
#: how many times finish retries its claim while batches keep landing
_CLAIM_TRIES = 5


@dataclass(frozen=True)
class CaptureLimits:
    """The protocol's numbers. ``batch_ms``, ``fps`` and ``max_side`` are hints for the client
    (sent at start); the others are enforced.

    ``max_batch_frames`` and ``max_frames`` bound a batch and a whole capture (413
    ``too_many_frames``); ``max_ms`` the capture's duration in client time (413
    ``capture_too_long``; the capture is ``done`` before); ``max_frame_side`` (px) and
    ``max_batch_bytes`` each frame and batch (413); ``max_backlog_ms`` how far behind real time
    a batch may arrive (422 ``frames_too_late``); ``future_slack_ms`` how far ahead of the time
    elapsed since the first batch its stamps may run (422 ``frames_from_future``); a capture
    expires ``expiry_grace_s`` after ``max_ms``.
    """

    batch_ms: int = 400
    max_batch_frames: int = 24
    fps: int = 12
    max_side: int = 320
    max_ms: int = 20_000
    max_frames: int = 300
    max_frame_side: int = 1920
    max_batch_bytes: int = 8 * 1024 * 1024
    max_backlog_ms: int = 3000
    future_slack_ms: int = 500
    expiry_grace_s: int = 30

    @property
    def lifetime(self) -> timedelta:
        return timedelta(milliseconds=self.max_ms, seconds=self.expiry_grace_s)


# --- the analyser, as the protocol uses it ------------------------------------------------------


class BatchSummary(Protocol):
    """What the protocol reads from one analysed batch (``LivenessSession.feed``'s report)."""

    @property
    def faces(self) -> int | None: ...

    @property
    def face_found(self) -> bool: ...


class AnalysisSession(Protocol):
    """The incremental analyser of one capture (:class:`ecard.liveness.session.LivenessSession`)."""

    def feed(self, frames: list[TimedFrame]) -> BatchSummary: ...

    def events(self) -> tuple[BlinkEvent, ...]: ...

    def to_bytes(self) -> bytes: ...

    def finish(self, challenge: Challenge | None = None) -> LivenessResult: ...


class Analysers(Protocol):
    """Makes a fresh analyser for a capture, or restores one from its stored state."""

    def new(self) -> AnalysisSession: ...

    def load(self, data: bytes) -> AnalysisSession: ...


class LiveAnalysers:
    """:class:`Analysers` over the real :class:`~ecard.liveness.session.LivenessSession`."""

    def __init__(
        self, models: FaceModels, policy: BlinkPolicy | None = None, pad: Any = None
    ) -> None:
        self.models = models
        self.policy = policy
        self.pad = pad

    def new(self) -> AnalysisSession:
        from ecard.liveness.session import LivenessSession

        return LivenessSession(self.models, self.policy, pad=self.pad, lookahead=False)

    def load(self, data: bytes) -> AnalysisSession:
        from ecard.liveness.session import LivenessSession

        return LivenessSession.from_bytes(data, self.models, self.policy, pad=self.pad)


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The secret challenge of one capture: live cues (``live``), or ``blinks`` anywhere."""

    live: LiveChallenge | None
    blinks: int

    @classmethod
    def draw(cls, fixed_blinks: int | None, rng: random.Random | secrets.SystemRandom) -> Plan:
        from ecard.liveness.challenge import plan_live_challenge

        if fixed_blinks is None:
            live = plan_live_challenge(rng)
            return cls(live, len(live.cues))
        return cls(None, fixed_blinks)

    @property
    def cues_total(self) -> int:
        return 0 if self.live is None else len(self.live.cues)

    def to_json(self) -> str:
        if self.live is None:
            return json.dumps({"mode": "count", "blinks": self.blinks})
        return json.dumps({"mode": "live", "challenge": self.live.to_dict()})

    @classmethod
    def from_json(cls, raw: str) -> Plan:
        from ecard.liveness.challenge import LiveChallenge

        data = json.loads(raw)
        if data["mode"] == "count":
            return cls(None, int(data["blinks"]))
        live = LiveChallenge.from_dict(data["challenge"])
        return cls(live, len(live.cues))


@dataclass(frozen=True)
class CaptureStarted:
    capture_id: str
    expires_at: datetime
    limits: CaptureLimits
    attempts_left: int


@dataclass(frozen=True)
class BatchAnswer:
    """The answer to one batch: ``cue`` true while the person should act now (``action``)."""

    seq: int
    cue: bool
    action: str | None
    done: bool
    face: FaceState
    cues_total: int
    cues_shown: int


@dataclass(frozen=True)
class CaptureVerdict(LivenessVerdict):
    """The recorded verdict (:func:`ecard.enrollment.verify.decide_and_record`) and the cues."""

    cues_asked: int
    cues_answered: int


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _ms_since(start: datetime, t: datetime) -> float:
    return (t - start).total_seconds() * 1000.0


def read_timestamps(raw: str | None) -> list[float]:
    """The ``timestamps_ms`` field: a JSON list of finite non-negative numbers (422 otherwise)."""
    if raw is None:
        raise TimestampError("The field 'timestamps_ms' is required (a JSON list, one per frame).")
    try:
        values = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested thousands of levels deep
        raise TimestampError("timestamps_ms must be a JSON list of numbers.") from None
    if not isinstance(values, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise TimestampError("timestamps_ms must be a JSON list of numbers.")
    try:
        stamps = [float(v) for v in values]
    except OverflowError:  # an integer beyond any float (10**400)
        raise TimestampError("timestamps_ms must be non-negative milliseconds.") from None
    if not all(math.isfinite(v) and 0.0 <= v <= 1e9 for v in stamps):
        raise TimestampError("timestamps_ms must be non-negative milliseconds.")
    return stamps


def _check_batch(
    row: CaptureRow, seq: int, stamps: Sequence[float], frames: Sequence[bytes], lim: CaptureLimits
) -> None:
    """Order, counts, stamps: every check that needs no decoding (nothing is stored yet)."""
    if seq < row.next_seq:
        raise BatchRepeatedError(
            f"Batch {seq} was already received; the next batch is {row.next_seq}."
        )
    if seq > row.next_seq:
        raise BatchOrderError(f"Batch {seq} is not the next one; send batch {row.next_seq}.")
    n = len(frames)
    if n == 0:
        raise TooFewFramesError("A batch needs at least one frame.")
    if n > lim.max_batch_frames:
        raise TooManyFramesError(f"{n} frames in one batch; at most {lim.max_batch_frames}.")
    if row.frames + n > lim.max_frames:
        raise TooManyFramesError(f"At most {lim.max_frames} frames in one capture; finish it.")
    if len(stamps) != n:
        raise TimestampError(f"{len(stamps)} timestamps for {n} frames; send one per frame.")
    if any(b <= a for a, b in itertools.pairwise(stamps)):
        raise TimestampError("timestamps_ms must increase strictly.")
    if row.newest_ts is not None and stamps[0] <= row.newest_ts:
        raise TimestampError(
            f"The batch must continue the previous one (its newest frame is at {row.newest_ts:g}"
            " ms)."
        )
    first = stamps[0] if row.first_ts is None else row.first_ts
    if stamps[-1] - first > lim.max_ms:
        raise CaptureTooLongError(f"A capture lasts at most {lim.max_ms} ms; finish it.")
    if sum(len(f) for f in frames) > lim.max_batch_bytes:
        raise TooManyFramesError(f"The batch exceeds {lim.max_batch_bytes} bytes.")
    if not all(f.startswith(_JPEG) for f in frames):
        raise UnreadableMediaError("Each frame must be a JPEG image.")


@dataclass(frozen=True)
class _Timing:
    arrival_ms: float
    offset_ms: float
    first_arrival_ms: float
    first_newest_ts: float


def _judge_timing(row: CaptureRow, newest: float, arrival: float, lim: CaptureLimits) -> _Timing:
    lag = arrival - newest
    if row.offset_ms is None or row.first_arrival_ms is None or row.first_newest_ts is None:
        # the first batch: the client started recording after the capture started
        if newest > arrival + lim.future_slack_ms:
            raise FramesFromFutureError(
                "The frames are stamped later than the time elapsed since the capture started."
            )
        return _Timing(arrival, lag, arrival, newest)
    if lag > row.offset_ms + lim.max_backlog_ms:
        raise FramesTooLateError(
            f"The batch's newest frame is {lag - row.offset_ms:.0f} ms behind; at most "
            f"{lim.max_backlog_ms} ms. Send newer frames."
        )
    if newest > arrival - row.first_arrival_ms + row.first_newest_ts + lim.future_slack_ms:
        raise FramesFromFutureError(
            "The frames are stamped later than the time elapsed since the first batch allows."
        )
    return _Timing(arrival, min(row.offset_ms, lag), row.first_arrival_ms, row.first_newest_ts)


# --- the protocol ------------------------------------------------------------------------------


class Captures:
    """The live capture protocol of one process: ``start`` / ``add_batch`` / ``finish``.

    ``analysers`` makes and restores the analyser (:class:`LiveAnalysers` in the service, a
    fake in protocol tests); ``limits`` the protocol's numbers.
    """

    def __init__(
        self, store: Store, analysers: Analysers, limits: CaptureLimits | None = None
    ) -> None:
        self.store = store
        self.analysers = analysers
        self.limits = limits or CaptureLimits()
        self.enrollments = Enrollments(store)

    # -- start ------------------------------------------------------------------------------

    def start(
        self,
        enrollment_id: str,
        *,
        fixed_blinks: int | None,
        rng: random.Random | secrets.SystemRandom | None = None,
        now: datetime | None = None,
    ) -> CaptureStarted:
        """Start a capture (state ``consented``): one attempt is used, the enrollment becomes
        ``capturing`` and the challenge is drawn and kept secret.

        ``fixed_blinks`` None draws a live challenge (:func:`plan_live_challenge`); N asks for N
        blinks anywhere. 409 ``capture_running`` while another capture of the enrollment runs.
        """
        now = now or _utcnow()
        self.enrollments.expire_if_due(enrollment_id, now=now)
        self.enrollments.expire_due_captures(now=now, limit=20)
        plan = Plan.draw(fixed_blinks, rng or secrets.SystemRandom())
        capture_id = secrets.token_hex(12)
        expires = now + self.limits.lifetime
        try:
            with self.store.write() as s:
                row = self.enrollments.lock(s, enrollment_id, now)
                left = self.enrollments.begin_capture(s, row, capture_id, now)
                s.add(
                    CaptureRow(
                        id=capture_id,
                        enrollment_id=enrollment_id,
                        created_at=now,
                        expires_at=expires,
                        plan=plan.to_json(),
                        next_seq=0,
                        frames=0,
                        reveals="[]",
                        state=None,
                        version=0,
                        finished=False,
                    )
                )
        except IntegrityError:  # a row left over by a crashed finish: one capture at a time
            raise CaptureRunningError() from None
        return CaptureStarted(capture_id, expires, self.limits, left)

    # -- frames -----------------------------------------------------------------------------

    def add_batch(
        self,
        enrollment_id: str,
        capture_id: str,
        *,
        seq: int,
        timestamps: Sequence[float],
        frames: Sequence[bytes],
        now: datetime | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> BatchAnswer:
        """Check, analyse and store one batch; reveal a cue when it is due.

        ``now`` is the batch's arrival (default ``clock()``); ``clock`` gives the time the answer
        leaves (default the wall clock), from which the reveal time is estimated.
        """
        from ecard.liveness.media import iter_jpegs
        from ecard.liveness.policy import MediaLimits

        clock = clock or _utcnow
        now = now or clock()
        lim = self.limits
        row = self._live_row(enrollment_id, capture_id, now)
        stamps = [float(t) for t in timestamps]
        _check_batch(row, seq, stamps, frames, lim)
        timing = _judge_timing(row, stamps[-1], _ms_since(row.created_at, now), lim)
        media = MediaLimits(
            max_bytes=lim.max_batch_bytes,
            max_frames=lim.max_batch_frames,
            max_duration_ms=lim.max_ms,
            max_width=lim.max_frame_side,
            max_height=lim.max_frame_side,
            min_frames=1,
        )
        decoded = list(iter_jpegs(list(zip(frames, stamps, strict=True)), media))
        session = self.analysers.load(row.state) if row.state else self.analysers.new()
        report = session.feed(decoded)
        del decoded  # pixels live only while their batch is analysed
        plan = Plan.from_json(row.plan)
        reveals: list[int] = [int(v) for v in json.loads(row.reveals)]
        newest = stamps[-1]
        first_ts = stamps[0] if row.first_ts is None else row.first_ts
        events = session.events()
        cue, action, done = False, None, False
        if plan.live is not None:
            from ecard.liveness.challenge import cue_status

            status = cue_status(plan.live, reveals, math.floor(newest), events)
            if status.reveal_index is not None:
                sent = _ms_since(row.created_at, clock())
                reveals.append(math.ceil(sent - timing.offset_ms))
            cue, action, done = status.cue_active, status.action, status.done
        else:
            blinks = [e for e in events if e.is_blink]
            done = len(blinks) >= plan.blinks and (
                not blinks or newest >= blinks[-1].end_ms + COUNT_TAIL_MS
            )
        count = row.frames + len(frames)
        done = (
            done
            or count + lim.max_batch_frames > lim.max_frames
            or newest - first_ts + lim.batch_ms > lim.max_ms
        )
        faces = report.faces or 0
        face: FaceState = "multiple" if faces > 1 else ("ok" if report.face_found else "none")
        blob = session.to_bytes()
        with self.store.write() as s:
            res = s.execute(
                update(CaptureRow)
                .where(
                    CaptureRow.id == capture_id,
                    CaptureRow.version == row.version,
                    CaptureRow.finished.is_(False),
                )
                .values(
                    state=blob,
                    version=row.version + 1,
                    next_seq=seq + 1,
                    frames=count,
                    first_ts=first_ts,
                    newest_ts=newest,
                    offset_ms=timing.offset_ms,
                    first_arrival_ms=timing.first_arrival_ms,
                    first_newest_ts=timing.first_newest_ts,
                    reveals=json.dumps(reveals),
                )
            )
            stored = bool(res.rowcount)  # type: ignore[attr-defined]
        if not stored:
            self._lost_race(enrollment_id, capture_id, now)
        return BatchAnswer(
            seq=seq,
            cue=cue,
            action=action if cue else None,
            done=done,
            face=face,
            cues_total=plan.cues_total,
            cues_shown=len(reveals),
        )

    # -- finish -----------------------------------------------------------------------------

    def finish(
        self, enrollment_id: str, capture_id: str, *, now: datetime | None = None
    ) -> CaptureVerdict:
        """The verdict from what was analysed (no frames are decoded here), the registry match,
        and the attempt's outcome recorded; the capture's row is deleted.

        Verified only when the capture is live, every cue was answered (the live challenge)
        and the best live descriptors match the ID photo. The match is computed only for a
        live capture, so a failed one tells nothing about the face.
        """
        from ecard.liveness.challenge import Challenge, judge_live

        now = now or _utcnow()
        row = self._claim(enrollment_id, capture_id, now)
        plan = Plan.from_json(row.plan)
        reveals = [int(v) for v in json.loads(row.reveals)]
        result: LivenessResult | None = None
        refused: str | None = None
        if row.state:
            session = self.analysers.load(row.state)
            try:
                result = session.finish(None if plan.live else Challenge(blinks=plan.blinks))
            except FaceError as exc:
                refused = exc.code
        answered = 0
        if result is not None and plan.live is not None:
            first = row.first_ts or 0.0
            newest = row.newest_ts or first
            verdict = judge_live(
                plan.live, reveals, result.events, (math.floor(first), math.ceil(newest))
            )
            answered = sum(verdict.answered)
            if not verdict.met:
                refused = verdict.reason or "challenge_not_met"
        rec = decide_and_record(
            self.enrollments,
            enrollment_id,
            result,
            refused=refused,
            capture_id=capture_id,
            detail=f"cues={answered}/{plan.cues_total}" if plan.live else None,
            now=now,
        )
        return CaptureVerdict(**asdict(rec), cues_asked=plan.cues_total, cues_answered=answered)

    # -- expiry -----------------------------------------------------------------------------

    def expire(self, *, now: datetime | None = None, limit: int = 50) -> int:
        """Expire up to ``limit`` timed-out captures (their rows are deleted); returns how many."""
        return self.enrollments.expire_due_captures(now=now or _utcnow(), limit=limit)

    # -- rows -------------------------------------------------------------------------------

    def _live_row(self, enrollment_id: str, capture_id: str, now: datetime) -> CaptureRow:
        """The capture's row while it runs; 404 / 409 / 410 otherwise (expiring it if due)."""
        self.enrollments.expire_if_due(enrollment_id, now=now)
        with self.store.read() as s:
            row = s.scalar(
                select(CaptureRow).where(
                    CaptureRow.id == capture_id, CaptureRow.enrollment_id == enrollment_id
                )
            )
        if row is None:
            raise self._gone(enrollment_id, capture_id)
        if row.expires_at <= now:
            self.enrollments.expire_capture_if_due(enrollment_id, now=now)
            raise CaptureExpiredError()
        if row.finished:
            raise CaptureFinishedError()
        return row

    def _claim(self, enrollment_id: str, capture_id: str, now: datetime) -> CaptureRow:
        """Mark the capture finished (one finish wins; later batches get 409)."""
        for _ in range(_CLAIM_TRIES):
            row = self._live_row(enrollment_id, capture_id, now)
            with self.store.write() as s:
                res = s.execute(
                    update(CaptureRow)
                    .where(
                        CaptureRow.id == capture_id,
                        CaptureRow.version == row.version,
                        CaptureRow.finished.is_(False),
                    )
                    .values(finished=True, version=row.version + 1)
                )
                if res.rowcount:  # type: ignore[attr-defined]
                    return row
        raise CaptureFinishedError("The capture kept changing; finish it again.")

    def _lost_race(self, enrollment_id: str, capture_id: str, now: datetime) -> None:
        """A batch's result could not be stored: say why (always raises)."""
        with self.store.read() as s:
            row = s.get(CaptureRow, capture_id)
        if row is None:
            raise self._gone(enrollment_id, capture_id)
        if row.finished:
            raise CaptureFinishedError()
        if row.expires_at <= now:
            raise CaptureExpiredError()
        raise BatchRepeatedError("This batch was received meanwhile; send the next one.")

    def _gone(self, enrollment_id: str, capture_id: str) -> Exception:
        """Why a capture has no row: finished (409), expired (410) or never existed (404),
        from the audit log (the only trace a capture leaves)."""
        with self.store.read() as s:
            state = s.scalar(select(Enrollment.state).where(Enrollment.id == enrollment_id))
            steps = s.execute(
                select(AuditEvent.action, AuditEvent.detail).where(
                    AuditEvent.enrollment_id == enrollment_id,
                    AuditEvent.action.in_(("capture", "capture_expire", "liveness")),
                )
            ).all()
        tag = f"capture {capture_id}"
        mine = {a for a, d in steps if d is not None and (d == tag or d.startswith(tag + ","))}
        if "liveness" in mine:
            return CaptureFinishedError()
        if mine and state == EnrollmentState.EXPIRED:
            return EnrollmentExpiredError()
        if mine:
            return CaptureExpiredError()
        return NotFoundError("No such capture.")
