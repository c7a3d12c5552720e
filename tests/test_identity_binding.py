"""The face that blinks is the face that matches: splice, cross-fade and morph attacks refused.

Each attack puts the victim (their registry photo on a grey card, or their own live frames) in
some seconds of the clip and a stranger who really blinks in the others (bench/attacks/splices.py).
Before identity binding, the registry photo plus any live person gave ``live: true, match: true``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from sharedpaths import shared_path

from bench.attacks import splices
from ecard.faces.images import load_photo
from ecard.faces.match import match_template, template_from_photo
from ecard.liveness.analyze import analyze_timed_frames
from ecard.liveness.session import LivenessSession

STRANGER = ("blink", "videos", "repeating-Blink-Detector__video.mp4")
VICTIM_PHOTO = ("faces", "george_w_bush", "lfw__George_W_Bush_0001.jpg")
VICTIM_LIVE = ("blink", "nuaa_photo_attack", "live_0001_00_00_01")


@pytest.fixture(scope="module")
def stranger() -> splices.Timed:
    return splices.clip_frames(shared_path(*STRANGER), max_ms=6000)


@pytest.fixture(scope="module")
def victim_card() -> np.ndarray:
    import cv2

    rgb = load_photo(shared_path(*VICTIM_PHOTO))
    small = cv2.resize(rgb, (102, 126), interpolation=cv2.INTER_AREA)  # the ID card chip size
    return np.asarray(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), dtype=np.uint8)


@pytest.fixture(scope="module")
def victim_frames() -> splices.Timed:
    import cv2

    folder = shared_path(*VICTIM_LIVE)
    from ecard.liveness.media import folder_frames

    frames = []
    for k, path in enumerate(folder_frames(folder)[:40]):
        frames.append((splices.fit(cv2.imread(str(path))), k * 1000 / 15))
    return frames


def test_stranger_alone_is_live(face_models, stranger):
    """The stranger's own clip passes: the attacks below fail because of the victim's frames."""
    r = analyze_timed_frames(stranger, models=face_models)
    assert r.live and r.blinks >= 2


@pytest.mark.parametrize("species", ["swap_photo", "crossfade", "morph"])
def test_registry_photo_with_a_blinking_stranger_is_refused(
    face_models, stranger, victim_card, species
):
    frames = splices.generate(species, splices.photo_card(victim_card), stranger)
    # identity binding on its own (the paper/screen check, on by default, is turned off here)
    r = analyze_timed_frames(frames, models=face_models, pad=False)
    assert not r.live and r.reason == "face_changed"
    assert not analyze_timed_frames(frames, models=face_models).live  # and with everything on


@pytest.mark.parametrize("species", ["swap_frames", "crossfade", "morph"])
def test_victim_frames_with_a_blinking_stranger_are_refused(
    face_models, stranger, victim_frames, species
):
    frames = splices.generate(species, victim_frames, stranger)
    r = analyze_timed_frames(frames, models=face_models, pad=False)
    assert not r.live and r.reason == "face_changed"


def test_photo_swap_would_have_matched_the_victim(face_models, stranger, victim_card):
    """The attack is real: the victim's frames do match the victim's registry template."""
    frames = splices.swap(splices.photo_card(victim_card), stranger)
    template = template_from_photo(shared_path(*VICTIM_PHOTO), models=face_models)
    session = LivenessSession(face_models)
    session.feed(frames[:25])  # the victim's first second only
    result = session.finish()
    assert match_template(template, [s.encoding for s in result.best_samples(3)]).match


def test_live_protocol_batches_bind_identity_too(face_models, stranger, victim_card):
    """Fed as 400 ms HTTP batches with the state saved in between, the swap is still refused."""
    frames = splices.swap(splices.photo_card(victim_card), stranger)
    data = LivenessSession(face_models, lookahead=False).to_bytes()
    batch: list[tuple[np.ndarray, float]] = []
    for frame in frames:
        batch.append(frame)
        if frame[1] - batch[0][1] >= 400:
            s = LivenessSession.from_bytes(data, face_models)
            s.feed(batch)
            data, batch = s.to_bytes(), []
    s = LivenessSession.from_bytes(data, face_models)
    if batch:
        s.feed(batch)
    r = s.finish()
    assert not r.live and r.reason == "face_changed"


def test_state_has_no_pixels(face_models, stranger):
    """What is stored between batches holds landmarks and descriptors, never a frame: each
    per-frame row is at most 136 values (68 landmarks); the only picture-like arrays are the
    32 x 32 eye-masked identity thumbnail and the 24 x 24 tracker thumbnail (in the JSON)."""
    s = LivenessSession(face_models, lookahead=False)
    s.feed(stranger[:12])
    data = s.to_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        shapes = {k: z[k].shape for k in z.files}
    frame_h, frame_w = stranger[0][0].shape[:2]
    assert shapes["marks"] == (12, 68, 2)
    for key, shape in shapes.items():
        if key in ("meta", "part_ref"):
            continue
        assert int(np.prod(shape[1:])) <= 136, key  # nothing frame-sized per frame
    assert shapes["part_ref"] in ((32, 32), (0, 32))
    assert frame_h * frame_w > 100 * 32 * 32 and len(data) < 60_000


@pytest.mark.parametrize(
    ("drift", "eyes_open", "new_part"),
    [
        (0.30, True, False),  # the same face, a little motion
        (0.40, True, True),  # open eyes: drift past DRIFT_LIMIT (a cross-fade) starts a part
        (0.42, False, False),  # a blink's frames stay with the part before it
        (0.85, False, True),  # another face does not hide behind narrowed eyes
    ],
)
def test_which_frames_start_an_identity_part(drift, eyes_open, new_part):
    from ecard.liveness.session import starts_part

    assert starts_part(drift, eyes_open) is new_part
