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

import io
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from svc_helpers import (
    Clients,
    app_config,
    bearer,
    insert_citizen,
    make_id_number,
    start_enrollment,
)

from ecard.capture import BatchAnswer, CaptureLimits, Captures, CaptureStarted
from ecard.enrollment import Enrollments
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
    ("25 frames in a batch", {"levels": [OPEN] * 25}, 413, "too_many_frames"),
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


def test_a_capture_ends_with_its_enrollment(store: Store, captures) -> None:
    eid = _consented(store)
    d = Driver(captures, eid)
    d.start()
    d.send([OPEN] * 5)
    later = (16 * 60 + 10) * 1000.0  # the enrollment's 15 minutes are over
    with pytest.raises(EcardError) as err:
        d.send([OPEN] * 5, arrival_ms=later)
    assert (err.value.status, err.value.code) == (410, "enrollment_expired")
    assert _rows(store) == 0 and Enrollments(store).view(eid, now=d.at(later)).state == "expired"


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


# --- over HTTP, with the real analyser on a real clip ------------------------------------------

CLIP = ("blink", "videos", "repeating-Blink-Detector__video.mp4")
CLIP_FPS = 23.86
#: every other frame of the clip: 11.93 fps, as the page records (``fps`` 12)
STEP = 2
FRAME_STEP_MS = 1000.0 * STEP / CLIP_FPS
#: the citizen's ID photo comes from this frame, which the capture never sends
ID_FRAME = 205
SIDE = 320
SEED = 7


@dataclass(frozen=True)
class Closure:
    """An eye closure of the clip, in indices of the frames sent (``STEP`` apart)."""

    start: int
    end: int
    blink: bool


