"""Presentation-attack signals of the medium: is the face on a screen or on paper?

Per sampled frame (about every 300 ms) :func:`frame_features` measures cheap, independent cues
of the *medium* the face is shown on; per clip :func:`judge_medium` fuses them into a
:class:`PadVerdict`. docs/pad.md gives the method, the calibration and the figures.

Fused cues (each gives an attack evidence of 0..1, see :func:`frame_evidence`):

* ``fas``: the MiniFASNet passive anti-spoofing CNNs (Silent-Face-Anti-Spoofing, Apache-2.0,
  shipped as ONNX in ``pad_models/``, checked by SHA-256 against ``faces/data/manifest.json``):
  mean probability of "real" of the 2.7x and 4.0x context crops, trusted in proportion to how
  much of that context the frame holds (``fas_fit``: not at all for a face crop that fills the
  frame). Its attack classes give the species (index 0 print, index 2 screen).
* ``bezel``: long straight edges that close the face in on three or four sides (the border of a
  phone, tablet, monitor or photo), measured on a copy scaled so the face is 40 px wide.
* ``moire`` (clip level): isolated peaks in the spectrum of the face (the camera resampling a
  screen's pixel grid), in units of the spectrum's own spread per frequency ring, JPEG block
  frequencies excluded; the clip's median, since a grid aliases in every frame while a face's
  own texture makes a peak in some frames only.

Measured and reported but not fused (no shared evidence separates them from live faces yet):
``glare`` (specular share of the face), ``range``/``black``/``luma`` (dynamic range of the
face's luma) and ``cr``/``cb``/``chroma_sd`` (YCbCr colour statistics, after Boulkenafet et al.
2015, without their learned classifier).

OpenCV is imported inside the functions; nothing is loaded at import time.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ecard.errors import ModelError, ModelMissingError
from ecard.faces.models import MANIFEST_PATH, Box, read_manifest, verify_file

Image = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float64]

#: the folder shipped with the package that holds the ONNX files, LICENSE and NOTICE
PAD_DIR = Path(__file__).resolve().with_name("pad_models")
MODEL_V2 = "2.7_80x80_MiniFASNetV2.onnx"
MODEL_V1SE = "4_0_0_80x80_MiniFASNetV1SE.onnx"
#: context scale of each model's crop (the source's ``h_input``/``scale`` naming)
MODEL_SCALES = ((MODEL_V2, 2.7), (MODEL_V1SE, 4.0))
PATCH = 80
#: dlib's HOG box is tighter than the source's RetinaFace box: enlarge it by this first
BOX_ENLARGE = 1.0


class PadModels:
    """The two MiniFASNet ONNX networks, loaded once and shared (like ``FaceModels``).

    The constructor is cheap; :meth:`load` checks the files' size and SHA-256 against
    the model manifest (a missing or altered file raises ``ModelMissingError`` /
    ``ModelIntegrityError``) and reads them with OpenCV's DNN module. Thread-safe: OpenCV nets
    are not re-entrant, so each forward pass holds the instance's lock (~1 ms per patch).
    """

    def __init__(self, folder: Path | None = None, manifest: Path = MANIFEST_PATH) -> None:
        self._folder = folder
        self._manifest = manifest
        self._lock = threading.Lock()
        self._nets: dict[str, Any] | None = None

    @property
    def ready(self) -> bool:
        return self._nets is not None

    def load(self) -> PadModels:
        with self._lock:
            if self._nets is not None:
                return self
            entries = {e.file: e for e in read_manifest(self._manifest)}
            folder = self._folder or PAD_DIR
            paths = {}
            for name, _ in MODEL_SCALES:
                if name not in entries:
                    raise ModelMissingError(f"The model manifest does not list {name}.")
                paths[name] = verify_file(entries[name], folder)
            import cv2

            nets = {}
            for name, path in paths.items():
                try:
                    nets[name] = cv2.dnn.readNetFromONNX(str(path))
                except cv2.error as exc:
                    raise ModelError(f"OpenCV could not load {name}: {exc}") from exc
            self._nets = nets
        return self

    def scores(self, bgr: Image, box: Box) -> npt.NDArray[np.float64]:
        """Softmax of each model on its own crop of ``box``: rows V2 (2.7x), V1SE (4.0x);
        columns the source's classes (index 1 = real, 0 and 2 = attack classes)."""
        if self._nets is None:
            self.load()
        assert self._nets is not None
        blobs = [(name, _patch(bgr, box, scale)) for name, scale in MODEL_SCALES]
        out = np.zeros((len(blobs), 3), dtype=np.float64)
        with self._lock:
            for i, (name, blob) in enumerate(blobs):
                net = self._nets[name]
                net.setInput(blob)
                logits = np.asarray(net.forward(), dtype=np.float64).reshape(-1)[:3]
                e = np.exp(logits - logits.max())
                out[i] = e / e.sum()
        return out

    def real_scores(self, bgr: Image, box: Box) -> tuple[float, float]:
        """Probability of "real" of the V2 (2.7x) and V1SE (4.0x) models."""
        p = self.scores(bgr, box)
        return float(p[0, 1]), float(p[1, 1])


