"""Presentation-attack detection, measured the ISO/IEC 30107-3 way: APCER per species, BPCER.

Every clip is decoded into memory once (frames are never written to disk) and run through the
real check, ``ecard.liveness.analyze.analyze_timed_frames``, under two capture conditions:

* ``640``: the analyser's working frames (uploads are scaled to at most 640 px wide);
* ``320``: what the live capture page sends: long side 320 px, JPEG quality 65.

Attacks: the shared real ones (spoof_pairs fakes, the two Trainingdata phone replays, every NUAA
``printphoto_*`` sequence, the Silent-Face spoof stills F1/F2 as 2-frame clips) and generated
ones (``bench/attacks/screens.py``: a live clip replayed on a phone or monitor, bezel in view or
screen filling the frame; ``bench/attacks/prints.py`` when it is there). Bona fide: every shared
live clip (and the T1/T2 live stills as 2-frame clips, PAD only).

Two figures per condition:

* **PAD** (``ecard.liveness.pad`` alone, computed here on the same frames): APCER = attacks
  the medium check does not call an attack; BPCER = live clips it calls an attack (every live
  clip, blinking or not).
* **System**: an attack passes when the whole check says ``live`` and the medium check does not
  object; BPCER counts live clips *in which the person blinks* that are refused for any reason.

The medium verdict is computed here by tracking the same frames with ``FaceTracker`` and
calling ``pad.frame_features`` every 300 ms and ``pad.judge_medium`` at the end (the PAD
columns). The system columns are the public check's answer; while ``LivenessResult`` has no
reason ``presentation_attack`` (``ecard.liveness.result.REASONS``), i.e. before the analyser
runs the medium check, the bench's own verdict is added to it.

Run: ``.venv/bin/python -m bench.bench_pad`` (``--quick``: fewer generated clips; ``--size 320``
or ``--size 640``: one condition only; ``-v``: the per-frame cues of each clip).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ECARD_SHARED_DATA", REPO.parent / "shared" / "data"))
BLINK = DATA / "blink"

Image = npt.NDArray[np.uint8]
Timed = list[tuple[Image, float]]

#: live clips -> does the person blink in it (PROVENANCE.md); BPCER counts the blinking ones
LIVE: dict[str, bool] = {
    "videos/DinoMan-blink-detector__example.mp4": True,
    "videos/jakubvlk-BlinkRate__blink.mov": True,
    "videos/r4onlyrishabh-blink-detector__default1.mp4": True,
    "videos/repeating-Blink-Detector__video.mp4": True,
    "spoof_pairs/lestari15-CNN-face-detection__real.mp4": False,  # eyes open throughout
    "spoof_pairs/ZubairCracksCode-anit-spoofing__real.mov": False,  # not determinable
    "nuaa_photo_attack/live_0001_00_00_01": True,
    "nuaa_photo_attack/live_0002_01_00_01": True,
    "nuaa_photo_attack/live_0003_01_00_01": False,  # glasses; no closed-eye frame confirmed
    "nuaa_photo_attack/live_0007_01_00_01": False,  # no closed-eye frame found
    "nuaa_photo_attack/live_0008_00_00_02": True,
}
LIVE_STILLS = ("spoof_stills/silentface__image_T1.jpg", "spoof_stills/silentface__image_T2.jpg")
#: real attacks -> species
REAL_ATTACKS: dict[str, str] = {
    "spoof_pairs/lestari15-CNN-face-detection__fake.mp4": "screen",
    "spoof_pairs/ZubairCracksCode-anit-spoofing__fake.mp4": "screen",
    "spoof_pairs/Trainingdata-datamarket-Anti-Spoofing-Replay__0001fffbd2"
    "--630b6ba7e3a4854c648025ea_replay_video.mp4": "screen",
    "spoof_pairs/Trainingdata-datamarket-Anti-Spoofing-Replay__0001fffbd2"
    "--630b66fab961b45a3ceb1ca9_replay_video.mp4": "screen",
    "spoof_pairs/nhtlongcs-liveness-detection__1.mp4": "screen",  # masked, per source label
    "nuaa_photo_attack/printphoto_0001_00_01_02": "print",
    "nuaa_photo_attack/printphoto_0001_00_03_02": "print",
    "nuaa_photo_attack/printphoto_0002_01_02_02": "print",
    "nuaa_photo_attack/printphoto_0003_01_01_02": "print",
    "nuaa_photo_attack/printphoto_0003_01_02_02": "print",
    "nuaa_photo_attack/printphoto_0007_01_02_02": "print",
    "nuaa_photo_attack/printphoto_0008_00_01_02": "print",
    "nuaa_photo_attack/printphoto_0008_00_02_02": "print",
}
ATTACK_STILLS = {
    "spoof_stills/silentface__image_F1.jpg": "print",
    "spoof_stills/silentface__image_F2.jpg": "screen",
}
#: live clips replayed on generated screens (content keeps its real blinks)
SCREEN_SOURCES = (
    "videos/repeating-Blink-Detector__video.mp4",
    "videos/r4onlyrishabh-blink-detector__default1.mp4",
    "videos/jakubvlk-BlinkRate__blink.mov",
    "nuaa_photo_attack/live_0001_00_00_01",
    "nuaa_photo_attack/live_0008_00_00_02",
)
#: generated clips: this long, at the live page's frame rate
GEN_MS = 4500.0
GEN_FPS = 15.0
SAMPLE_MS = 300.0
CONDITIONS = ("640", "320")


def condition(frames: Sequence[tuple[Image, float]], name: str) -> Timed:
    """Frames as the service sees them under capture condition ``name`` (see module doc)."""
    import cv2

    out: Timed = []
    for bgr, t in frames:
        h, w = bgr.shape[:2]
        if name == "640":
            if w > 640:
                bgr = cv2.resize(bgr, (640, round(h * 640 / w)), interpolation=cv2.INTER_AREA)
            out.append((np.ascontiguousarray(bgr), t))
            continue
        s = 320 / max(h, w)
        if s < 1:
            bgr = cv2.resize(bgr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 65])
        assert ok
        out.append((np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), dtype=np.uint8), t))
    return out


def load(rel: str, *, max_ms: float | None = None, fps: float | None = None) -> Timed:
    """A shared clip, frame folder or still (a still becomes a 2-frame clip 400 ms apart)."""
    import cv2

    path = BLINK / rel
    if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # applies the EXIF orientation
        h, w = img.shape[:2]
        if max(h, w) > 1280:
            s = 1280 / max(h, w)
            img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        return [(img, 0.0), (img.copy(), 400.0)]
    from bench.attacks.screens import clip_frames

    return clip_frames(path, max_ms=max_ms or 60_000.0, fps=fps)


@dataclass(frozen=True)
class Outcome:
    """One clip under one condition."""

    name: str
    kind: str  # "live" or "attack"
    species: str
    blinks_truth: bool
    condition: str
    live: bool | None  # the public check's answer (None: it raised, e.g. no face)
    reason: str | None
    blinks: int
    pad_attack: bool
    pad_species: str | None
    scores: dict[str, float]
    public_pad: bool  # the public check runs the medium check itself

    @property
    def refused(self) -> bool:
        """The whole check refuses the clip (the public answer; plus the bench's own medium
        verdict while the analyser does not run it)."""
        return not self.live or (not self.public_pad and self.pad_attack)


def integrated() -> bool:
    """Whether the public check already gives the reason ``presentation_attack``."""
    from ecard.liveness import result

    return "presentation_attack" in getattr(result, "REASONS", ())


def medium_verdict(
    frames: Sequence[tuple[Image, float]], models: object, pad: object
) -> tuple[object, list[dict[str, float]]]:
    """The bench's own medium verdict: track every frame, sample the cues every 300 ms."""
    import cv2

    from ecard.liveness.pad import frame_features, judge_medium
    from ecard.liveness.tracking import FaceTracker

    tracker = FaceTracker(models)  # type: ignore[arg-type]
    feats: list[dict[str, float]] = []
    marks = []
    last = -1e18
    for bgr, t in frames:
        gray = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        obs = tracker.observe(gray, t)
        if obs.landmarks is None or obs.box is None or t - last < SAMPLE_MS:
            continue
        last = t
        feats.append(frame_features(bgr, obs.box, obs.landmarks, pad))  # type: ignore[arg-type]
        marks.append(obs.landmarks)
    return judge_medium(feats, marks), feats


