"""Liveness of a clip: decode -> track landmarks -> eye openness -> blinks -> checks -> result.

The work is done by :class:`~ecard.liveness.session.LivenessSession` (the same analyser the live
capture protocol feeds batch by batch); this module decodes clips and frame lists for it.

Cost per 640 x 480 frame is decoding plus one landmark fit (~1 ms) plus a detection on a 320 px
copy about once a second; see BENCHMARKS.md. Frames are processed one at a time and dropped;
only a handful of candidate frames for the face samples are held until the end.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from ecard.faces.models import Box, FaceModels
from ecard.liveness.blinks import eye_openness, face_ear
from ecard.liveness.challenge import Challenge
from ecard.liveness.media import TimedFrame, iter_jpegs, iter_video
from ecard.liveness.pad import PadModels
from ecard.liveness.policy import BlinkPolicy, MediaLimits
from ecard.liveness.result import LivenessResult
from ecard.liveness.session import LivenessSession, _work_frame, frame_quality
from ecard.liveness.tracking import FaceTracker

Image = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float64]

#: one sample candidate is kept per bucket of this many ms
SAMPLE_BUCKET_MS = 1000.0
#: frames closer than this (ms) to the last sample candidate are not scored as candidates
CANDIDATE_EVERY_MS = 95.0
#: how many face samples are encoded (start, middle, end)
SAMPLE_COUNT = 3


@dataclass(frozen=True)
class Track:
    """Per-frame measurements of one clip (no pixels): what the blink logic and checks use."""

    times_ms: tuple[float, ...]
    ear: tuple[float | None, ...]
    openness: tuple[float | None, ...]
    eyes: tuple[tuple[float, float] | None, ...]
    detections: int
    second_face_passes: int
    detection_passes: int


@dataclass
class _Candidate:
    quality: float
    t_ms: float
    index: int
    bgr: Image
    box: Box


def track_frames(
    frames: Iterable[TimedFrame], models: FaceModels, policy: BlinkPolicy
) -> tuple[Track, list[_Candidate]]:
    """Follow the face through ``frames``; keep the best sample candidate of each second.

    The tracking-only path (no identity binding, authenticity or medium cues), kept as the
    baseline that ``bench/bench_liveness.py`` compares the session's per-frame cost with.
    """
    import cv2

    tracker = FaceTracker(models, second_face_min_height=policy.second_face_min_height)
    times: list[float] = []
    ears: list[float | None] = []
    opens: list[float | None] = []
    eyes: list[tuple[float, float] | None] = []
    passes = second = 0
    buckets: dict[int, _Candidate] = {}
    last_candidate_t = -1e18
    for index, (bgr, t_ms) in enumerate(frames):
        work = _work_frame(bgr)
        gray = np.asarray(cv2.cvtColor(work, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        obs = tracker.observe(gray, t_ms)
        times.append(t_ms)
        if obs.faces is not None and obs.faces > 0:
            passes += 1
            second += obs.faces > 1
        if obs.landmarks is None or obs.box is None:
            ears.append(None)
            opens.append(None)
            eyes.append(None)
            continue
        left, right = eye_openness(obs.landmarks)
        openness = (left + right) / 2.0
        eyes.append((left, right))
        ears.append(face_ear(obs.landmarks))
        opens.append(openness)
        if t_ms - last_candidate_t < CANDIDATE_EVERY_MS:
            continue  # ~10 candidates a second are plenty to pick 3 good frames from
        last_candidate_t = t_ms
        quality = frame_quality(gray, obs.landmarks, openness)
        key = int(t_ms // SAMPLE_BUCKET_MS)
        best = buckets.get(key)
        if best is None or quality > best.quality:
            buckets[key] = _Candidate(quality, t_ms, index, work.copy(), obs.box)
    track = Track(
        times_ms=tuple(times),
        ear=tuple(ears),
        openness=tuple(opens),
        eyes=tuple(eyes),
        detections=tracker.detections,
        second_face_passes=second,
        detection_passes=passes,
    )
    return track, [buckets[k] for k in sorted(buckets)]


_shared_pad: PadModels | None = None
_shared_lock = threading.Lock()


def shared_pad_models() -> PadModels:
    """The process-wide loaded MiniFASNet models (loaded on first call, SHA-256 checked)."""
    global _shared_pad
    with _shared_lock:
        if _shared_pad is None:
            _shared_pad = PadModels()
    return _shared_pad.load()


PadChoice = PadModels | Literal[False] | None


def _pad(choice: PadChoice) -> PadModels | None:
    """``None``: the shared PAD models; ``False``: no paper/screen check (blinks only)."""
    if choice is False:
        return None
    return shared_pad_models() if choice is None else choice


def _analyze(
    frames: Iterable[TimedFrame],
    models: FaceModels,
    challenge: Challenge | None,
    policy: BlinkPolicy,
    pad: PadChoice = None,
) -> LivenessResult:
    """A whole clip as one batch of a :class:`~ecard.liveness.session.LivenessSession`."""
    session = LivenessSession(models, policy, pad=_pad(pad), lookahead=True)
    session.feed(frames)
    return session.finish(challenge)


def analyze_video(
    path_or_bytes: str | os.PathLike[str] | bytes,
    *,
    models: FaceModels,
    challenge: Challenge | None = None,
    policy: BlinkPolicy | None = None,
    limits: MediaLimits | None = None,
    pad: PadChoice = None,
) -> LivenessResult:
    """Liveness of a clip (path, bytes, or a folder of frames in natural file-name order).

    Raises a :class:`~ecard.errors.MediaError` for an empty, unreadable, truncated or oversized
    clip, :class:`~ecard.errors.NoFaceError` when no frame shows a face and
    :class:`~ecard.errors.MultipleFacesError` when a second face stays in view. A person who did
    not blink is not an error: ``live`` is False with ``reason`` ``"no_blink"``.
    """
    frames = iter_video(path_or_bytes, limits or MediaLimits())
    return _analyze(frames, models, challenge, policy or BlinkPolicy(), pad)


def analyze_timed_frames(
    frames: Iterable[TimedFrame],
    *,
    models: FaceModels,
    challenge: Challenge | None = None,
    policy: BlinkPolicy | None = None,
    pad: PadChoice = None,
) -> LivenessResult:
    """Liveness of decoded frames in memory: ``(bgr uint8 image, t_ms)`` pairs, in order.

    For benchmarks and attack generators that build clips in memory (no file is written).
    """
    return _analyze(frames, models, challenge, policy or BlinkPolicy(), pad)


def analyze_frames(
    frames: Sequence[tuple[bytes, float]],
    *,
    models: FaceModels,
    challenge: Challenge | None = None,
    policy: BlinkPolicy | None = None,
    limits: MediaLimits | None = None,
    pad: PadChoice = None,
) -> LivenessResult:
    """Liveness of JPEG/PNG frames with capture times in ms (e.g. from a browser), in order."""
    decoded = iter_jpegs(frames, limits or MediaLimits())
    return _analyze(decoded, models, challenge, policy or BlinkPolicy(), pad)
