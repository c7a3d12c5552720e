"""Blink authenticity: every dip the blink detector counts, judged real blink or not.

Real blinks: every counted blink of the shared live clips (../shared/data/blink/videos and the
NUAA live_* folders). Attacks: the NUAA printed-photo folders and the generated prints of
:mod:`bench.attacks.prints` (flat, bent, rotated, moved, and bends timed like blinks). Each
clip is seen as the service sees it: frames scaled to at most 640 px wide ("service"), and as
the live capture page sends them: ~12 fps, long side ~320 px, JPEG quality 65 ("page").

For each clip and condition it prints the dips counted as blinks, how many are judged authentic,
and each measure's margin to its threshold (positive = on the passing side). Nothing is written
to disk; landmarks are computed once per clip and condition.

Run: ``.venv/bin/python -m bench.bench_authenticity`` (``--quick`` skips the generated prints,
``--sources N`` prints N photos, default 12, evenly spread over the shared stills and frames).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ECARD_SHARED_DATA", REPO.parent / "shared" / "data"))
BLINK = DATA / "blink"

Image = npt.NDArray[np.uint8]
Frames = list[tuple[Image, float]]

#: the live clips whose blinks are real (PROVENANCE.md); Zubair real is shown as a diagnostic
LIVE_CLIPS = (
    "videos/DinoMan-blink-detector__example.mp4",
    "videos/jakubvlk-BlinkRate__blink.mov",
    "videos/r4onlyrishabh-blink-detector__default1.mp4",
    "videos/repeating-Blink-Detector__video.mp4",
    "nuaa_photo_attack/live_0001_00_00_01",
    "nuaa_photo_attack/live_0002_01_00_01",
    "nuaa_photo_attack/live_0003_01_00_01",
    "nuaa_photo_attack/live_0007_01_00_01",
    "nuaa_photo_attack/live_0008_00_00_02",
)
DIAGNOSTIC_LIVE = ("spoof_pairs/ZubairCracksCode-anit-spoofing__real.mov",)
PRINT_CLIPS = tuple(
    f"nuaa_photo_attack/{name}"
    for name in (
        "printphoto_0001_00_01_02",
        "printphoto_0001_00_03_02",
        "printphoto_0002_01_02_02",
        "printphoto_0003_01_01_02",
        "printphoto_0003_01_02_02",
        "printphoto_0007_01_02_02",
        "printphoto_0008_00_01_02",
        "printphoto_0008_00_02_02",
    )
)
#: the live capture page: frames a second, long side (px), JPEG quality
PAGE_FPS = 12.0
PAGE_SIDE = 320
PAGE_QUALITY = 65
WORK_WIDTH = 640


def load_clip(path: Path) -> Frames:
    """Every frame of a clip or frame folder (BGR, in memory) with its time in ms."""
    from ecard.liveness.media import iter_video
    from ecard.liveness.policy import MediaLimits

    return [(np.ascontiguousarray(bgr), t) for bgr, t in iter_video(path, MediaLimits())]


def page_frames(frames: Sequence[tuple[Image, float]], fps: float = PAGE_FPS) -> Frames:
    """As the capture page sends them: ~``fps`` frames a second, long side at most
    :data:`PAGE_SIDE`, JPEG quality :data:`PAGE_QUALITY` (encoded and decoded in memory)."""
    import cv2

    out: Frames = []
    next_t = -math.inf
    for bgr, t in frames:
        if t < next_t - 1e-6:
            continue
        next_t = max(next_t + 1000.0 / fps, t + 0.5 * 1000.0 / fps) if out else t + 1000.0 / fps
        h, w = bgr.shape[:2]
        scale = min(1.0, PAGE_SIDE / max(h, w))
        small = bgr
        if scale < 1.0:
            size = (round(w * scale), round(h * scale))
            small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, PAGE_QUALITY])
        assert ok
        out.append((np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), dtype=np.uint8), t))
    return out


@dataclass(frozen=True)
class Series:
    """What the analyser keeps per frame (no pixels): times, landmarks, eye features, openness."""

    times: npt.NDArray[np.float64]
    landmarks: npt.NDArray[np.float64]
    feats: npt.NDArray[np.float32]
    openness: tuple[float | None, ...]


def track(frames: Iterable[tuple[Image, float]], models: object) -> Series:
    """Run the service's tracker over ``frames`` (scaled to <= 640 px wide, as the analyser does)
    and record each frame's landmarks, :func:`eye_features` and eye openness."""
    import cv2

    from ecard.liveness.authenticity import FEATURES, eye_features
    from ecard.liveness.blinks import face_openness
    from ecard.liveness.tracking import FaceTracker

    tracker = FaceTracker(models)  # type: ignore[arg-type]
    times: list[float] = []
    marks: list[npt.NDArray[np.float64]] = []
    feats: list[npt.NDArray[np.float32]] = []
    opens: list[float | None] = []
    for bgr, t in frames:
        h, w = bgr.shape[:2]
        if w > WORK_WIDTH:
            bgr = cv2.resize(
                bgr, (WORK_WIDTH, round(h * WORK_WIDTH / w)), interpolation=cv2.INTER_AREA
            )
        gray = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        obs = tracker.observe(gray, t)
        times.append(t)
        if obs.landmarks is None or obs.box is None:
            marks.append(np.full((68, 2), np.nan))
            feats.append(np.full(FEATURES, np.nan, dtype=np.float32))
            opens.append(None)
            continue
        marks.append(obs.landmarks)
        feats.append(eye_features(gray, obs.landmarks))
        opens.append(face_openness(obs.landmarks))
    return Series(
        times=np.asarray(times, dtype=np.float64),
        landmarks=np.asarray(marks, dtype=np.float64).reshape(-1, 68, 2),
        feats=np.asarray(feats, dtype=np.float32).reshape(-1, FEATURES),
        openness=tuple(opens),
    )