@pytest.fixture(scope="module")
def clip(face_models, shared_data: Path) -> dict[str, Any]:
    """The clip at 12 fps and 320 px (as the page sends it), its closures as the analyser sees
    them when the clip is fed whole, and the ID photo."""
    import cv2
    from svc_helpers import clip_frames, id_photo

    from ecard.liveness.session import LivenessSession

    path = shared_data.joinpath(*CLIP)
    raw = clip_frames(path, set(range(0, 400)))
    jpegs, decoded = [], []
    for i in range(0, len(raw), STEP):
        h, w = raw[i].shape[:2]
        scale = SIDE / max(h, w)
        small = cv2.resize(
            raw[i], (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
        data = jpeg(small, 85)
        jpegs.append(data)
        decoded.append(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    whole = LivenessSession(face_models)
    whole.feed([(img, k * FRAME_STEP_MS) for k, img in enumerate(decoded)])
    closures = [Closure(e.start, e.end, e.is_blink) for e in whole.events()]
    assert sum(c.blink for c in closures) >= 4, closures
    return {"jpegs": jpegs, "closures": closures, "id_photo": id_photo(raw[ID_FRAME], face_models)}


def jpeg(bgr: Any, quality: int) -> bytes:
    from svc_helpers import jpeg as encode

    return encode(bgr, quality)


class TapeHead:
    """A cooperative person, played from a real clip: a tape head that moves one frame at a
    time through the recording, forwards or backwards (so every picture follows its neighbour
    and the face never jumps), at a pace the client chooses.

    While no cue is showing it sways over open-eye frames short of the next blink; when a cue
    is revealed (at client time ``shown``) it walks into that blink so that the closure starts
    ``react_ms`` later, passes through it at the clip's own pace and waits again beyond it. At
    a long closure or the clip's end it turns round (a blink played backwards is a blink too).
    """

    def __init__(self, closures: list[Closure], frames: int, start: int, react_ms: float = 650):
        self.closures, self.frames, self.react = closures, frames, react_ms
        self.pos, self.dir, self.sway = start, +1, +1
        self.t: float | None = None
        self.going: tuple[int, float, int] | None = None  # onset, ms per frame, end to pass

    def _next_blink(self, d: int) -> Closure | None:
        ahead = sorted(
            (c for c in self.closures if (c.start > self.pos if d > 0 else c.end < self.pos)),
            key=lambda c: c.start * d,
        )
        return ahead[0] if ahead and ahead[0].blink else None

    def _target(self) -> Closure:
        c = self._next_blink(self.dir)
        if c is None:
            self.dir = -self.dir
            c = self._next_blink(self.dir)
        assert c is not None
        return c

    def _zone(self) -> tuple[int, int]:
        c, d = self._target(), self.dir
        near = (c.start if d > 0 else c.end) - 6 * d
        behind = [x for x in self.closures if (x.end < self.pos if d > 0 else x.start > self.pos)]
        if d > 0:
            far = max((x.end + 2 for x in behind), default=0)
            return max(far, near - 12), near
        far = min((x.start - 2 for x in behind), default=self.frames - 1)
        return near, min(far, near + 12)

    def reveal(self, shown: float) -> None:
        c = self._target()
        onset = c.start if self.dir > 0 else c.end
        assert self.t is not None
        pace = (shown + self.react - self.t) / max(1, abs(onset - self.pos))
        beyond = c.end + 2 if self.dir > 0 else c.start - 2
        self.going = (onset, min(200.0, max(45.0, pace)), beyond)

    def step(self) -> tuple[int, float]:
        """The next frame's index and client time."""
        if self.t is None:
            self.t = 0.0
            return self.pos, self.t
        if self.going is not None:
            onset, pace, beyond = self.going
            self.pos += self.dir
            if (self.pos - onset) * self.dir >= 0:
                pace = FRAME_STEP_MS
            self.going = None if (self.pos - beyond) * self.dir >= 0 else (onset, pace, beyond)
            self.t += pace
            return self.pos, self.t
        lo, hi = self._zone()
        if not lo <= self.pos <= hi:
            self.pos += 1 if self.pos < lo else -1
        else:
            if not lo <= self.pos + self.sway <= hi:
                self.sway = -self.sway
            if lo <= self.pos + self.sway <= hi:
                self.pos += self.sway
        self.t += FRAME_STEP_MS
        return self.pos, self.t


class ServerClock:
    """The server's time for the capture steps (``app.config["CAPTURE_CLOCK"]``), starting at
    the real time (the other steps, and the enrollment view, run on the wall clock)."""

    def __init__(self, t0: datetime) -> None:
        self.t0, self.now = t0, t0

    def __call__(self) -> datetime:
        return self.now

    def at(self, ms: float) -> None:
        self.now = max(self.now, self.t0 + timedelta(milliseconds=ms))


def _multipart(fields: list[tuple[str, Any]]) -> tuple[bytes, str]:
    from werkzeug.datastructures import FileStorage, MultiDict
    from werkzeug.test import encode_multipart

    md = MultiDict()
    for i, (name, value) in enumerate(fields):
        if isinstance(value, bytes):
            value = FileStorage(io.BytesIO(value), f"f{i}.jpg", content_type="image/jpeg")
        md.add(name, value)
    boundary, body = encode_multipart(md)
    return body, f"multipart/form-data; boundary={boundary}"


class HttpCapture:
    """The page's side of the protocol, through the Flask test client."""

    def __init__(self, client: Any, enr: dict[str, str], clock: ServerClock) -> None:
        self.client, self.clock = client, clock
        self.base = f"/api/v1/enrollments/{enr['enrollment_id']}/capture"
        self.headers = bearer(enr["enrollment_token"])
        self.cid = ""
        self.seq = 0
        self.newest = -FRAME_STEP_MS
        self.sent = 0

    def start(self) -> Any:
        if not self.cid:  # the capture's server time starts now (the view reads the wall clock)
            self.clock.t0 = self.clock.now = max(self.clock.now, datetime.now(UTC))
        r = self.client.post(self.base, headers=self.headers)
        if r.status_code == 201:
            self.cid = r.json["capture_id"]
        return r

    def post(self, fields: list[tuple[str, Any]], content_type: str | None = None) -> Any:
        body, ctype = _multipart(fields)
        return self.client.post(
            f"{self.base}/{self.cid}/frames",
            data=body,
            content_type=content_type or ctype,
            headers=self.headers,
        )

    def send(
        self,
        frames: Sequence[bytes],
        stamps: Sequence[float],
        *,
        seq: int | None = None,
        raw_stamps: str | None = None,
        arrive: bool = True,
    ) -> Any:
        """One batch; the server's clock moves to ``newest + LATENCY_MS`` unless ``arrive`` is
        False (a bad batch sent at the current server time)."""
        if arrive and stamps:
            self.clock.at(stamps[-1] + LATENCY_MS)
        fields: list[tuple[str, Any]] = [
            ("seq", str(self.seq if seq is None else seq)),
            ("timestamps_ms", raw_stamps or json.dumps([round(t) for t in stamps])),
        ]
        fields += [("frames", f) for f in frames]
        r = self.post(fields)
        if r.status_code == 200:
            self.seq += 1
            self.newest = stamps[-1]
            self.sent += len(frames)
        return r

    def finish(self) -> Any:
        return self.client.post(f"{self.base}/{self.cid}/finish", headers=self.headers)


def _app(tmp_path: Path, store: Store, models: Any, clock: ServerClock, **extra: str) -> Any:
    from ecard.web import create_app

    app = create_app(
        app_config(tmp_path, store, models, ECARD_LIVENESS_CHALLENGE="random", **extra)
    )
    app.config["CAPTURE_CLOCK"] = clock
    return app


def _enroll(client: Any, store: Store, creds: Clients, models: Any, photo: bytes, seq: int) -> dict:
    from ecard.citizens import add_citizen

    number = make_id_number(seq)
    add_citizen(store, id_number=number, name="Li Lei", photo=photo, models=models)
    enr = start_enrollment(client, creds, number)
    r = client.post(
        f"/api/v1/enrollments/{enr['enrollment_id']}/consent",
        json={"agree": True},
        headers=bearer(enr["enrollment_token"]),
    )
    assert r.status_code == 200
    return enr


def _documented(client: Any, path: str, r: Any) -> None:
    """The answer is documented for this operation and matches its schema."""
    from jsonschema_rs import Draft202012Validator

    doc = client.get("/openapi.json").json
    responses = doc["paths"][path]["post"]["responses"]
    assert str(r.status_code) in responses, (path, r.status_code, r.json)
    schema = responses[str(r.status_code)]["content"]["application/json"]["schema"]
    Draft202012Validator({**schema, "components": doc["components"]}).validate(r.json)


CAPTURE = "/api/v1/enrollments/{enrollment_id}/capture"
FRAMES = CAPTURE + "/{capture_id}/frames"
FINISH = CAPTURE + "/{capture_id}/finish"


def _bad_batches(cap: HttpCapture, clip: dict[str, Any]) -> list[tuple[str, Any, int, str]]:
    """Every refusal that leaves the server's clock alone, sent in the middle of a capture."""
    good = clip["jpegs"][0]
    nxt = [cap.newest + 80.0 * (i + 1) for i in range(3)]
    big = np.zeros((SIDE * 7, 20, 3), dtype=np.uint8)
    return [
        (
            "skipped seq",
            cap.send([good], nxt[:1], seq=cap.seq + 1, arrive=False),
            409,
            "batch_out_of_order",
        ),
        (
            "repeated seq",
            cap.send([good], nxt[:1], seq=cap.seq - 1, arrive=False),
            409,
            "batch_repeated",
        ),
        (
            "25 frames",
            cap.send([good] * 25, [nxt[0] + i for i in range(25)], arrive=False),
            413,
            "too_many_frames",
        ),
        ("a huge frame", cap.send([jpeg(big, 80)], nxt[:1], arrive=False), 413, "media_too_large"),
        (
            "not a JPEG",
            cap.send([b"GIF89a" + bytes(40)], nxt[:1], arrive=False),
            422,
            "unreadable_media",
        ),
        (
            "stamps not one per frame",
            cap.send([good] * 2, nxt[:1], arrive=False),
            422,
            "bad_timestamps",
        ),
        (
            "stamps not increasing",
            cap.send([good] * 2, [nxt[1], nxt[0]], arrive=False),
            422,
            "bad_timestamps",
        ),
        (
            "stamps overlap the last batch",
            cap.send([good], [cap.newest], arrive=False),
            422,
            "bad_timestamps",
        ),
        (
            "stamps not JSON",
            cap.send([good], nxt[:1], raw_stamps="[1,", arrive=False),
            422,
            "bad_timestamps",
        ),
        (
            "from the future",
            cap.send([good], [cap.newest + 2500], arrive=False),
            422,
            "frames_from_future",
        ),
        ("no seq", cap.post([("timestamps_ms", "[1]"), ("frames", good)]), 400, "missing_field"),
        (
            "seq not a number",
            cap.post([("seq", "x"), ("timestamps_ms", "[1]")]),
            422,
            "invalid_field",
        ),
        (
            "not multipart",
            cap.client.post(f"{cap.base}/{cap.cid}/frames", json={"seq": 0}, headers=cap.headers),
            415,
            "unsupported_media_type",
        ),
        ("a second capture", cap.start(), 409, "capture_running"),
    ]


def _cooperate(cap: HttpCapture, clip: dict[str, Any], during: Callable[[], None]) -> Any:
    """Stream the tape head in 400 ms batches until the server says done."""
    head = TapeHead(clip["closures"], len(clip["jpegs"]), start=8)
    pending: tuple[int, float] | None = None
    shown = 0
    for batch in range(80):
        end = 400.0 * (batch + 1)
        frames: list[bytes] = []
        stamps: list[float] = []
        while True:
            pending = pending or head.step()
            if pending[1] > end:
                break
            frames.append(clip["jpegs"][pending[0]])
            stamps.append(pending[1])
            pending = None
        if not frames:
            continue
        r = cap.send(frames, stamps)
        assert r.status_code == 200, r.json
        if batch == 3:
            during()
        if r.json["cues_shown"] > shown:
            shown = r.json["cues_shown"]
            assert r.json["cue"] is True and r.json["action"] == "blink"
            head.reveal(round(stamps[-1]))
        if r.json["done"]:
            return r
    raise AssertionError("the server never said done")


@pytest.mark.shared_data
@pytest.mark.slow
def test_live_capture_on_a_real_clip_issues_a_card(
    tmp_path, store: Store, creds: Clients, face_models, clip
) -> None:
    clock = ServerClock(datetime.now(UTC))
    app = _app(tmp_path, store, face_models, clock, ECARD_LIVENESS_SEED=str(SEED))
    client = app.test_client()
    enr = _enroll(client, store, creds, face_models, clip["id_photo"], 1)
    eid = enr["enrollment_id"]
    cap = HttpCapture(client, enr, clock)
    r = cap.start()
    assert r.status_code == 201, r.json
    _documented(client, CAPTURE, r)
    assert r.json["attempts_left"] == 2 and r.json["batch_ms"] == 400 and r.json["fps"] == 12
    shown = client.get(f"/api/v1/enrollments/{eid}", headers=cap.headers).json
    assert shown["state"] == "capturing" and shown["capture"]["expires_at"] == r.json["expires_at"]
    assert shown["challenge"] is None and "due" not in json.dumps(shown)

    refused: list[tuple[str, Any, int, str]] = []
    last = _cooperate(cap, clip, lambda: refused.extend(_bad_batches(cap, clip)))
    for case, resp, status, code in refused:
        assert (resp.status_code, resp.json["error"]) == (status, code), (case, resp.json)
        if resp.request.path.endswith("/frames"):
            _documented(client, FRAMES, resp)
    _documented(client, FRAMES, last)
    assert last.json["cues_total"] == last.json["cues_shown"] == 5

    r = cap.finish()
    _documented(client, FINISH, r)
    assert r.json == {
        "live": True,
        "blinks": 5,
        "match": True,
        "state": "verified",
        "reason": None,
        "attempts_left": 2,
        "cues": {"asked": 5, "answered": 5},
    }, r.json
    assert _rows(store) == 0
    again = cap.finish()
    assert (again.status_code, again.json["error"]) == (409, "capture_finished")
    late = cap.send([clip["jpegs"][0]], [cap.newest + 80])
    assert (late.status_code, late.json["error"]) == (409, "capture_finished")

    r = client.post(f"/api/v1/enrollments/{eid}/pin", json={"pin": "480613"}, headers=cap.headers)
    assert r.status_code == 201, r.json
    v = client.post("/api/v1/cards/verify", json={"token": r.json["card"]}, headers=creds.channel)
    assert v.json["valid"] is True
    ended = client.get(f"/api/v1/enrollments/{eid}", headers=cap.headers)
    assert (ended.status_code, ended.json["error"]) == (410, "enrollment_ended")
    timeline = client.get(f"/api/v1/enrollments/{eid}", headers=creds.channel).json["timeline"]
    # (the capture steps ran on the test's clock, so only the set of steps is compared)
    assert sorted(t["step"] for t in timeline) == [
        "authorize",
        "capture",
        "consent",
        "issue",
        "liveness",
    ]


@pytest.mark.shared_data
@pytest.mark.slow
def test_the_clip_replayed_as_recorded_fails_the_random_challenge(
    tmp_path, store: Store, creds: Clients, face_models, clip
) -> None:
    """The same clip sent as it was recorded, against the service's own random challenge.

    It cannot pass any plan the service draws: five cues at least 1.9 s apart, each answered
    only by a blink 0.25-1.4 s after its reveal, while the clip's blinks come at 0.4, 1.7,
    3.4, 4.7, 9.3 and 10.1 s with two long closures between."""
    clock = ServerClock(datetime.now(UTC))
    app = _app(tmp_path, store, face_models, clock)
    client = app.test_client()
    enr = _enroll(client, store, creds, face_models, clip["id_photo"], 2)
    cap = HttpCapture(client, enr, clock)
    assert cap.start().status_code == 201
    jpegs = clip["jpegs"]
    for first in range(0, len(jpegs), 5):
        stamps = [i * FRAME_STEP_MS for i in range(first, min(first + 5, len(jpegs)))]
        r = cap.send(jpegs[first : first + len(stamps)], stamps)
        assert r.status_code == 200, r.json
        if r.json["done"]:
            break
    r = cap.finish()
    assert r.status_code == 200, r.json
    assert (r.json["live"], r.json["match"], r.json["state"]) == (False, False, "consented")
    assert r.json["reason"] == "challenge_not_met" and r.json["attempts_left"] == 2
    assert r.json["cues"]["answered"] < r.json["cues"]["asked"]


@pytest.mark.shared_data
def test_capture_steps_refused_over_http(
    tmp_path, store: Store, creds: Clients, face_models, clip
) -> None:
    clock = ServerClock(datetime.now(UTC))
    app = _app(tmp_path, store, face_models, clock)
    client = app.test_client()
    number = insert_citizen(store, seq=3)
    enr = start_enrollment(client, creds, number)
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]
    cap = HttpCapture(client, enr, clock)
    r = cap.start()  # before consent
    assert (r.status_code, r.json["error"]) == (409, "wrong_state")
    r = client.post(f"/api/v1/enrollments/{eid}/capture")
    assert r.status_code == 401
    client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
    # The one-shot path is refused with the random challenge, naming the capture endpoints.
    for step in ("challenge", "liveness"):
        r = client.post(f"/api/v1/enrollments/{eid}/{step}", headers=bearer(tok))
        assert (r.status_code, r.json["error"]) == (409, "live_capture_required")
        assert "/capture" in r.json["message"] and "/frames" in r.json["message"]
    r = cap.start()
    assert r.status_code == 201
    expires = datetime.fromisoformat(r.json["expires_at"].replace("Z", "+00:00"))
    assert expires == clock.t0 + timedelta(seconds=50)
    good = clip["jpegs"][10]
    assert cap.send([good] * 3, [0.0, 83.0, 166.0]).json["face"] == "ok"
    unknown = HttpCapture(client, enr, clock)
    unknown.cid = "0" * 24
    other = unknown.send([good], [250.0], arrive=False)
    assert (other.status_code, other.json["error"]) == (404, "not_found")
    other = client.post(f"{cap.base}/not-an-id/finish", headers=cap.headers)
    assert other.status_code == 404
    # Abandoned: once expired, its state is gone and the enrollment is back to consented.
    clock.at((expires - clock.t0).total_seconds() * 1000 + 1)
    r = cap.send([good], [249.0], arrive=False)
    assert (r.status_code, r.json["error"]) == (410, "capture_expired")
    _documented(client, FRAMES, r)
    assert _rows(store) == 0
    shown = client.get(f"/api/v1/enrollments/{eid}", headers=bearer(tok)).json
    assert (shown["state"], shown["attempts_left"], shown["capture"]) == ("consented", 2, None)
    r = cap.finish()
    assert (r.status_code, r.json["error"]) == (410, "capture_expired")


def test_the_seed_setting_is_for_tests_and_checked() -> None:
    from ecard.config import load_settings
    from ecard.errors import ConfigError

    assert load_settings({}).liveness_seed is None
    assert load_settings({"ECARD_LIVENESS_SEED": "7"}).liveness_seed == 7
    with pytest.raises(ConfigError):
        load_settings({"ECARD_LIVENESS_SEED": "seven"})
