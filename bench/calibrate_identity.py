"""Calibrate "same person throughout the session" (live vs live) on ../shared/data/blink.

Identity binding (docs/liveness.md) computes face descriptors around every eye closure and in
every identity part of a capture, and refuses the capture as ``face_changed`` when any two are
further apart than ``BlinkPolicy.same_face_distance``. This is a different decision from the
registry match (live vs ID photo, ``ecard/faces/data/calibration.json`` key ``"match"``): both
sides are live frames of one session, so it can be tighter.

Measured here, each on every shared live clip, as decoded and as the enrollment page sends it
(12 fps, long side 320 px, JPEG 65):

* **same person**: the largest pairwise distance between the descriptors of one session;
* **different people**: the smallest distance between descriptors of two clips of different
  people (every pair of live clips; NUAA prints of the same subject are not used);
* **attacks**: the largest pairwise distance in splice / cross-fade / morph attacks
  (bench/attacks/splices.py) with the registry photo or the live frames of three victims and
  two blinking strangers.

Writes the figures to ``ecard/faces/data/calibration.json`` (package data) under
``"same_person"`` (``--dry-run`` only prints).
Run: ``.venv/bin/python -m bench.calibrate_identity``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ECARD_SHARED_DATA", REPO.parent / "shared" / "data"))
BLINK = DATA / "blink"
LIVE = [
    "videos/DinoMan-blink-detector__example.mp4",
    "videos/jakubvlk-BlinkRate__blink.mov",
    "videos/r4onlyrishabh-blink-detector__default1.mp4",
    "videos/repeating-Blink-Detector__video.mp4",
    "spoof_pairs/ZubairCracksCode-anit-spoofing__real.mov",
    "spoof_pairs/lestari15-CNN-face-detection__real.mp4",
    "nuaa_photo_attack/live_0001_00_00_01",
    "nuaa_photo_attack/live_0002_01_00_01",
    "nuaa_photo_attack/live_0003_01_00_01",
    "nuaa_photo_attack/live_0007_01_00_01",
    "nuaa_photo_attack/live_0008_00_00_02",
]
VICTIMS = [
    "faces/george_w_bush/lfw__George_W_Bush_0001.jpg",
    "faces/ariel_sharon/lfw__Ariel_Sharon_0001.jpg",
    "faces/scarlett_johansson/df__img8.jpg",
]
STRANGERS = [
    "videos/repeating-Blink-Detector__video.mp4",
    "videos/r4onlyrishabh-blink-detector__default1.mp4",
]


def page_version(frames: list[tuple[np.ndarray, float]]) -> list[tuple[np.ndarray, float]]:
    """The frames as the enrollment page sends them: 12 fps, long side 320 px, JPEG 65."""
    import cv2

    out = []
    next_t = frames[0][1]
    for bgr, t in frames:
        if t + 1e-6 < next_t:
            continue
        next_t += 1000 / 12
        h, w = bgr.shape[:2]
        s = 320 / max(h, w)
        small = cv2.resize(bgr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        _ok, jpg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 65])
        out.append((cv2.imdecode(jpg, cv2.IMREAD_COLOR), t))
    return out


def descriptors(frames: list[tuple[np.ndarray, float]], models: object) -> np.ndarray:
    from ecard.faces.models import FaceModels
    from ecard.liveness.session import LivenessSession

    assert isinstance(models, FaceModels)
    s = LivenessSession(models)
    s.feed(frames)
    return np.array([a.encoding for a in s._anchors])


def max_pair(e: np.ndarray) -> float:
    if len(e) < 2:
        return 0.0
    d = np.linalg.norm(e[:, None] - e[None], axis=2)
    return float(d.max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print, do not write")
    args = parser.parse_args(argv)
    if not BLINK.is_dir():
        print(f"skipped: {BLINK} is absent")
        return 0
    import cv2

    from bench.attacks import splices
    from ecard.faces.images import load_photo
    from ecard.faces.match import CALIBRATION_PATH
    from ecard.faces.models import shared_models
    from ecard.liveness.media import iter_video
    from ecard.liveness.policy import BlinkPolicy, MediaLimits

    models = shared_models()
    threshold = BlinkPolicy().same_face_distance
    same: dict[str, dict[str, float]] = {}
    encs: dict[str, np.ndarray] = {}
    for name in LIVE:
        frames = list(iter_video(BLINK / name, MediaLimits()))
        for cond, fr in (("decoded", frames), ("page", page_version(frames))):
            e = descriptors(fr, models)
            encs[f"{name}|{cond}"] = e
            same.setdefault(Path(name).name, {})[cond] = round(max_pair(e), 3)
        print(f"same person  {Path(name).name[:44]:<44} {same[Path(name).name]}")
    cross = []
    for a, b in itertools.combinations(LIVE, 2):
        ea, eb = encs[f"{a}|decoded"], encs[f"{b}|decoded"]
        d = np.linalg.norm(ea[:, None] - eb[None], axis=2)
        cross.append((float(d.min()), Path(a).name, Path(b).name))
    cross.sort()
    for d, a, b in cross[:5]:
        print(f"different    {d:.3f}  {a[:30]} / {b[:30]}")
    attacks = []
    for victim, stranger in itertools.product(VICTIMS, STRANGERS):
        rgb = load_photo(DATA / victim)
        chip = cv2.cvtColor(
            cv2.resize(rgb, (102, 126), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR
        )
        card = splices.photo_card(chip)
        other = splices.clip_frames(BLINK / stranger, max_ms=6000)
        for species in ("swap_photo", "crossfade", "morph"):
            e = descriptors(splices.generate(species, card, other), models)
            attacks.append((max_pair(e), species, Path(victim).name, Path(stranger).name))
    for d, sp, v, s in sorted(attacks)[:5]:
        print(f"attack       {d:.3f}  {sp} {v} + {s}")
    usual = [v["decoded"] for k, v in same.items() if not k.startswith("ZubairCracksCode")]
    usual += [v["page"] for k, v in same.items() if not k.startswith("ZubairCracksCode")]
    section = {
        "threshold": threshold,
        "metric": "largest Euclidean distance between any two dlib ResNet descriptors of one "
        "session; the capture is face_changed above it",
        "same_person_max": max(usual),
        "same_person_median": statistics.median(usual),
        "same_person_per_clip": same,
        "same_person_note": "ZubairCracksCode real (glasses, strong motion, leaves the frame) "
        "is excluded from same_person_max and is refused as face_changed",
        "different_people_min": round(cross[0][0], 3),
        "different_people_min_pair": [cross[0][1], cross[0][2]],
        "attacks_min": round(min(a[0] for a in attacks), 3),
        "attacks": len(attacks),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": ".venv/bin/python -m bench.calibrate_identity",
    }
    print(json.dumps({k: v for k, v in section.items() if k != "same_person_per_clip"}, indent=1))
    if not args.dry_run:
        path = Path(CALIBRATION_PATH)
        data = json.loads(path.read_text())
        data["same_person"] = section
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path} (same_person)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