def judged(series: Series) -> list[tuple[object, object]]:
    """(event, evidence) for every dip :func:`detect_blinks` counts as a blink."""
    from ecard.liveness.authenticity import judge_blink
    from ecard.liveness.blinks import detect_blinks

    events = detect_blinks(series.openness, times_ms=series.times.tolist())
    return [
        (e, judge_blink(series.times, series.landmarks, series.feats, e))
        for e in events
        if e.is_blink
    ]


#: closed-eye frames of every blink in the live clips (PROVENANCE.md, native frame indices);
#: NUAA folders: the picNo of the closed frames the curator verified
TRUTH_FRAMES: dict[str, list[tuple[int, int]]] = {
    "videos/DinoMan-blink-detector__example.mp4": [(14, 17), (37, 38)],
    "videos/jakubvlk-BlinkRate__blink.mov": [(12, 14), (23, 24), (42, 43), (50, 51)],
    "videos/r4onlyrishabh-blink-detector__default1.mp4": [
        (30, 35), (57, 62), (76, 81), (118, 128), (153, 157),
        (175, 178), (183, 189), (208, 212), (268, 271),
    ],
    "videos/repeating-Blink-Detector__video.mp4": [
        (10, 13), (40, 43), (82, 85), (111, 113), (220, 223), (239, 241),
    ],
}  # fmt: skip
TRUTH_PICNO = {
    "nuaa_photo_attack/live_0001_00_00_01": [408],
    "nuaa_photo_attack/live_0002_01_00_01": [323],
    "nuaa_photo_attack/live_0008_00_00_02": [38, 123, 216, 444, 496],
}


def truth_spans_ms(name: str, native_times: Sequence[float]) -> list[tuple[float, float]] | None:
    """When the eyes were closed in a live clip (ms), or None where nobody annotated it."""
    if name in TRUTH_FRAMES:
        return [(native_times[a], native_times[b]) for a, b in TRUTH_FRAMES[name]]
    if name in TRUTH_PICNO:
        from ecard.liveness.media import folder_frames

        pics = [int(p.stem.rsplit("_", 1)[1]) for p in folder_frames(BLINK / name)]
        return [(native_times[pics.index(p)],) * 2 for p in TRUTH_PICNO[name]]
    return None


def is_true_blink(event: object, spans: list[tuple[float, float]], slack_ms: float = 90.0) -> bool:
    start, end = event.start_ms, event.end_ms  # type: ignore[attr-defined]
    return any(a <= end + slack_ms and b >= start - slack_ms for a, b in spans)


@dataclass
class Tally:
    """Dips counted as blinks and how many were judged authentic, with their measures."""

    dips: int = 0
    authentic: int = 0
    clips: int = 0
    clips_passing: int = 0
    appearance: list[float] | None = None
    rigidity: list[float] | None = None
    gap_share: list[float] | None = None

    def add(self, pairs: list[tuple[object, object]]) -> None:
        self.clips += 1
        self.clips_passing += any(ev.authentic for _, ev in pairs)  # type: ignore[attr-defined]
        for e, ev in pairs:
            self.dips += 1
            self.authentic += bool(ev.authentic)  # type: ignore[attr-defined]
            for key, value in (
                ("appearance", ev.appearance),  # type: ignore[attr-defined]
                ("rigidity", ev.rigidity),  # type: ignore[attr-defined]
                ("gap_share", ev.gap_depth / max(e.depth, 1e-6)),  # type: ignore[attr-defined]
            ):
                values = getattr(self, key) or []
                values.append(float(value))
                setattr(self, key, values)


def _fmt(values: list[float] | None, worst: str) -> str:
    v = [x for x in (values or []) if math.isfinite(x)]
    if not v:
        return "-"
    return f"{worst} {min(v) if worst == 'min' else max(v):.2f} (median {float(np.median(v)):.2f})"