def _patch(bgr: Image, box: Box, scale: float) -> npt.NDArray[np.float32]:
    """The source's crop (``CropImage._get_new_box``): box scaled around its centre, the scale
    lowered to fit the image, shifted back inside; resized to 80 x 80, BGR float 0-255, NCHW."""
    import cv2

    src_h, src_w = bgr.shape[:2]
    bw = max(1.0, box.width * BOX_ENLARGE)
    bh = max(1.0, box.height * BOX_ENLARGE)
    cx = (box.left + box.right) / 2.0
    cy = (box.top + box.bottom) / 2.0
    scale = min((src_h - 1) / bh, (src_w - 1) / bw, scale)
    nw, nh = bw * scale, bh * scale
    x0, y0, x1, y1 = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if x0 < 0:
        x1 -= x0
        x0 = 0
    if y0 < 0:
        y1 -= y0
        y0 = 0
    if x1 > src_w - 1:
        x0 -= x1 - src_w + 1
        x1 = src_w - 1
    if y1 > src_h - 1:
        y0 -= y1 - src_h + 1
        y1 = src_h - 1
    crop = bgr[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1]
    patch = cv2.resize(crop, (PATCH, PATCH), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(patch.transpose(2, 0, 1)[None].astype(np.float32))


# --- cues on one frame ------------------------------------------------------------------------


def _clip_box(box: Box, shape: tuple[int, ...], grow: float = 1.0) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    hw, hh = box.width * grow / 2, box.height * grow / 2
    return (
        max(0, int(cx - hw)),
        max(0, int(cy - hh)),
        min(w, int(cx + hw)),
        min(h, int(cy + hh)),
    )


#: the bezel search sees the face box grown this much, scaled so the face is this wide (px)
BEZEL_GROW = 4.0
BEZEL_FACE_PX = 40.0


def bezel_score(gray: Image, box: Box) -> float:
    """How many sides (0-4) of the face are closed by a long straight edge: a frame around it.

    ``gray`` is the search region (in :func:`frame_features` the face box grown 4x, scaled so
    the face is ~40 px wide) and ``box`` the face in it. An edge counts on a side when a Hough
    segment at least 1.2 face widths long, within 20 degrees of the side's direction, lies wholly
    beyond the face box on that side. Fractional: a side is worth
    ``min(1, length / (2 face widths))``.
    """
    import cv2

    if gray.size == 0 or box.width < 8:
        return 0.0
    edges = cv2.Canny(cv2.GaussianBlur(gray, (3, 3), 0), 40, 100)
    fw = float(box.width)
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, 25, minLineLength=1.2 * fw, maxLineGap=3)
    if lines is None:
        return 0.0
    fl, fr, ft, fb = box.left, box.right, box.top, box.bottom
    side = {"left": 0.0, "right": 0.0, "top": 0.0, "bottom": 0.0}
    for lx0, ly0, lx1, ly1 in np.asarray(lines, dtype=np.float64).reshape(-1, 4):
        length = math.hypot(lx1 - lx0, ly1 - ly0)
        angle = abs(math.degrees(math.atan2(ly1 - ly0, lx1 - lx0))) % 180
        worth = min(1.0, length / (2.0 * fw))
        if min(angle, 180 - angle) <= 20:  # horizontal
            if max(ly0, ly1) < ft:
                side["top"] = max(side["top"], worth)
            elif min(ly0, ly1) > fb:
                side["bottom"] = max(side["bottom"], worth)
        elif abs(angle - 90) <= 20:  # vertical
            if max(lx0, lx1) < fl:
                side["left"] = max(side["left"], worth)
            elif min(lx0, lx1) > fr:
                side["right"] = max(side["right"], worth)
    return float(sum(side.values()))