def run_clip(
    frames: Timed,
    *,
    name: str,
    kind: str,
    species: str,
    blinks_truth: bool,
    cond: str,
    models: object,
    pad: object,
) -> tuple[Outcome, list[dict[str, float]]]:
    from ecard.errors import FaceError
    from ecard.liveness.analyze import analyze_timed_frames

    work = condition(frames, cond)
    kwargs: dict[str, object] = {"models": models}
    if "pad" in inspect.signature(analyze_timed_frames).parameters:
        kwargs["pad"] = pad
    live: bool | None
    try:
        result = analyze_timed_frames(iter(work), **kwargs)  # type: ignore[arg-type]
        live, reason, blinks = result.live, result.reason, result.blinks
    except FaceError as exc:
        live, reason, blinks = None, exc.code, 0
    verdict, feats = medium_verdict(work, models, pad)
    public = integrated()
    pad_attack = bool(verdict.attack)  # type: ignore[attr-defined]
    return (
        Outcome(
            name=name,
            kind=kind,
            species=species,
            blinks_truth=blinks_truth,
            condition=cond,
            live=live,
            reason=reason,
            blinks=blinks,
            pad_attack=pad_attack,
            pad_species=verdict.species,  # type: ignore[attr-defined]
            scores=dict(verdict.scores),  # type: ignore[attr-defined]
            public_pad=public,
        ),
        feats,
    )


