"""The live capture protocol (docs/liveness-protocol.md), on SQLite and PostgreSQL.

Two halves:

* **Protocol logic** over :class:`ecard.capture.Captures` with a small fake analyser (same
  methods as ``LivenessSession``; a frame's grey level says "eyes open", "eyes closed" or "no
  face"), so ordering, timing, limits, expiry and state changes are tested exactly and fast.
* **Over HTTP with the real analyser** on a real shared clip (``repeating-Blink-Detector``,
  sent at 12 fps, 320 px, in 400 ms batches, with the server's clock driven by the test through
  ``app.config["CAPTURE_CLOCK"]``): a cooperative client whose blinks follow the revealed cues
  ends verified and gets a card; the same clip replayed as recorded fails; every bad batch gets
  its typed 4xx and the capture goes on.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from svc_helpers import (
    insert_citizen,
)

from ecard.capture import BatchAnswer, CaptureLimits, Captures, CaptureStarted
from ecard.cards import Enrollments
from ecard.errors import EcardError, NoFaceError
from ecard.liveness.blinks import BlinkEvent
from ecard.liveness.challenge import Challenge, plan_live_challenge
from ecard.liveness.result import FaceSample, LivenessResult
from ecard.store import Store
from ecard.store.models import AuditEvent, CaptureRow

# --- the fake analyser -------------------------------------------------------------------------

OPEN, CLOSED, NO_FACE = 128, 24, 250
#: the fake's one face descriptor (the citizen's template is made from it: distance 0)
ENCODING = np.linspace(-0.2, 0.2, 128)


def _jpeg(level: int, size: tuple[int, int] = (16, 16)) -> bytes:
    import cv2

    img = np.full((size[1], size[0], 3), level, dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


JPEG = {level: _jpeg(level) for level in (OPEN, CLOSED, NO_FACE)}


@dataclass(frozen=True)
class FakeReport:
    faces: int | None
    face_found: bool


class FakeSession:
    """Eyes closed on dark frames, no face on white ones; blinks are runs of closed frames."""

    def __init__(self, frames: list[tuple[float, int]] | None = None) -> None:
        self.frames = frames or []
        self.on_feed: Callable[[], None] | None = None

    def feed(self, frames: Sequence[tuple[Any, float]]) -> FakeReport:
        if self.on_feed is not None:
            self.on_feed()
        found = False
        for bgr, t in frames:
            level = min((OPEN, CLOSED, NO_FACE), key=lambda v: abs(v - float(bgr.mean())))
            self.frames.append((float(t), level))
            found = found or level != NO_FACE
        return FakeReport(faces=1 if found else 0, face_found=found)

    def events(self) -> tuple[BlinkEvent, ...]:
        out: list[BlinkEvent] = []
        run: list[int] = []
        for i, (_, level) in enumerate([*self.frames, (math.inf, OPEN)]):
            if level == CLOSED:
                run.append(i)
            elif run:
                start, end = run[0], run[-1]
                t0, t1 = self.frames[start][0], self.frames[end][0]
                kind = "blink" if t1 - t0 <= 600 else "long_closure"
                out.append(BlinkEvent(start, end, round(t0), round(t1), kind, 0.5))
                run = []
        return tuple(out)

    def to_bytes(self) -> bytes:
        return json.dumps(self.frames).encode()

    def finish(self, challenge: Challenge | None = None) -> LivenessResult:
        faces = sum(level != NO_FACE for _, level in self.frames)
        if faces == 0:
            raise NoFaceError("No face was found in the clip.")
        events = self.events()
        blinks = sum(e.is_blink for e in events)
        needed = 1 if challenge is None else challenge.blinks
        live = blinks >= needed
        return LivenessResult(
            live=live,
            blinks=blinks,
            events=events,
            frames=len(self.frames),
            faces_found=faces,
            reason=None if live else "no_blink",
            duration_ms=round(self.frames[-1][0] - self.frames[0][0]),
            samples=(FaceSample(0, ENCODING, 1.0),),
        )


class FakeAnalysers:
    def __init__(self) -> None:
        self.on_feed: Callable[[], None] | None = None

    def new(self) -> FakeSession:
        s = FakeSession()
        s.on_feed = self._once()
        return s

    def load(self, data: bytes) -> FakeSession:
        s = FakeSession([(float(t), int(v)) for t, v in json.loads(data)])
        s.on_feed = self._once()
        return s

    def _once(self) -> Callable[[], None] | None:
        hook, self.on_feed = self.on_feed, None
        return hook


# --- driving the protocol with a controlled clock ----------------------------------------------

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
FRAME_MS = 83.0
LATENCY_MS = 150.0


def _template() -> bytes:
    from ecard.faces.match import FaceTemplate

    return FaceTemplate(ENCODING).to_bytes()


def _consented(store: Store, seq: int = 1, *, now: datetime = T0) -> str:
    from ecard.channels import add_channel, authenticate

    number = insert_citizen(store, seq=seq, template=_template())
    cred = add_channel(store, f"App {seq}", "enroll")
    ident = authenticate(store, cred.client_id, cred.client_secret)
    enr = Enrollments(store)
    eid = enr.authorize(ident, number, "Li Lei", now=now).enrollment_id
    enr.consent(eid, True, now=now)
    return eid


class Driver:
    """One capture of one enrollment: batches at ``t0 + newest + latency`` server time."""

    def __init__(self, captures: Captures, eid: str, t0: datetime = T0) -> None:
        self.captures, self.eid, self.t0 = captures, eid, t0
        self.cid = ""
        self.seq = 0
        self.newest = -FRAME_MS
        self.reveals: list[float] = []

    def start(self, fixed: int | None = None, seed: int | None = 7) -> CaptureStarted:
        rng = random.Random(seed) if seed is not None else None
        started = self.captures.start(self.eid, fixed_blinks=fixed, rng=rng, now=self.t0)
        self.cid = started.capture_id
        return started

    def at(self, ms: float) -> datetime:
        return self.t0 + timedelta(milliseconds=ms)

    def next_stamps(self, n: int = 5) -> list[float]:
        return [self.newest + FRAME_MS * (i + 1) for i in range(n)]

    def send(
        self,
        levels: Sequence[int],
        stamps: Sequence[float] | None = None,
        *,
        seq: int | None = None,
        arrival_ms: float | None = None,
        frames: Sequence[bytes] | None = None,
    ) -> BatchAnswer:
        stamps = list(stamps) if stamps is not None else self.next_stamps(len(levels))
        arrival = self.at(arrival_ms if arrival_ms is not None else stamps[-1] + LATENCY_MS)
        answer = self.captures.add_batch(
            self.eid,
            self.cid,
            seq=self.seq if seq is None else seq,
            timestamps=stamps,
            frames=list(frames) if frames is not None else [JPEG[v] for v in levels],
            now=arrival,
            clock=lambda: arrival,
        )
        self.seq += 1
        self.newest = stamps[-1]
        if answer.cues_shown > len(self.reveals):
            self.reveals.append(stamps[-1])  # shown = send - offset = this batch's newest
        return answer

    def finish(self, at_ms: float | None = None) -> Any:
        at = self.at(at_ms if at_ms is not None else self.newest + LATENCY_MS)
        return self.captures.finish(self.eid, self.cid, now=at)

    def cooperate(self, react_ms: float = 600.0, limit: int = 60) -> BatchAnswer:
        """Stream open eyes; blink (two closed frames) ``react_ms`` after each revealed cue."""
        blink_at: list[float] = []
        answer = None
        for _ in range(limit):
            stamps = self.next_stamps()
            levels = [
                CLOSED if any(b <= t < b + 2 * FRAME_MS for b in blink_at) else OPEN for t in stamps
            ]
            answer = self.send(levels, stamps)
            if len(self.reveals) > len(blink_at):
                blink_at.append(self.reveals[-1] + react_ms)
            if answer.done:
                return answer
        raise AssertionError("the capture never said done")


def _rows(store: Store) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(CaptureRow)) or 0)


def _steps(store: Store, eid: str) -> list[tuple[str, str]]:
    with store.read() as s:
        rows = s.execute(
            select(AuditEvent.action, AuditEvent.outcome)
            .where(AuditEvent.enrollment_id == eid)
            .order_by(AuditEvent.id)
        ).all()
    return [(a, o) for a, o in rows]


@pytest.fixture
def fake() -> FakeAnalysers:
    return FakeAnalysers()


@pytest.fixture
def captures(store: Store, fake: FakeAnalysers) -> Captures:
    return Captures(store, fake)


# --- protocol logic ----------------------------------------------------------------------------


def test_cooperative_capture_is_verified_and_its_row_deleted(store: Store, captures) -> None:
    eid = _consented(store)
    d = Driver(captures, eid)
    started = d.start(seed=7)
    assert started.attempts_left == 2 and started.expires_at == T0 + timedelta(seconds=50)
    assert Enrollments(store).view(eid, now=T0).state == "capturing"
    plan = plan_live_challenge(random.Random(7))  # the seeded plan is reproducible
    last = d.cooperate()
    assert last.done and last.cues_total == last.cues_shown == len(plan.cues)
    # each cue was revealed by the first batch whose newest frame reached its due time
    for cue, shown in zip(plan.cues, d.reveals, strict=True):
        assert cue.due_ms <= shown < cue.due_ms + 2000
    v = d.finish()
    assert (v.live, v.match, v.state, v.reason) == (True, True, "verified", None)
    assert (v.cues_asked, v.cues_answered, v.attempts_left) == (len(plan.cues),) * 2 + (2,)
    assert _rows(store) == 0
    assert [a for a, _ in _steps(store, eid)] == ["authorize", "consent", "capture", "liveness"]


def test_blinks_that_do_not_follow_the_cues_fail(store: Store, captures) -> None:
    """A recording: a blink every second whatever the cues say (the worst natural case)."""
    eid = _consented(store)
    d = Driver(captures, eid)
    d.start(seed=7)
    for _ in range(40):
        stamps = d.next_stamps()
        levels = [CLOSED if (t % 1000) < 2 * FRAME_MS else OPEN for t in stamps]
        if d.send(levels, stamps).done:
            break
    v = d.finish()
    assert (v.live, v.match, v.state, v.reason) == (False, False, "consented", "challenge_not_met")
    assert v.attempts_left == 2 and _rows(store) == 0


def test_a_blink_in_frames_sent_before_the_reveal_does_not_answer_it(store: Store, captures):
    eid = _consented(store)
    d = Driver(captures, eid)
    d.start(seed=7)
    # React 100 ms after each reveal: faster than anyone (min reaction 250 ms), so no cue counts.
    d.cooperate(react_ms=100.0)
    v = d.finish()
    assert v.state == "consented" and v.reason == "challenge_not_met" and v.cues_answered == 0


def test_count_mode_capture_needs_n_blinks(store: Store, captures) -> None:
    eid = _consented(store)
    d = Driver(captures, eid)
    d.start(fixed=2)
    answers = [d.send([OPEN] * 4 + [CLOSED]) for _ in range(2)]
    assert not any(a.done for a in answers) and answers[0].cues_total == 0
    answers = [d.send([OPEN] * 5) for _ in range(3)]
    assert answers[-1].done and not any(a.cue for a in answers)
    assert d.finish().state == "verified"


# The bad batch, sent after a good batch 0 (frames 0-332 ms), then the good batch 1 is sent.
BAD_BATCHES: list[tuple[str, dict[str, Any], int, str]] = [
    ("skipped seq", {"seq": 2}, 409, "batch_out_of_order"),
    ("repeated seq", {"seq": 0}, 409, "batch_repeated"),
    ("no frames", {"levels": [], "stamps": [420.0]}, 422, "too_few_frames"),
    ("11 frames in a batch", {"levels": [OPEN] * 11}, 413, "too_many_frames"),
    ("frame too large", {"frames": [_jpeg(OPEN, (2000, 16))]}, 413, "media_too_large"),
    ("a PNG frame", {"frames": [b"\x89PNG\r\n\x1a\n" + b"\0" * 64]}, 422, "unreadable_media"),
    ("a broken JPEG", {"frames": [b"\xff\xd8\xff\xe0" + b"\0" * 64]}, 422, "unreadable_media"),
    (
        "stamps not one per frame",
        {"stamps": [420.0, 500.0], "levels": [OPEN] * 3},
        422,
        "bad_timestamps",
    ),
    ("stamps not increasing", {"stamps": [500.0, 500.0, 600.0]}, 422, "bad_timestamps"),
    ("stamps overlap batch 0", {"stamps": [300.0, 400.0, 500.0]}, 422, "bad_timestamps"),
    ("beyond max_ms", {"stamps": [20_500.0]}, 413, "capture_too_long"),
    (
        "from the future",
        {"stamps": [1500.0, 1600.0], "arrival_ms": 800.0},
        422,
        "frames_from_future",
    ),
    (
        "too late",
        {"stamps": [420.0], "arrival_ms": 420.0 + LATENCY_MS + 3001},
        422,
        "frames_too_late",
    ),
]


@pytest.mark.parametrize(
    ("case", "bad", "status", "code"), BAD_BATCHES, ids=[b[0] for b in BAD_BATCHES]
)
def test_a_bad_batch_is_refused_and_loses_nothing(
    store: Store, captures, case: str, bad: dict[str, Any], status: int, code: str
) -> None:
    eid = _consented(store)
    d = Driver(captures, eid)
    d.start(fixed=1)
    d.send([OPEN] * 5)  # batch 0
    with store.read() as s:
        before = s.get_one(CaptureRow, d.cid)
    levels = bad.get("levels", [OPEN] * max(1, len(bad.get("stamps", [0]))))
    if "frames" in bad:
        levels = [OPEN] * len(bad["frames"])
    seq = d.seq
    with pytest.raises(EcardError) as err:
        d.send(
            levels,
            bad.get("stamps"),
            seq=bad.get("seq"),
            arrival_ms=bad.get("arrival_ms"),
            frames=bad.get("frames"),
        )
    assert (err.value.status, err.value.code) == (status, code), err.value.message
    with store.read() as s:
        after = s.get_one(CaptureRow, d.cid)
    assert (after.version, after.next_seq, after.state) == (before.version, 1, before.state)
    # Nothing lost: the next correct batch is taken as batch 1. After a late batch the client
    # sends newer frames (the server's clock has moved on).
    d.seq, d.newest = seq, 332.0
    if code == "frames_too_late":
        d.newest = 420.0 + 3001
    answer = d.send([OPEN, CLOSED, OPEN, OPEN, OPEN])
    assert answer.seq == 1 and not answer.cue
    d.send([OPEN] * 5)
    assert d.finish().state == "verified"


def test_too_many_frames_in_one_capture(store: Store, fake) -> None:
    captures = Captures(store, fake, CaptureLimits(max_frames=8))
    d = Driver(captures, _consented(store))
    d.start(fixed=1)
    d.send([OPEN] * 4)
    with pytest.raises(EcardError) as err:
        d.send([OPEN] * 5)
    assert err.value.code == "too_many_frames"
    assert d.send([OPEN, CLOSED, OPEN, OPEN]).done  # the last batch that fits


def test_a_second_capture_while_one_runs_is_refused(store: Store, captures) -> None:
    eid = _consented(store)
    d = Driver(captures, eid)
    d.start()
    with pytest.raises(EcardError) as err:
        Driver(captures, eid).start()
    assert (err.value.status, err.value.code) == (409, "capture_running")
    with pytest.raises(EcardError) as err:  # nor a one-shot challenge meanwhile
        Enrollments(store).challenge(eid, 2, now=T0)
    assert err.value.code == "capture_running"
    # Once it has expired, a new capture starts (and the old row is gone).
    later = Driver(captures, eid, T0 + timedelta(seconds=51))
    assert later.start().attempts_left == 1
    with store.read() as s:
        assert s.scalars(select(CaptureRow.id)).all() == [later.cid]


def test_finish_twice_and_frames_after_finish(store: Store, captures) -> None:
    eid = _consented(store)
    d = Driver(captures, eid)
    d.start(fixed=1)
    d.send([OPEN, CLOSED, OPEN, OPEN, OPEN])
    d.send([OPEN] * 5)
    assert d.finish().state == "verified"
    for step in (d.finish, lambda: d.send([OPEN])):
        with pytest.raises(EcardError) as err:
            step()
        assert (err.value.status, err.value.code) == (409, "capture_finished")
    with pytest.raises(EcardError) as err:  # another id is simply unknown
        captures.finish(eid, "0" * 24, now=T0)
    assert err.value.status == 404


def test_an_abandoned_capture_expires_and_its_row_is_gone(store: Store, captures) -> None:
    eid = _consented(store)
    d = Driver(captures, eid)
    started = d.start()
    d.send([OPEN] * 5)
    assert _rows(store) == 1
    late = (started.expires_at - T0).total_seconds() * 1000 + 1
    with pytest.raises(EcardError) as err:
        d.send([OPEN] * 5, arrival_ms=late)
    assert (err.value.status, err.value.code) == (410, "capture_expired")
    assert _rows(store) == 0
    view = Enrollments(store).view(eid, now=d.at(late))
    assert (view.state, view.attempts_left, view.reason) == ("consented", 2, "capture_expired")
    assert _steps(store, eid)[-1] == ("capture_expire", "expired")
    with pytest.raises(EcardError) as err:  # later calls keep saying so
        d.finish(at_ms=late + 10)
    assert err.value.code == "capture_expired"


def test_expired_captures_are_cleaned_when_the_enrollment_is_read(store: Store, captures):
    eid = _consented(store)
    Driver(captures, eid).start()
    assert Enrollments(store).view(eid, now=T0 + timedelta(seconds=49)).state == "capturing"
    assert _rows(store) == 1
    assert Enrollments(store).view(eid, now=T0 + timedelta(seconds=50)).state == "consented"
    assert _rows(store) == 0


def test_a_new_capture_sweeps_expired_ones_of_other_enrollments(store: Store, captures) -> None:
    first, second = _consented(store, 1), _consented(store, 2)
    Driver(captures, first).start()
    Driver(captures, second, T0 + timedelta(minutes=2)).start()
    with store.read() as s:
        assert s.scalars(select(CaptureRow.enrollment_id)).all() == [second]
    assert Enrollments(store).view(first, now=T0 + timedelta(minutes=2)).state == "consented"


def test_every_capture_uses_an_attempt_and_the_third_failure_locks(store: Store, captures):
    eid = _consented(store)
    t = T0
    for left in (2, 1):
        d = Driver(captures, eid, t)
        assert d.start(fixed=1).attempts_left == left
        d.send([OPEN] * 5)  # no blink
        v = d.finish()
        assert (v.state, v.reason, v.attempts_left) == ("consented", "no_blink", left)
        t += timedelta(seconds=5)
    d = Driver(captures, eid, t)
    d.start(fixed=1)  # the third attempt, abandoned: it expires and locks the enrollment
    view = Enrollments(store).view(eid, now=t + timedelta(minutes=1))
    assert (view.state, view.attempts_left) == ("locked", 0)
    with pytest.raises(EcardError) as err:
        Driver(captures, eid, t + timedelta(minutes=1)).start()
    assert (err.value.status, err.value.code) == (423, "enrollment_locked")


def test_a_capture_without_a_face_is_a_failed_attempt(store: Store, captures) -> None:
    eid = _consented(store)
    d = Driver(captures, eid)
    d.start(fixed=1)
    assert d.send([NO_FACE] * 5).face == "none"
    v = d.finish()
    assert (v.live, v.state, v.reason, v.attempts_left) == (False, "consented", "no_face", 2)
    d = Driver(captures, eid, T0 + timedelta(seconds=5))
    d.start(fixed=1)
    assert d.finish().reason == "no_face"  # finished before any batch


def test_another_persons_face_does_not_match(store: Store, captures) -> None:
    from ecard.faces.match import FaceTemplate
    from ecard.store.models import Citizen, Enrollment

    eid = _consented(store)
    with store.write() as s:
        cid = s.get_one(Enrollment, eid).citizen_id
        s.get_one(Citizen, cid).template = FaceTemplate(-ENCODING).to_bytes()
    d = Driver(captures, eid)
    d.start(fixed=1)
    d.send([OPEN, CLOSED, OPEN, OPEN, OPEN])
    d.send([OPEN] * 5)
    v = d.finish()
    assert (v.live, v.match, v.state, v.reason) == (True, False, "consented", "no_match")


def test_a_batch_that_loses_the_race_is_refused(store: Store, fake) -> None:
    """Two workers analyse the same seq at once: the one that stores second gets 409, and a
    finish that lands while a batch is analysed makes that batch 409 capture_finished."""
    captures = Captures(store, fake)
    eid = _consented(store)
    d = Driver(captures, eid)
    d.start(fixed=1)
    d.send([OPEN] * 5)
    twin = Driver(Captures(store, FakeAnalysers()), eid)
    twin.cid, twin.seq, twin.newest = d.cid, d.seq, d.newest
    fake.on_feed = lambda: twin.send([OPEN] * 5)
    with pytest.raises(EcardError) as err:
        d.send([OPEN] * 5)
    assert err.value.code == "batch_repeated"
    fake.on_feed = lambda: twin.finish()
    d.seq, d.newest = twin.seq, twin.newest
    with pytest.raises(EcardError) as err:
        d.send([OPEN] * 5)
    assert err.value.code == "capture_finished"