def moire_score(gray: Image, box: Box | None) -> float:
    """Strongest isolated peak in the face's spectrum, in robust spreads above its ring.

    The crop (``box`` of ``gray``, or all of it; :func:`frame_features` passes the face box
    grown 1.2x at native resolution; at most 128 px square, centred) is windowed and
    transformed; the log magnitude minus the mean of its frequency ring, in units of the ring's
    mean absolute deviation, leaves peaks that a natural 1/f spectrum does not have. Frequencies
    below 1/8 of the band (face structure) and at JPEG's 8-pixel block harmonics are excluded.
    """
    crop = gray if box is None else gray[box.top : box.bottom, box.left : box.right]
    n = min(crop.shape[0], crop.shape[1], MOIRE_N)
    if n < 32:
        return 0.0
    n -= n % 8
    cy, cx = crop.shape[0] // 2, crop.shape[1] // 2
    sq = crop[cy - n // 2 : cy - n // 2 + n, cx - n // 2 : cx - n // 2 + n].astype(np.float64)
    sq -= sq.mean()
    ring, keep = _spectrum_masks(n)
    spec = np.log1p(np.abs(np.fft.fft2(sq * _window(n))))[keep]
    r = ring[keep]
    count = np.bincount(r)
    safe = np.maximum(count, 1)
    mean = np.bincount(r, spec) / safe
    dev = np.bincount(r, np.abs(spec - mean[r])) / safe + 1e-6
    return float(np.max((spec - mean[r]) / dev[r]))


#: side of the square face crop the moire spectrum is taken on (at most)
MOIRE_N = 128
#: the moire crop is the face box grown this much (more of the grid, finer frequency bins)
MOIRE_GROW = 1.2
_masks: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]] = {}
_windows: dict[int, npt.NDArray[np.float64]] = {}


def _window(n: int) -> npt.NDArray[np.float64]:
    if n not in _windows:
        win = np.hanning(n)
        _windows[n] = np.outer(win, win)
    return _windows[n]