def generated(quick: bool) -> list[tuple[str, str, Callable[[], Timed]]]:
    """(name, species, make) of every generated attack clip (made lazily, one at a time)."""
    from bench.attacks import screens

    out: list[tuple[str, str, Callable[[], Timed]]] = []
    sources = SCREEN_SOURCES[:2] if quick else SCREEN_SOURCES
    for i, rel in enumerate(sources):
        if not (BLINK / rel).exists():
            continue
        for j, variant in enumerate(screens.VARIANTS):

            def make(rel: str = rel, variant: str = variant, seed: int = 10 * i + j) -> Timed:
                src = load(rel, max_ms=GEN_MS, fps=GEN_FPS)
                return screens.generate(variant, src, seed=seed)

            out.append((f"screen:{variant}:{Path(rel).name}", f"screen_{variant}", make))
    out += generated_prints(quick)
    return out


def generated_prints(quick: bool) -> list[tuple[str, str, Callable[[], Timed]]]:
    """Printed-photo attacks from ``bench/attacks/prints.py`` when it is there (its API:
    ``sources(data, models)`` and ``print_attack(photo, box, species, seed, ...)``)."""
    try:
        from bench.attacks import prints
    except ImportError:
        return []
    from ecard.faces.models import shared_models

    species = [sp for sp in prints.SPECIES if "+" not in sp]
    out: list[tuple[str, str, Callable[[], Timed]]] = []
    for i, src in enumerate(prints.sources(DATA, shared_models(), limit=2 if quick else 4)):
        for j, sp in enumerate(species):

            def make(src: object = src, sp: str = sp, seed: int = 100 + 10 * i + j) -> Timed:
                return prints.print_attack(
                    src.bgr,  # type: ignore[attr-defined]
                    src.box,  # type: ignore[attr-defined]
                    sp,
                    seed,
                    fps=GEN_FPS,
                    duration_ms=GEN_MS,
                    eye_y=src.eye_y,  # type: ignore[attr-defined]
                )

            out.append((f"{sp}:{src.name}", sp, make))
    return out


def line(o: Outcome) -> str:
    s = o.scores
    verdict = "REFUSED" if o.refused else "passed"
    return (
        f"  {o.condition:>3s} {o.kind:6s} {o.species:20s} {o.name[-44:]:44s} "
        f"live={o.live!s:5s} reason={o.reason!s:19s} blinks={o.blinks:2d} "
        f"pad={'ATTACK' if o.pad_attack else 'ok':6s} {o.pad_species or '-':6s} "
        f"fas={s.get('fas', float('nan')):.2f} fit={s.get('fas_fit', float('nan')):.2f} "
        f"bezel={s.get('bezel', float('nan')):.1f} moire={s.get('moire', float('nan')):.1f} "
        f"share={s.get('attack_share', 0):.2f} run={s.get('attack_run', 0):.0f} -> {verdict}"
    )


