"""Blink authenticity: real blinks stay authentic, dips of printed photos do not.

Real material from ../shared/data (skips with a message where it is absent): the tiny-face
(DinoMan, glasses) and 12 fps (jakubvlk) clips and the NUAA live subject 0001 as real blinks; the
NUAA printed photos that dip today, and seeded generated prints (bench/attacks/prints.py) whose
sheet is snapped like a blink, as attacks. Landmarks are computed once per clip per session.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sharedpaths import SHARED_DATA, shared_path

from bench.attacks.prints import SPECIES, print_attack, sources
from bench.bench_authenticity import (
    Series,
    is_true_blink,
    judged,
    load_clip,
    page_frames,
    track,
    truth_spans_ms,
)
from ecard.liveness.authenticity import FEATURES, BlinkEvidence, eye_features, judge_blink
from ecard.liveness.blinks import BlinkEvent

_series: dict[tuple[str, str], Series] = {}
_frames: dict[str, list[tuple[np.ndarray, float]]] = {}


def series(models, name: str, cond: str = "service") -> Series:
    key = (name, cond)
    if key not in _series:
        if name not in _frames:
            _frames[name] = load_clip(shared_path("blink", *name.split("/")))
        frames = _frames[name]
        _series[key] = track(frames if cond == "service" else page_frames(frames), models)
    return _series[key]


# --- the per-frame features ----------------------------------------------------------------


def _face(width: float = 40.0) -> np.ndarray:
    p = np.zeros((68, 2))
    p[36:42] = [[200, 200], [210, 195], [225, 195], [200 + width, 200], [225, 205], [210, 205]]
    p[42:48] = p[36:42] + np.array([100.0, 0.0])
    return p


def test_eye_features_small_fixed_float32_and_fast():
    import time

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, size=(480, 640), dtype=np.uint8)
    f = eye_features(gray, _face())
    assert f.dtype == np.float32 and f.shape == (FEATURES,) and FEATURES <= 64
    assert np.isfinite(f).all()
    start = time.perf_counter()
    for _ in range(200):
        eye_features(gray, _face())
    assert (time.perf_counter() - start) / 200 < 0.003  # 0.2 ms measured; generous on a busy host


def test_eye_features_follow_the_eye_corners_not_the_image_frame():
    # the same eye, moved and scaled, gives the same grid: features are aligned by the corners
    gray = np.full((480, 640), 200, np.uint8)
    gray[190:206, 215:226] = 20  # an "iris" between the corners of the first eye
    big = np.full((960, 1280), 200, np.uint8)
    big[380:412, 430:452] = 20
    a = eye_features(gray, _face())[:32]
    b = eye_features(big, _face() * 2)[:32]
    assert np.abs(a - b).max() < 25


def test_degenerate_eye_gives_nan_not_an_error():
    p = _face()
    p[39] = p[36]
    f = eye_features(np.zeros((100, 100), np.uint8), p)
    assert np.isnan(f[:32]).all() and f.shape == (FEATURES,)


def test_judge_without_open_frames_is_not_authentic():
    n = 5
    t = np.arange(n) * 33.0
    marks = np.full((n, 68, 2), np.nan)
    feats = np.full((n, FEATURES), np.nan, np.float32)
    ev = judge_blink(t, marks, feats, BlinkEvent(1, 2, 33, 66, "blink", 0.4))
    assert isinstance(ev, BlinkEvidence) and not ev.authentic and ev.reason


# --- real blinks ------------------------------------------------------------------------------

REAL = (
    ("videos/DinoMan-blink-detector__example.mp4", "service"),
    ("videos/jakubvlk-BlinkRate__blink.mov", "service"),
    ("videos/jakubvlk-BlinkRate__blink.mov", "page"),
    ("nuaa_photo_attack/live_0001_00_00_01", "service"),
)


@pytest.mark.parametrize(("name", "cond"), REAL)
def test_real_blinks_stay_authentic(face_models, name, cond):
    s = series(face_models, name, cond)
    frames = _frames[name]
    spans = truth_spans_ms(name, [t for _, t in frames])
    assert spans is not None
    true = [(e, ev) for e, ev in judged(s) if is_true_blink(e, spans)]
    assert true, "the blink detector found none of the annotated blinks"
    authentic = [ev for _, ev in true if ev.authentic]
    assert authentic, [(e.start, ev) for e, ev in true]
    # at least half: DinoMan's second blink (one closed frame of a 10 px eye behind glasses) is
    # lost (appearance 1.37 < 1.5, docs/authenticity.md); the clip is not
    assert len(authentic) >= math.ceil(0.5 * len(true)), [(e.start, ev) for e, ev in true]


# --- printed photos ---------------------------------------------------------------------------

NUAA_PRINTS = (
    "nuaa_photo_attack/printphoto_0007_01_02_02",
    "nuaa_photo_attack/printphoto_0008_00_02_02",
    "nuaa_photo_attack/printphoto_0008_00_01_02",
    "nuaa_photo_attack/printphoto_0003_01_02_02",
)


@pytest.mark.parametrize("cond", ["service", "page"])
@pytest.mark.parametrize("name", NUAA_PRINTS)
def test_nuaa_print_dips_are_not_authentic(face_models, name, cond):
    pairs = judged(series(face_models, name, cond))
    assert not [ev for _, ev in pairs if ev.authentic], [(e.start, ev) for e, ev in pairs]


@pytest.fixture(scope="module")
def print_sources(face_models):
    shared_path("faces")
    found = sources(SHARED_DATA, face_models, limit=6)
    if not found:
        pytest.skip("no usable face photo in ../shared/data/faces")
    return found


def test_generator_is_seeded_in_memory_and_refuses_unknown_species(print_sources):
    src = print_sources[0]
    a = print_attack(src.bgr, src.box, "print_blink+bent", 7, fps=10, duration_ms=600)
    b = print_attack(src.bgr, src.box, "print_blink+bent", 7, fps=10, duration_ms=600)
    assert len(a) == 6 and all(x.shape == (480, 640, 3) and x.dtype == np.uint8 for x, _ in a)
    assert all(np.array_equal(x, y) and s == t for (x, s), (y, t) in zip(a, b, strict=True))
    with pytest.raises(ValueError):
        print_attack(src.bgr, src.box, "print_origami", 1)
    assert set(SPECIES) >= {"print_flat", "print_bent", "print_rotated", "print_moved"}


def test_generated_print_dips_are_not_authentic(face_models, print_sources):
    dips = authentic = 0
    for k, src in enumerate(print_sources):
        for species in ("print_blink", "print_blink+bent", "print_bent+rotated"):
            frames = print_attack(
                src.bgr, src.box, species, seed=k, fps=15, duration_ms=3000, eye_y=src.eye_y
            )
            for cond in ("service", "page"):
                pairs = judged(track(frames if cond == "service" else page_frames(frames),
                                     face_models))  # fmt: skip
                dips += len(pairs)
                authentic += sum(ev.authentic for _, ev in pairs)
    assert authentic == 0
    assert dips >= 1, "the generated prints made no blink-like dip: the test would prove nothing"