def _spectrum_masks(n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Ring index of each (unshifted) FFT bin and which bins the moire search looks at."""
    if n not in _masks:
        f = np.fft.fftfreq(n) * n
        fy, fx = np.meshgrid(f, f, indexing="ij")
        radius = np.hypot(fx, fy)
        step = n // 8  # JPEG block harmonics: x or y a multiple of n/8
        mx, my = np.abs(fx) % step, np.abs(fy) % step
        block = (np.minimum(mx, step - mx) <= 1) | (np.minimum(my, step - my) <= 1)
        keep = (radius >= n / 8) & (radius <= n / 2 - 1) & ~block & (fy >= 0)
        ring: npt.NDArray[np.int64] = np.asarray(np.round(radius), dtype=np.int64)
        _masks[n] = (ring, np.asarray(keep, dtype=np.bool_))
    return _masks[n]


def frame_features(
    bgr: Image, box: Box, landmarks: Points, pad: PadModels | None
) -> dict[str, float]:
    """Medium cues of one frame (call it on a sampled frame, about every 300 ms).

    ``bgr`` is the analyser's working frame (at most 640 px wide), ``box`` the tracker's face
    box in it and ``landmarks`` the 68 points. ``pad`` None skips the CNN (``fas`` is then
    absent and :func:`judge_medium` fuses the other cues). Returns plain floats (JSON-able).
    """
    import cv2

    out: dict[str, float] = {"face_px": float(box.height)}
    if pad is not None:
        p = pad.scores(bgr, box)
        out["fas_v2"] = float(p[0, 1])
        out["fas_v1se"] = float(p[1, 1])
        out["fas"] = float(p[:, 1].mean())
        out["fas_c0"] = float(p[:, 0].mean())
        out["fas_c2"] = float(p[:, 2].mean())
        out["fas_fit"] = crop_fit(bgr.shape, box)
    x0, y0, x1, y1 = _clip_box(box, bgr.shape, 4.0)
    s = BEZEL_FACE_PX / max(box.width, 1)
    region = bgr[y0:y1, x0:x1]
    if region.size:
        size = (max(8, round(region.shape[1] * s)), max(8, round(region.shape[0] * s)))
        small = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        sbox = Box(
            round((box.left - x0) * s),
            round((box.top - y0) * s),
            round((box.right - x0) * s),
            round((box.bottom - y0) * s),
        )
        gray = np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        out["bezel"] = bezel_score(gray, sbox)
    x0, y0, x1, y1 = _clip_box(box, bgr.shape, MOIRE_GROW)
    around = bgr[y0:y1, x0:x1]
    if around.size:
        around_gray = np.asarray(cv2.cvtColor(around, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        out["moire"] = moire_score(around_gray, None)
    x0, y0, x1, y1 = _clip_box(box, bgr.shape, 0.8)
    face = bgr[y0:y1, x0:x1]
    if face.size:
        thumb = cv2.resize(face, (32, 32), interpolation=cv2.INTER_AREA)
        ycc = cv2.cvtColor(thumb, cv2.COLOR_BGR2YCrCb).reshape(-1, 3).astype(np.float64)
        hsv = cv2.cvtColor(thumb, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.float64)
        y = np.sort(ycc[:, 0])
        p2, p50, p98 = y[len(y) // 50], y[len(y) // 2], y[len(y) - 1 - len(y) // 50]
        out["range"] = float(p98 - p2) / 255.0
        out["luma"] = float(p50) / 255.0
        out["black"] = float(p2) / 255.0
        out["cr"] = float(np.mean(ycc[:, 1]) - 128.0)
        out["cb"] = float(np.mean(ycc[:, 2]) - 128.0)
        out["chroma_sd"] = float(np.std(ycc[:, 1]) + np.std(ycc[:, 2]))
        out["glare"] = float(np.mean((hsv[:, 2] >= 245) & (hsv[:, 1] <= 40)))
    return out


def crop_fit(shape: tuple[int, ...], box: Box) -> float:
    """How much of the MiniFASNet context the frame holds: the scale the crop could get over
    the scale the model expects, for the wider (4.0x) model (1.0 = the whole context)."""
    h, w = shape[:2]
    bw = max(1.0, box.width * BOX_ENLARGE)
    bh = max(1.0, box.height * BOX_ENLARGE)
    return float(min(1.0, (h - 1) / bh / 4.0, (w - 1) / bw / 4.0))


# --- the verdict over a clip ------------------------------------------------------------------


@dataclass(frozen=True)
class PadVerdict:
    """Whether the clip shows a presentation attack, its likely species and the fused scores."""

    attack: bool
    species: str | None
    scores: dict[str, float] = field(default_factory=dict)


#: a frame is attack-like when its fused evidence reaches this (each cue gives 0..1)
FRAME_ATTACK = 1.0
#: a clip is an attack when this share of its sampled frames is attack-like ...
CLIP_SHARE = 0.5
#: ... or when this many consecutive sampled frames are (~0.9 s at one sample per 300 ms)
CLIP_RUN = 3
#: MiniFASNet evidence: 0 at a real-probability of FAS_OPEN or more, 1 at FAS_SURE or less
FAS_OPEN = 0.5
FAS_SURE = 0.1
#: MiniFASNet is trusted fully when the frame holds at least FIT_FULL of its 4x context, not at
#: all under FIT_NONE (a face crop that fills the frame, e.g. the 96 x 128 DinoMan clip)
FIT_NONE = 0.25
FIT_FULL = 0.35
#: bezel evidence: 0 with two sides closed by straight edges (door frames, shelves), 1 with three
BEZEL_OPEN = 2.0
BEZEL_SURE = 3.0
#: moire evidence, from the clip's median peak score (a screen's grid aliases in every frame;
#: a face's own texture makes a peak in some frames only): 0 at MOIRE_OPEN, 1 at MOIRE_SURE
MOIRE_OPEN = 3.7
MOIRE_SURE = 4.3
#: the moire median needs at least this many sampled frames
MOIRE_MIN_FRAMES = 3


def _ramp(x: float, zero: float, one: float) -> float:
    """0 at ``zero``, 1 at ``one``, linear between (either direction), clipped."""
    if one == zero:
        return float(x >= one)
    return float(min(1.0, max(0.0, (x - zero) / (one - zero))))


def frame_evidence(f: dict[str, float], clip: dict[str, float] | None = None) -> dict[str, float]:
    """Each cue's attack evidence (0..1) on one sampled frame; ``clip`` adds the clip-level
    cues (the moire median) to every frame."""
    ev: dict[str, float] = dict(clip or {})
    if "fas" in f:
        trust = _ramp(f.get("fas_fit", 1.0), FIT_NONE, FIT_FULL)
        ev["fas"] = trust * _ramp(f["fas"], FAS_OPEN, FAS_SURE)
    if "bezel" in f:
        ev["bezel"] = _ramp(f["bezel"], BEZEL_OPEN, BEZEL_SURE)
    return ev


def _longest_run(flags: Sequence[bool]) -> int:
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


def judge_medium(
    features: Sequence[dict[str, float]],
    landmarks: Sequence[Points] | None = None,
) -> PadVerdict:
    """Fuse the sampled frames' cues into one verdict for the clip (frames in time order).

    Each frame's evidence is the sum of its cues' evidence (:func:`frame_evidence`); a frame is
    attack-like at :data:`FRAME_ATTACK`. The clip is an attack when at least
    :data:`CLIP_SHARE` of the frames are attack-like, or :data:`CLIP_RUN` consecutive ones are
    (a replay that shows its bezel for its first second and then fills the frame). Species:
    MiniFASNet's attack classes (0 = print, 2 = screen) summed over the attack-like frames,
    with a bezel and moire counting for a screen. ``landmarks`` (the series of the sampled
    frames) is accepted for a planar-motion cue and not used yet.
    """
    clip: dict[str, float] = {}
    moire = _median(features, "moire")
    if moire is not None and len(features) >= MOIRE_MIN_FRAMES:
        clip["moire"] = _ramp(moire, MOIRE_OPEN, MOIRE_SURE)
    evidence = [frame_evidence(f, clip) for f in features]
    totals = [sum(e.values()) for e in evidence]
    flags = [t >= FRAME_ATTACK for t in totals]
    n = len(flags)
    share = sum(flags) / n if n else 0.0
    run = _longest_run(flags)
    attack = n > 0 and (share >= CLIP_SHARE or run >= CLIP_RUN)
    scores: dict[str, float] = {"frames": float(n), "attack_share": share, "attack_run": run}
    for key in ("fas", "bezel", "moire"):
        vals = [e[key] for e in evidence if key in e]
        if vals:
            scores[f"{key}_evidence"] = float(np.mean(vals))
    for key in ("fas", "fas_fit", "bezel", "moire", "face_px"):
        v = _median(features, key)
        if v is not None:
            scores[key] = v
    species: str | None = None
    if attack:
        hit = [f for f, flag in zip(features, flags, strict=True) if flag]
        screen = sum(f.get("fas_c2", 0.0) + (f.get("bezel", 0.0) >= BEZEL_SURE) for f in hit)
        screen += clip.get("moire", 0.0) * len(hit)
        paper = sum(f.get("fas_c0", 0.0) for f in hit)
        species = "print" if paper > screen else "screen"
    return PadVerdict(
        attack=attack, species=species, scores={k: round(v, 4) for k, v in scores.items()}
    )


def _median(features: Sequence[dict[str, float]], key: str) -> float | None:
    vals = [f[key] for f in features if key in f and math.isfinite(f[key])]
    return float(np.median(vals)) if vals else None
