"""Incremental liveness: frames arrive in batches, the verdict is ready when the last one is in.

:class:`LivenessSession` is the one analyser behind every path: the CLI and the one-shot upload
feed a whole clip as one batch, the live capture protocol feeds each HTTP batch as it arrives and
keeps the state between requests with :meth:`LivenessSession.to_bytes` (no pixels: landmarks,
measurements, face descriptors), because batches of one capture may reach different workers.

Identity is bound to the liveness evidence (docs/liveness.md, "Identity binding"):

* the tracker ties consecutive frames together; a re-detection, a jump of the face box or a change
  of the picture under it starts a new *segment*;
* face descriptors (dlib ResNet, ~90 ms each) are computed for chosen open-eye frames so that every
  segment has one, every eye closure has one within ``ANCHOR_MS`` before and after it, and no
  stretch of ``SLICE_MS`` of a segment is without one;
* at the end all descriptors must be the same person (live vs live, a tight threshold), frames of
  segments without a descriptor are dropped, and a blink counts only with a descriptor of the same
  segment on both sides.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from ecard.errors import MultipleFacesError, NoFaceError, UnreadableMediaError
from ecard.faces.models import Box, FaceModels
from ecard.liveness.authenticity import BlinkEvidence, eye_features, judge_blink
from ecard.liveness.blinks import BlinkEvent, detect_blinks, eye_openness
from ecard.liveness.challenge import Challenge, challenge_met
from ecard.liveness.media import TimedFrame
from ecard.liveness.pad import PadModels, PadVerdict, frame_features, judge_medium
from ecard.liveness.policy import BlinkPolicy
from ecard.liveness.result import FaceSample, LivenessResult
from ecard.liveness.tracking import FaceTracker

Image = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float64]

#: frames wider than this are downscaled before anything else (landmarks stay precise)
WORK_WIDTH = 640
#: an eye closure needs a descriptor of open eyes within this many ms before and after it
ANCHOR_MS = 1000.0
#: every slice of this many ms of a segment needs a descriptor (a slow cross-fade cannot hide)
SLICE_MS = 2000.0
#: between batches (live capture) a descriptor older than this at a batch's end is refreshed
FRESH_MS = 600.0
#: segments shorter than this without a descriptor are dropped silently (a few frames)
MIN_SEGMENT_MS = 300.0
#: a frame may be encoded when its eye openness is at least this share of the running baseline
OPEN_RATIO = 0.65
#: a frame counts as part of a closure below this share of the running baseline
CLOSED_RATIO = 0.8
#: the running (causal) open-eye baseline: this percentile of the last BASELINE_MS of the segment
BASELINE_MS = 3000.0
BASELINE_PERCENTILE = 90.0
#: at most one encoding candidate is kept per bucket of this many ms (best quality wins)
CANDIDATE_BUCKET_MS = 200.0
#: an identity *part* ends when the eye-masked, eye-aligned face thumbnail has drifted this far
#: (mean absolute difference of the normalised 32 x 32 thumbnails) from the part's first frame;
#: every part needs its own descriptor, so a slow cross-fade or morph cannot avoid one
DRIFT_LIMIT = 0.35
#: the same for frames whose eyes are (nearly) closed: see :func:`starts_part`
CLOSED_DRIFT_LIMIT = 0.6
#: the medium cues (ecard/liveness/pad.py) are measured on a frame about this often (ms)
PAD_EVERY_MS = 300.0
#: open-eye frames closer than this (ms) to the last scored one are not scored as candidates
CANDIDATE_EVERY_MS = 95.0
#: doubtful blinks (not vouched for by authenticity) count only when at least this share of the
#: clip's identity-bound blinks are authentic (see ``_vouch``)
AUTHENTIC_SHARE = 0.5
#: how many of the best descriptors decide the registry match
MATCH_SAMPLES = 3
_STATE_VERSION = 2


@dataclass(frozen=True)
class BatchReport:
    """What one batch showed: frames, frames with a face, faces in view at the last check."""

    frames: int
    face_frames: int
    faces: int | None
    newest_ms: float | None
    face_found: bool


@dataclass
class _Candidate:
    """An open-eye frame that may be encoded: a face crop (memory only, dropped after its batch)."""

    index: int
    t_ms: float
    segment: int
    quality: float
    crop: Image = field(repr=False)
    box: Box


@dataclass(frozen=True)
class _Anchor:
    index: int
    t_ms: float
    segment: int
    quality: float
    encoding: npt.NDArray[np.float64] = field(repr=False, compare=False)


def _work_frame(bgr: Image) -> Image:
    import cv2

    h, w = bgr.shape[:2]
    if w <= WORK_WIDTH:
        return bgr
    return np.asarray(
        cv2.resize(bgr, (WORK_WIDTH, round(h * WORK_WIDTH / w)), interpolation=cv2.INTER_AREA),
        dtype=np.uint8,
    )


def frame_quality(gray: Image, points: Points, openness: float) -> float:
    """Sharp, frontal, eyes open: higher is better (relative within one clip)."""
    import cv2

    x0, y0 = np.maximum(points.min(axis=0).astype(int), 0)
    x1, y1 = points.max(axis=0).astype(int)
    crop = gray[y0 : y1 + 1, x0 : x1 + 1]
    if crop.size < 64:
        return 0.0
    sharp = float(cv2.Laplacian(crop, cv2.CV_64F).var()) ** 0.5
    inter = float(np.linalg.norm(points[45] - points[36])) or 1.0
    mid_x = (points[36, 0] + points[45, 0]) / 2
    yaw = abs(float(points[30, 0] - mid_x)) / inter
    frontal = max(0.0, 1.0 - 2.5 * yaw)
    return sharp * frontal * max(openness, 0.0)


def _face_crop(work: Image, box: Box) -> tuple[Image, Box]:
    """The face with a margin of half its size on each side, and the box inside the crop."""
    h, w = work.shape[:2]
    mx, my = box.width // 2, box.height // 2
    x0, y0 = max(0, box.left - mx), max(0, box.top - my)
    x1, y1 = min(w, box.right + mx), min(h, box.bottom + my)
    crop = np.ascontiguousarray(work[y0:y1, x0:x1])
    return crop, Box(box.left - x0, box.top - y0, box.right - x0, box.bottom - y0)


def aligned_thumbnail(gray: Image, points: Points) -> npt.NDArray[np.float32]:
    """The face aligned by its eye centres to 32 x 32, normalised, with the eye band masked.

    A similarity transform puts the eye centres at fixed places, so head motion and distance do
    not change it; blinks do not either (the eye rows are zeroed). What changes it is a different
    face, strong pose or lighting changes: each then needs its own face descriptor.
    """
    import cv2

    left = points[36:42].mean(axis=0)
    right = points[42:48].mean(axis=0)
    dx, dy = right - left
    dist = math.hypot(float(dx), float(dy)) or 1.0
    scale = 12.0 / dist  # eye centres 12 px apart in the 32 px thumbnail
    angle = math.atan2(float(dy), float(dx))
    c, s_ = scale * math.cos(angle), scale * math.sin(angle)
    centre = (left + right) / 2
    # map centre -> (16, 11); rotate by -angle and scale
    m = np.array(
        [
            [c, s_, 16 - (c * centre[0] + s_ * centre[1])],
            [-s_, c, 11 - (-s_ * centre[0] + c * centre[1])],
        ],
        dtype=np.float64,
    )
    thumb = cv2.warpAffine(gray, m, (32, 32), flags=cv2.INTER_AREA).astype(np.float32)
    thumb[7:15, :] = np.nan  # the eye band: blinks must not count as drift
    valid = thumb[~np.isnan(thumb)]
    thumb = (thumb - float(valid.mean())) / (float(valid.std()) + 1.0)
    return np.nan_to_num(thumb, nan=0.0).astype(np.float32)


def starts_part(drift: float, eyes_open: bool) -> bool:
    """Whether a frame that drifted ``drift`` from its part's first frame starts a new part.

    Open-eye frames start one above :data:`DRIFT_LIMIT`. Frames with the eyes (nearly) closed
    only above :data:`CLOSED_DRIFT_LIMIT`: a blink changes the thumbnail a little even with the
    eye band masked (at most 0.42 on the shared live clips), and a blink's frames must stay with
    the part before it; another face changes it far more (0.85), so narrowing the eyes does not
    let a different face hide in the part of the face before it.
    """
    return drift > (DRIFT_LIMIT if eyes_open else CLOSED_DRIFT_LIMIT)


def drift_score(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """Mean absolute difference of two :func:`aligned_thumbnail` values (0 = identical)."""
    return float(np.mean(np.abs(a - b)))


def _rejected(event: BlinkEvent, why: str) -> BlinkEvent:
    """A dip shaped like a blink that does not count (no identity on both sides, or not
    authentic: the face moved as a whole or the eye's look did not change)."""
    return replace(event, kind="rejected", note=why)


def _vouch(events: list[BlinkEvent], evidence: dict[int, BlinkEvidence]) -> list[BlinkEvent]:
    """Count the doubtful blinks only when most blinks of the clip are authentic.

    Authenticity (ecard/liveness/authenticity.py) vouches for 87 % of the real blinks measured
    (41 of 47) and for few of a bent sheet's dips. Rejecting each doubtful blink on its own would
    fail a real person answering 5 cues about half the time (0.87^5); instead a blink the check
    does not vouch for counts when at least ``AUTHENTIC_SHARE`` of the clip's blinks are
    authentic (and at least one), else it is rejected. A sheet whose dips are all doubtful, or
    all but one, is refused either way.
    """
    judged = [e for e in events if e.is_blink and e.start in evidence]
    authentic = sum(evidence[e.start].authentic for e in judged)
    enough = authentic >= max(1, math.ceil(AUTHENTIC_SHARE * len(judged)))
    out = []
    for e in events:
        ev = evidence.get(e.start) if e.is_blink else None
        if ev is None or ev.authentic:
            out.append(e)
        elif enough:
            out.append(replace(e, note=f"doubtful: {ev.reason or 'not_authentic'}"))
        else:
            out.append(_rejected(e, ev.reason or "not_authentic"))
    return out


def max_pair_distance(encodings: Sequence[npt.NDArray[np.float64]]) -> float | None:
    """The largest Euclidean distance between any two descriptors (None for fewer than two)."""
    if len(encodings) < 2:
        return None
    return max(float(np.linalg.norm(a - b)) for a, b in itertools.combinations(encodings, 2))


class LivenessSession:
    """Blink liveness over frames fed in one or more batches; see the module docstring.

    ``lookahead`` (default True for a whole clip fed at once) lets the encoder choose descriptors
    after seeing the whole batch; the live protocol sets it False so that every batch leaves a
    fresh descriptor behind for the next one (``FRESH_MS``).
    """

    def __init__(
        self,
        models: FaceModels,
        policy: BlinkPolicy | None = None,
        *,
        pad: PadModels | None = None,
        lookahead: bool = True,
    ) -> None:
        self.models = models
        self.policy = policy or BlinkPolicy()
        self.pad = pad
        self.lookahead = lookahead
        self._tracker = FaceTracker(
            models, second_face_min_height=self.policy.second_face_min_height
        )
        self._times: list[float] = []
        self._open: list[float] = []
        self._landmarks: list[npt.NDArray[np.float32] | None] = []
        self._segment: list[int] = []
        self._segments = 0
        self._part: list[int] = []
        self._parts = 0
        self._part_ref: npt.NDArray[np.float32] | None = None
        self._eye_feats: list[npt.NDArray[np.float32] | None] = []
        self._base: dict[int, float] = {}  # causal baseline per frame index (this process)
        self._last_scored_t = -1e18
        self._scored_part = -1
        self._pad_feats: list[tuple[int, dict[str, float]]] = []
        self._last_pad_t = -1e18
        #: set by :meth:`finish`: each counted blink's authenticity, the paper/screen verdict
        self.evidence: dict[int, BlinkEvidence] = {}
        self.medium: PadVerdict | None = None
        self._shape: tuple[int, int] | None = None
        self._anchors: list[_Anchor] = []
        self._passes = 0
        self._second = 0
        self._encodings_done = 0

    # --- feeding ------------------------------------------------------------------------------

    @property
    def frames(self) -> int:
        return len(self._times)

    @property
    def newest_ms(self) -> float | None:
        return self._times[-1] if self._times else None

    def _baseline(self, index: int) -> float:
        """The causal open-eye baseline at frame ``index`` within its segment (cached)."""
        cached = self._base.get(index)
        if cached is not None:
            return cached
        value = self._compute_baseline(index)
        self._base[index] = value
        return value

    def _compute_baseline(self, index: int) -> float:
        seg = self._segment[index]
        t = self._times[index]
        values = []
        k = index
        while k >= 0 and self._segment[k] == seg and t - self._times[k] <= BASELINE_MS:
            if not math.isnan(self._open[k]):
                values.append(self._open[k])
            k -= 1
        return float(np.percentile(values, BASELINE_PERCENTILE)) if values else math.nan

    def feed(self, frames: Iterable[TimedFrame]) -> BatchReport:
        """Analyse one batch of ``(bgr, t_ms)`` frames; times increase strictly across batches."""
        import cv2

        candidates: dict[tuple[int, int], _Candidate] = {}
        first = len(self._times)
        faces: int | None = None
        for bgr, t_ms in frames:
            if self._times and t_ms <= self._times[-1]:
                raise UnreadableMediaError("Frame times must increase strictly.")
            work = _work_frame(bgr)
            shape = (int(work.shape[0]), int(work.shape[1]))
            if self._shape is not None and shape != self._shape:
                self._tracker = FaceTracker(
                    self.models, second_face_min_height=self.policy.second_face_min_height
                )
            self._shape = shape
            gray = np.asarray(cv2.cvtColor(work, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
            obs = self._tracker.observe(gray, t_ms)
            index = len(self._times)
            self._times.append(float(t_ms))
            if obs.faces is not None and obs.faces > 0:
                self._passes += 1
                self._second += obs.faces > 1
                faces = obs.faces
            elif obs.detected and obs.faces == 0:
                faces = 0
            if obs.landmarks is None or obs.box is None:
                self._open.append(math.nan)
                self._landmarks.append(None)
                self._segment.append(-1)
                self._part.append(-1)
                self._eye_feats.append(None)
                continue
            new_segment = obs.acquired or not self._segment or self._segment[-1] < 0
            if new_segment:
                self._segments += 1
                self._part_ref = None
            self._segment.append(self._segments)
            openness = sum(eye_openness(obs.landmarks)) / 2.0
            self._open.append(openness)
            self._landmarks.append(obs.landmarks.astype(np.float32))
            self._eye_feats.append(eye_features(gray, obs.landmarks))
            if self.pad is not None and t_ms - self._last_pad_t >= PAD_EVERY_MS:
                self._last_pad_t = float(t_ms)
                feats = frame_features(work, obs.box, obs.landmarks, self.pad)
                self._pad_feats.append((index, feats))
            base = self._baseline(index)
            eyes_open = not math.isnan(base) and openness >= OPEN_RATIO * base
            thumb = aligned_thumbnail(gray, obs.landmarks)
            if self._part_ref is None or starts_part(drift_score(thumb, self._part_ref), eyes_open):
                self._parts += 1
                self._part_ref = thumb
            self._part.append(self._parts)
            if not eyes_open:
                continue
            if t_ms - self._last_scored_t < CANDIDATE_EVERY_MS and self._parts == self._scored_part:
                continue  # ~10 candidates a second are plenty to choose descriptors from
            self._last_scored_t, self._scored_part = float(t_ms), self._parts
            key = (self._segments, int(t_ms // CANDIDATE_BUCKET_MS))
            best = candidates.get(key)
            quality = frame_quality(gray, obs.landmarks, openness)
            if best is None or quality > best.quality:
                crop, box = _face_crop(work, obs.box)
                candidates[key] = _Candidate(index, float(t_ms), self._segments, quality, crop, box)
        self._encode(sorted(candidates.values(), key=lambda c: c.index), first)
        batch = self._open[first:]
        found = sum(not math.isnan(v) for v in batch)
        return BatchReport(
            frames=len(batch),
            face_frames=found,
            faces=faces,
            newest_ms=self.newest_ms,
            face_found=found > 0,
        )

    # --- choosing which frames to encode -----------------------------------------------------

    def _closures(self, start: int) -> list[tuple[int, int]]:
        """Runs of frames (from ``start``) whose openness falls under CLOSED_RATIO x baseline."""
        runs: list[tuple[int, int]] = []
        run_start: int | None = None
        for i in range(start, len(self._times)):
            v = self._open[i]
            closed = False
            if not math.isnan(v):
                base = self._baseline(i)
                closed = not math.isnan(base) and v < CLOSED_RATIO * base
            if closed and run_start is None:
                run_start = i
            elif not closed and run_start is not None:
                runs.append((run_start, i - 1))
                run_start = None
        if run_start is not None:
            runs.append((run_start, len(self._times) - 1))
        return runs

    def _windows(self, start: int) -> list[tuple[int, float, float]]:
        """(segment, from_ms, to_ms) windows that each need one descriptor, batch from ``start``.

        A segment id is negative for a *part* window (-part - 2): any frame of that part.
        """
        windows: list[tuple[int, float, float]] = []
        for part in sorted({p for p in self._part[start:] if p >= 0}):
            times = [t for t, q in zip(self._times, self._part, strict=True) if q == part]
            windows.append((-part - 2, times[0], times[-1]))
        lo = max(0, start - 1)
        closures = self._closures(lo)
        # every closure the blink detector reports on the series so far (any kind) as well
        closures += [(e.start, e.end) for e in self._raw_events() if e.end >= lo]
        for a, b in closures:
            seg_a, seg_b = self._segment[a], self._segment[b]
            if seg_a >= 0:
                windows.append((seg_a, self._times[a] - ANCHOR_MS, self._times[a] - 1e-6))
            if seg_b >= 0:
                windows.append((seg_b, self._times[b] + 1e-6, self._times[b] + ANCHOR_MS))
        in_batch = {seg for seg in self._segment[start:] if seg >= 0}
        seg_first: dict[int, float] = {}
        seg_last: dict[int, float] = {}
        for t, seg in zip(self._times, self._segment, strict=True):
            if seg in in_batch:
                seg_first.setdefault(seg, t)
                seg_last[seg] = t
        for seg, t0 in seg_first.items():
            k = 0
            while t0 + k * SLICE_MS <= seg_last[seg]:
                windows.append((seg, t0 + k * SLICE_MS, t0 + (k + 1) * SLICE_MS - 1e-6))
                k += 1
        return windows

    def _encode(self, candidates: list[_Candidate], start: int) -> None:
        """Encode the fewest good candidates that satisfy every window that this batch can."""
        if not candidates:
            return
        import cv2

        chosen: list[_Candidate] = []

        def group(seg: int, index: int) -> bool:
            """Whether frame ``index`` belongs to window group ``seg`` (segment or part)."""
            if seg <= -2:
                return self._part[index] == -seg - 2
            return self._segment[index] == seg

        def covered(seg: int, lo: float, hi: float) -> bool:
            return any(group(seg, a.index) and lo <= a.t_ms <= hi for a in self._anchors) or any(
                group(seg, c.index) and lo <= c.t_ms <= hi for c in chosen
            )

        for seg, lo, hi in sorted(self._windows(start), key=lambda w: w[2]):
            if covered(seg, lo, hi):
                continue
            inside = [c for c in candidates if group(seg, c.index) and lo <= c.t_ms <= hi]
            if inside:
                chosen.append(max(inside, key=lambda c: c.quality))
        if not self.lookahead and candidates:
            last = candidates[-1]
            newest = self._times[-1]
            mine = [a.t_ms for a in self._anchors if a.segment == last.segment] + [
                c.t_ms for c in chosen if c.segment == last.segment
            ]
            if not mine or newest - max(mine) > FRESH_MS:
                tail = [
                    c
                    for c in candidates
                    if c.segment == last.segment and c.t_ms >= newest - FRESH_MS
                ] or [c for c in candidates if c.segment == last.segment]
                chosen.append(max(tail, key=lambda c: c.quality))
        for c in sorted({id(c): c for c in chosen}.values(), key=lambda c: c.index):
            rgb = np.asarray(cv2.cvtColor(c.crop, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            encoding = self.models.encode(rgb, c.box)
            self._encodings_done += 1
            self._anchors.append(_Anchor(c.index, c.t_ms, c.segment, c.quality, encoding))

    # --- the verdict ----------------------------------------------------------------------------

    def _series(self) -> tuple[list[float | None], list[int]]:
        """Openness per frame with frames of unanchored segments dropped, and the segment ids."""
        anchored = {self._part[a.index] for a in self._anchors}
        values: list[float | None] = []
        for v, part in zip(self._open, self._part, strict=True):
            keep = part in anchored
            values.append(None if (math.isnan(v) or not keep) else v)
        return values, list(self._segment)

    def _raw_events(self) -> tuple[BlinkEvent, ...]:
        """Eye closures on every frame with a face (before identity binding)."""
        if len(self._times) < 3:
            return ()
        values = [None if math.isnan(v) else v for v in self._open]
        return detect_blinks(values, times_ms=self._times, policy=self.policy)

    def events(self) -> tuple[BlinkEvent, ...]:
        """Eye closures on the series so far (frames of unanchored segments dropped)."""
        if len(self._times) < 3:
            return ()
        values, _ = self._series()
        return detect_blinks(values, times_ms=self._times, policy=self.policy)

    def _bound(self, event: BlinkEvent) -> bool:
        """Whether a blink has a same-segment descriptor within ANCHOR_MS on both sides."""
        seg = self._segment[event.start]
        if seg < 0 or any(self._segment[i] != seg for i in range(event.start, event.end + 1)):
            return False
        before = any(
            a.segment == seg and event.start_ms - ANCHOR_MS <= a.t_ms < event.start_ms
            for a in self._anchors
        )
        after = any(
            a.segment == seg and event.end_ms < a.t_ms <= event.end_ms + ANCHOR_MS
            for a in self._anchors
        )
        return before and after

    def _arrays(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Landmarks (n, 68, 2) and eye features (n, k) with NaN rows where no face was found."""
        n = len(self._times)
        marks = np.full((n, 68, 2), np.nan)
        width = next((len(f) for f in self._eye_feats if f is not None), 1)
        feats = np.full((n, width), np.nan)
        for i, (m, f) in enumerate(zip(self._landmarks, self._eye_feats, strict=True)):
            if m is not None:
                marks[i] = m
            if f is not None:
                feats[i] = f
        return marks, feats

    def judge_medium(self) -> PadVerdict | None:
        """The paper/screen verdict over the sampled frames (None when PAD is off)."""
        if self.pad is None:
            return None
        kept = [f for i, f in self._pad_feats if self._part[i] >= 0]
        return judge_medium(kept)

    def best_samples(self, k: int = MATCH_SAMPLES) -> tuple[FaceSample, ...]:
        """The ``k`` best-quality descriptors, in time order (for the registry match)."""
        top = sorted(self._anchors, key=lambda a: a.quality, reverse=True)[:k]
        best = max((a.quality for a in self._anchors), default=0.0) or 1.0
        return tuple(
            FaceSample(round(a.t_ms), a.encoding, round(a.quality / best, 3))
            for a in sorted(top, key=lambda a: a.t_ms)
        )

    def finish(self, challenge: Challenge | None = None) -> LivenessResult:
        """The verdict on everything fed so far (cheap: the frames were analysed already).

        Raises :class:`NoFaceError` when no frame showed a face and :class:`MultipleFacesError`
        when a second face stayed in view.
        """
        policy = self.policy
        n = len(self._times)
        found = sum(not math.isnan(v) for v in self._open)
        if found == 0:
            raise NoFaceError("No face was found in the clip.")
        if self._second >= 2 and self._second >= policy.second_face_min_share * self._passes:
            raise MultipleFacesError(
                "More than one face stayed in view; the clip must show exactly one person."
            )
        events = self.events()
        counted = []
        self.evidence = {}
        marks, feats = self._arrays()
        for e in events:
            if not e.is_blink:
                counted.append(e)
            elif not self._bound(e):
                counted.append(_rejected(e, "no_identity"))
            else:
                self.evidence[e.start] = judge_blink(self._times, marks, feats, e)
                counted.append(e)
        events = tuple(_vouch(counted, self.evidence))
        blinks = sum(e.is_blink for e in events)
        distance = max_pair_distance([a.encoding for a in self._anchors])
        met = None if challenge is None else challenge_met(challenge, events)
        needed = policy.min_blinks if challenge is None else challenge.blinks
        kept = sum(v is not None for v in self._series()[0])
        self.medium = self.judge_medium()
        reason: str | None = None
        if kept < policy.min_face_share * n:
            reason = "no_face"
        elif self.medium is not None and self.medium.attack:
            reason = "presentation_attack"
        elif distance is not None and distance > policy.same_face_distance:
            reason = "face_changed"
        elif blinks == 0 and needed > 0:
            reason = "no_blink"
        elif blinks < needed or met is False:
            reason = "challenge_not_met" if challenge is not None else "no_blink"
        duration = round(self._times[-1] - self._times[0]) if n > 1 else 0
        return LivenessResult(
            live=reason is None,
            blinks=blinks,
            events=events,
            frames=n,
            faces_found=found,
            reason=reason,
            duration_ms=duration,
            challenge_met=met,
            face_distance=distance,
            samples=self.best_samples(),
            descriptors=len(self._anchors),
            identity_parts=len({self._part[a.index] for a in self._anchors}),
        )

    # --- state between HTTP batches ----------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The state without pixels (landmarks, measurements, descriptors), for the next batch."""
        n = len(self._times)
        marks = np.full((n, 68, 2), np.nan, dtype=np.float32)
        for i, m in enumerate(self._landmarks):
            if m is not None:
                marks[i] = m
        meta = {
            "version": _STATE_VERSION,
            "tracker": self._tracker.get_state(),
            "segments": self._segments,
            "parts": self._parts,
            "shape": list(self._shape) if self._shape else None,
            "passes": self._passes,
            "second": self._second,
            "encodings_done": self._encodings_done,
            "anchors": [[a.index, a.t_ms, a.segment, a.quality] for a in self._anchors],
            "pad": [[i, f] for i, f in self._pad_feats],
            "last_pad_t": self._last_pad_t,
        }
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            times=np.asarray(self._times, dtype=np.float64),
            open=np.asarray(self._open, dtype=np.float64),
            marks=marks,
            segment=np.asarray(self._segment, dtype=np.int32),
            eyefeats=self._arrays()[1].astype(np.float32),
            part=np.asarray(self._part, dtype=np.int32),
            part_ref=(
                np.zeros((0, 32), dtype=np.float32) if self._part_ref is None else self._part_ref
            ),
            anchors=np.asarray([a.encoding for a in self._anchors], dtype=np.float64).reshape(
                len(self._anchors), 128
            ),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        models: FaceModels,
        policy: BlinkPolicy | None = None,
        *,
        pad: PadModels | None = None,
        lookahead: bool = False,
    ) -> LivenessSession:
        """Continue a session saved by :meth:`to_bytes` (no pickle: plain arrays and JSON)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(bytes(arrays["meta"]).decode())
        except (ValueError, KeyError, OSError) as exc:
            raise UnreadableMediaError("The capture's analysis state is damaged.") from exc
        if meta.get("version") != _STATE_VERSION:
            raise UnreadableMediaError("The capture's analysis state is from another version.")
        s = cls(models, policy, pad=pad, lookahead=lookahead)
        s._tracker.set_state(meta["tracker"])
        s._segments = int(meta["segments"])
        s._shape = (int(meta["shape"][0]), int(meta["shape"][1])) if meta["shape"] else None
        s._passes, s._second = int(meta["passes"]), int(meta["second"])
        s._encodings_done = int(meta["encodings_done"])
        s._times = [float(v) for v in arrays["times"]]
        s._open = [float(v) for v in arrays["open"]]
        s._landmarks = [None if np.isnan(m[0, 0]) else m for m in arrays["marks"]]
        s._segment = [int(v) for v in arrays["segment"]]
        s._part = [int(v) for v in arrays["part"]]
        s._eye_feats = [
            None if np.isnan(row).all() else np.asarray(row, dtype=np.float32)
            for row in arrays["eyefeats"]
        ]
        s._pad_feats = [(int(i), {str(k): float(v) for k, v in f.items()}) for i, f in meta["pad"]]
        s._last_pad_t = float(meta["last_pad_t"])
        s._parts = int(meta["parts"])
        ref = arrays["part_ref"]
        s._part_ref = None if ref.size == 0 else np.asarray(ref, dtype=np.float32)
        s._anchors = [
            _Anchor(int(i), float(t), int(seg), float(q), np.asarray(enc, dtype=np.float64))
            for (i, t, seg, q), enc in zip(meta["anchors"], arrays["anchors"], strict=True)
        ]
        return s
