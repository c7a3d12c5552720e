"""Presentation-attack signals (ecard/liveness/pad.py): model loading, cues, verdicts.

Real attacks and live clips come from ../shared/data (skipped with a message where it is absent);
screen replays are generated in memory by bench/attacks/screens.py. The medium verdict is
computed the way the analyser does: the tracker on every frame, ``frame_features`` on a frame
every 300 ms, ``judge_medium`` over them (``bench.bench_pad.medium_verdict``). Clips are cut
short and analysed once per session to keep the file fast.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sharedpaths import shared_path

from ecard.errors import ModelIntegrityError, ModelMissingError
from ecard.faces.models import Box
from ecard.liveness.pad import (
    MODEL_V1SE,
    MODEL_V2,
    PAD_DIR,
    PadModels,
    PadVerdict,
    frame_features,
    judge_medium,
)


@pytest.fixture(scope="session")
def pad_models() -> PadModels:
    return PadModels().load()


# --- loading ----------------------------------------------------------------------------------


def test_models_ship_with_licence_and_notice():
    for name in (MODEL_V2, MODEL_V1SE, "LICENSE", "NOTICE"):
        assert (PAD_DIR / name).is_file(), name
    assert "Apache License" in (PAD_DIR / "LICENSE").read_text()
    notice = (PAD_DIR / "NOTICE").read_text()
    assert "Silent-Face-Anti-Spoofing" in notice and "onnx" in notice.lower()


def test_constructor_is_cheap_and_load_is_idempotent(pad_models):
    fresh = PadModels()
    assert not fresh.ready
    assert pad_models.ready and pad_models.load() is pad_models


def test_missing_model_is_a_typed_error(tmp_path: Path):
    with pytest.raises(ModelMissingError):
        PadModels(folder=tmp_path).load()


def test_altered_model_is_refused(tmp_path: Path):
    for name in (MODEL_V2, MODEL_V1SE):
        shutil.copy(PAD_DIR / name, tmp_path / name)
    target = tmp_path / MODEL_V1SE
    data = bytearray(target.read_bytes())
    data[5000] ^= 0xFF  # same size, one byte flipped
    target.write_bytes(bytes(data))
    models = PadModels(folder=tmp_path)
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        models.load()
    assert not models.ready


def test_features_are_plain_floats_and_work_without_the_cnn(pad_models):
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    box = Box(110, 60, 210, 160)
    marks = np.zeros((68, 2))
    with_cnn = frame_features(bgr, box, marks, pad_models)
    without = frame_features(bgr, box, marks, None)
    assert {"fas", "fas_fit", "bezel", "moire"} <= set(with_cnn)
    assert "fas" not in without and "bezel" in without
    assert all(isinstance(v, float) and np.isfinite(v) for v in with_cnn.values())
    # a face at the frame's edge (a crop cannot hold the 4x context) still gives features
    assert frame_features(bgr, Box(0, 0, 300, 230), marks, pad_models)["fas_fit"] < 0.3


def test_empty_clip_is_no_attack():
    verdict = judge_medium([])
    assert isinstance(verdict, PadVerdict) and not verdict.attack and verdict.species is None


def test_sustained_evidence_not_one_frame_decides():
    live = {"fas": 0.99, "fas_fit": 0.6, "bezel": 0.0, "moire": 3.0}
    spoof = {"fas": 0.0, "fas_fit": 0.6, "fas_c0": 0.0, "fas_c2": 1.0, "bezel": 0.0, "moire": 3.0}
    assert not judge_medium([live] * 9 + [spoof] + [live] * 9).attack  # one unlucky frame
    burst = judge_medium([spoof] * 3 + [live] * 16)  # e.g. a bezel seen in the first second
    assert burst.attack and burst.species == "screen"
    # MiniFASNet is not trusted when the frame cannot hold its context (a tiny face crop)
    tiny = dict(spoof, fas_fit=0.2)
    assert not judge_medium([tiny] * 10).attack


# --- real clips -------------------------------------------------------------------------------

_cache: dict[tuple[str, str], PadVerdict] = {}


def verdict_of(key: str, make, face_models, pad_models, cond: str = "640") -> PadVerdict:
    """The medium verdict of a clip under capture condition ``cond``, once per session."""
    from bench.bench_pad import condition, medium_verdict

    if (key, cond) not in _cache:
        frames = condition(make(), cond)
        verdict, _ = medium_verdict(frames, face_models, pad_models)
        assert isinstance(verdict, PadVerdict)
        _cache[(key, cond)] = verdict
    return _cache[(key, cond)]


def shared_clip(rel: str, max_ms: float = 4000.0, fps: float | None = None):
    from bench.attacks.screens import clip_frames

    path = shared_path("blink", rel)
    return lambda: clip_frames(path, max_ms=max_ms, fps=fps)


REAL_ATTACKS = [
    ("nuaa_photo_attack/printphoto_0001_00_01_02", "print"),
    ("nuaa_photo_attack/printphoto_0008_00_02_02", "print"),
    ("spoof_pairs/lestari15-CNN-face-detection__fake.mp4", "screen"),
    (
        "spoof_pairs/Trainingdata-datamarket-Anti-Spoofing-Replay__0001fffbd2"
        "--630b66fab961b45a3ceb1ca9_replay_video.mp4",
        "screen",
    ),
]


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("rel", "species"), REAL_ATTACKS, ids=[Path(r).name[-30:] for r, _ in REAL_ATTACKS]
)
def test_real_attacks_are_called_attacks(rel, species, face_models, pad_models):
    v = verdict_of(rel, shared_clip(rel, max_ms=3000), face_models, pad_models)
    assert v.attack and v.species == species, v.scores


LIVE = [
    "videos/repeating-Blink-Detector__video.mp4",
    "videos/r4onlyrishabh-blink-detector__default1.mp4",
    "videos/DinoMan-blink-detector__example.mp4",  # a 96 x 128 face crop: MiniFASNet says ~0.5
    "spoof_pairs/lestari15-CNN-face-detection__real.mp4",  # dim
    "nuaa_photo_attack/live_0008_00_00_02",
]


@pytest.mark.shared_data
@pytest.mark.parametrize("rel", LIVE, ids=[Path(r).name[:24] for r in LIVE])
@pytest.mark.parametrize("cond", ["640", "320"])
def test_live_clips_are_not_attacks(rel, cond, face_models, pad_models):
    v = verdict_of(rel, shared_clip(rel, max_ms=3000, fps=15), face_models, pad_models, cond)
    assert not v.attack, v.scores


# --- generated screen replays -----------------------------------------------------------------

REPEATING = "videos/repeating-Blink-Detector__video.mp4"
GENERATED = [
    ("phone_bezel", "320", REPEATING),
    ("phone_fill", "320", REPEATING),
    ("monitor_fill", "640", REPEATING),
    # the panel fills the frame and MiniFASNet scores the replay as real (0.9): moire only
    ("monitor_fill", "320", "videos/jakubvlk-BlinkRate__blink.mov"),
]


@pytest.mark.shared_data
@pytest.mark.parametrize(("variant", "cond", "rel"), GENERATED)
def test_generated_screen_replays_are_called_attacks(variant, cond, rel, face_models, pad_models):
    from bench.attacks import screens

    src = shared_clip(rel, max_ms=3000, fps=12)
    seed = 23 if "jakubvlk" in rel else 7

    def make():
        return screens.generate(variant, src(), seed=seed)

    v = verdict_of(f"screen:{variant}:{rel}", make, face_models, pad_models, cond)
    assert v.attack and v.species == "screen", v.scores


@pytest.mark.shared_data
def test_screen_generator_is_deterministic_and_keeps_times():
    from bench.attacks import screens

    frames = shared_clip("videos/DinoMan-blink-detector__example.mp4", max_ms=400)()
    a = screens.generate("phone_bezel", frames, seed=3)
    b = screens.generate("phone_bezel", frames, seed=3)
    c = screens.generate("phone_bezel", frames, seed=4)
    assert [t for _, t in a] == [t for _, t in frames]
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(a, b, strict=True))
    assert not np.array_equal(a[0][0], c[0][0])
    assert a[0][0].shape == (640, 480, 3) and a[0][0].dtype == np.uint8