def summary(outcomes: Sequence[Outcome], cond: str) -> list[str]:
    rows = [o for o in outcomes if o.condition == cond]
    lines = [f"condition {cond}:"]
    species = sorted({o.species for o in rows if o.kind == "attack"})
    lines.append(f"  {'species':22s} {'n':>3s} {'APCER(PAD)':>11s} {'APCER(system)':>14s}")
    for sp in species:
        att = [o for o in rows if o.kind == "attack" and o.species == sp]
        pad_miss = sum(not o.pad_attack for o in att)
        sys_miss = sum(not o.refused for o in att)
        lines.append(
            f"  {sp:22s} {len(att):3d} {pad_miss / len(att):10.1%} {sys_miss / len(att):13.1%}"
        )
    live = [o for o in rows if o.kind == "live"]
    blinking = [o for o in live if o.blinks_truth]
    pad_false = [o.name for o in live if o.pad_attack]
    sys_false = [o.name for o in blinking if o.refused]
    lines.append(
        f"  BPCER(PAD) on {len(live)} live clips: {len(pad_false) / max(1, len(live)):.1%}"
        + (f" ({', '.join(Path(n).name for n in pad_false)})" if pad_false else "")
    )
    lines.append(
        f"  BPCER(system) on {len(blinking)} live clips with blinks: "
        f"{len(sys_false) / max(1, len(blinking)):.1%}"
        + (f" ({', '.join(Path(n).name for n in sys_false)})" if sys_false else "")
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.bench_pad", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer generated attack clips")
    parser.add_argument("--size", choices=CONDITIONS, help="one capture condition only")
    parser.add_argument("-v", "--verbose", action="store_true", help="per-frame cues")
    args = parser.parse_args(list(argv) if argv is not None else [])
    if not BLINK.exists():
        print(f"bench_pad: {BLINK} is absent; nothing to measure")
        return 0
    from ecard.faces.models import shared_models
    from ecard.liveness.pad import PadModels

    models = shared_models()
    pad = PadModels().load()
    conds = (args.size,) if args.size else CONDITIONS
    print(
        "system verdict: "
        + ("the public check (it runs the medium check)" if integrated() else "public + bench PAD")
        + f"; conditions {', '.join(conds)}"
    )
    jobs: list[tuple[str, str, str, bool, Callable[[], Timed]]] = []
    for rel, blinks in LIVE.items():
        jobs.append((rel, "live", "bona_fide", blinks, lambda rel=rel: load(rel)))
    for rel in LIVE_STILLS:
        jobs.append((rel, "live", "bona_fide_still", False, lambda rel=rel: load(rel)))
    for rel, sp in REAL_ATTACKS.items():
        jobs.append((rel, "attack", f"real_{sp}", False, lambda rel=rel: load(rel)))
    for rel, sp in ATTACK_STILLS.items():
        jobs.append((rel, "attack", f"real_{sp}_still", False, lambda rel=rel: load(rel)))
    for name, sp, make in generated(args.quick):
        jobs.append((name, "attack", sp, False, make))
    outcomes: list[Outcome] = []
    start = time.perf_counter()
    for name, kind, sp, blinks, make in jobs:
        if ":" not in name and not (BLINK / name).exists():
            continue
        frames = make()
        for cond in conds:
            o, feats = run_clip(
                frames,
                name=name,
                kind=kind,
                species=sp,
                blinks_truth=blinks,
                cond=cond,
                models=models,
                pad=pad,
            )
            outcomes.append(o)
            print(line(o), flush=True)
            if args.verbose:
                for key in ("fas", "bezel", "moire"):
                    vals = " ".join(f"{f.get(key, float('nan')):.2f}" for f in feats)
                    print(f"      {key:6s} {vals}")
        del frames
    print(f"({len(jobs)} clips, {time.perf_counter() - start:.0f} s)")
    for cond in conds:
        print("\n".join(summary(outcomes, cond)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