def _line(label: str, pairs: list[tuple[object, object]]) -> str:
    shown = " ".join(
        f"[{e.start}-{e.end} app {ev.appearance:.2f} rig {ev.rigidity:.3f} "  # type: ignore[attr-defined]
        f"gap {ev.gap_depth:.2f} {'OK' if ev.authentic else ev.reason}]"  # type: ignore[attr-defined]
        for e, ev in pairs
    )
    good = sum(bool(ev.authentic) for _, ev in pairs)  # type: ignore[attr-defined]
    return f"  {label:62} dips {len(pairs)} authentic {good} {shown}"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    quick = "--quick" in args
    count = int(args[args.index("--sources") + 1]) if "--sources" in args else 12
    if not BLINK.is_dir():
        print(f"needs ../shared/data ({BLINK} is absent)")
        return 0
    from ecard.faces.models import shared_models
    from ecard.liveness.authenticity import MAX_RIGIDITY, MIN_APPEARANCE, MIN_GAP_SHARE

    models = shared_models()
    real = {"service": Tally(), "page": Tally()}
    false_live = {"service": Tally(), "page": Tally()}
    print("== real blinks (live clips; dips that are not PROVENANCE blinks are listed apart)")
    for name in LIVE_CLIPS + DIAGNOSTIC_LIVE:
        frames = load_clip(BLINK / name)
        spans = truth_spans_ms(name, [t for _, t in frames])
        for cond in ("service", "page"):
            pairs = judged(track(frames if cond == "service" else page_frames(frames), models))
            if spans is None:
                print(_line(f"{name.split('/')[-1][:40]} {cond} (not annotated)", pairs))
                continue
            true = [p for p in pairs if is_true_blink(p[0], spans)]
            other = [p for p in pairs if not is_true_blink(p[0], spans)]
            real[cond].add(true)
            if other:
                false_live[cond].add(other)
            print(_line(f"{name.split('/')[-1][:40]} {cond} blinks", true))
            if other:
                print(_line(f"{name.split('/')[-1][:40]} {cond} other dips", other))
    attacks: dict[str, dict[str, Tally]] = {}
    print("== NUAA printed photos")
    for name in PRINT_CLIPS:
        frames = load_clip(BLINK / name)
        for cond in ("service", "page"):
            pairs = judged(track(frames if cond == "service" else page_frames(frames), models))
            attacks.setdefault("nuaa_print", {}).setdefault(cond, Tally()).add(pairs)
            print(_line(f"{name.split('/')[-1]} {cond}", pairs))
    if not quick:
        from bench.attacks.prints import SPECIES, print_attack, sources

        print("== generated prints (bench/attacks/prints.py)")
        found = sources(DATA, models)
        step = max(1, len(found) // count)
        for k, src in enumerate(found[::step][:count]):
            for j, species in enumerate(SPECIES):
                frames = print_attack(
                    src.bgr, src.box, species, seed=100 * k + j + 7, eye_y=src.eye_y
                )
                for cond in ("service", "page"):
                    pairs = judged(
                        track(frames if cond == "service" else page_frames(frames), models)
                    )
                    attacks.setdefault(species, {}).setdefault(cond, Tally()).add(pairs)
                    if pairs:
                        print(_line(f"{species} {src.name[:36]} {cond}", pairs))
    from ecard.liveness import authenticity as au

    print(
        f"== summary (thresholds: appearance >= {MIN_APPEARANCE:.2f}, rigidity <= "
        f"{MAX_RIGIDITY:.3f}, gap share {MIN_GAP_SHARE:.2f}..{au.MAX_GAP_SHARE:.2f}, dark drop >= "
        f"{au.MIN_DARK_DROP:.2f}, shortening <= max({au.MAX_SHORTENING:.2f}, "
        f"{au.SHORTENING_K:.1f} x wander), brow drop <= {au.MAX_BROW_DROP:.2f})"
    )
    for cond in ("service", "page"):
        r = real[cond]
        print(
            f"  real blinks {cond:7}: {r.authentic}/{r.dips} authentic; "
            f"appearance {_fmt(r.appearance, 'min')}, rigidity {_fmt(r.rigidity, 'max')}, "
            f"gap share {_fmt(r.gap_share, 'min')}"
        )
        f = false_live[cond]
        print(f"  other dips on live faces {cond:7}: {f.authentic}/{f.dips} judged authentic")
    for species, by_cond in attacks.items():
        for cond, a in by_cond.items():
            print(
                f"  {species:22} {cond:7}: dips {a.dips}, authentic {a.authentic}; clips passing"
                f" {a.clips_passing}/{a.clips}; appearance {_fmt(a.appearance, 'max')}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
