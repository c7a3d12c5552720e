"""Printed-photo attacks: a face photo printed on paper, held, bent, tilted and moved in front of a
camera (issue 10, section 3, "An attack suite").

Species (and any ``+``-combination of the motion words, e.g. ``print_bent+rotated``):

* ``print_flat``: the sheet held still by a hand (tremor of a few pixels and a degree);
* ``print_bent``: the sheet bent like a cylinder around a horizontal or vertical axis, the
  bending changing slowly over time (NUAA's "twist");
* ``print_rotated``: the sheet tilted in 3D (yaw and pitch up to ~35 degrees, roll);
* ``print_moved``: the sheet moved by a hand (drift, distance change, roll);
* ``print_blink``: quick bends or folds of the sheet timed like blinks (~250 ms, 1-3 a clip), the
  attack of the issue: the printed eyes' openness dips once, deep enough to count as a blink.

The photo is cropped around the face (head and shoulders), printed with a white margin at
paper-like lower contrast and slight blur, warped as a plane (perspective) or a bent sheet
(cylindrical remap with its shading), held by a thumb over a background, lit with a changing
gain, and filmed with camera noise and JPEG compression. Everything is seeded and built in memory
as ``(bgr, t_ms)`` frames: nothing is written to disk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Timed = list[tuple[Image, float]]
Floats = npt.NDArray[np.float64]
Floats32 = npt.NDArray[np.float32]

SIZE = (640, 480)  # width, height of every generated frame
MOTIONS = ("flat", "bent", "rotated", "moved", "blink")
SPECIES = (
    "print_flat",
    "print_bent",
    "print_rotated",
    "print_moved",
    "print_blink",
    "print_bent+rotated",
    "print_bent+moved",
    "print_blink+rotated",
    "print_blink+moved",
    "print_blink+bent",
)


def _motions(species: str) -> set[str]:
    if not species.startswith("print_"):
        raise ValueError(f"not a print species: {species!r}")
    words = set(species.removeprefix("print_").split("+"))
    unknown = words - set(MOTIONS)
    if unknown:
        raise ValueError(f"unknown motion(s) {sorted(unknown)} in {species!r}")
    return words


# --- the printed sheet ------------------------------------------------------------------------


def face_crop(bgr: Image, box: tuple[int, int, int, int]) -> Image:
    """Head and shoulders around a face box (left, top, right, bottom), as a photo would show."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    cx, cy = (left + right) / 2, (top + bottom) / 2 - 0.1 * h
    half_w, half_h = 1.1 * w, 1.35 * h
    ih, iw = bgr.shape[:2]
    x0, x1 = max(0, round(cx - half_w)), min(iw, round(cx + half_w))
    y0, y1 = max(0, round(cy - half_h)), min(ih, round(cy + half_h))
    return np.ascontiguousarray(bgr[y0:y1, x0:x1])


def print_sheet(
    photo: Image, face_height: float, target_face: float, rng: np.random.Generator
) -> Image:
    """The photo as printed: scaled so the face is ``target_face`` px high, paper contrast
    (ink never black, paper never white), a slight print blur, a warm tint and a white margin."""
    import cv2

    scale = target_face / max(face_height, 1.0)
    h, w = photo.shape[:2]
    img = cv2.resize(
        photo, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA
    ).astype(np.float32)
    contrast = rng.uniform(0.6, 0.85)
    img = 128.0 + contrast * (img - 128.0) + rng.uniform(-10, 15)
    img *= np.array([rng.uniform(0.9, 1.0), rng.uniform(0.95, 1.0), 1.0], dtype=np.float32)
    sigma = rng.uniform(0.4, 1.2)
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    margin = max(4, round(0.04 * max(img.shape[:2])))
    paper = rng.uniform(215, 240)
    sheet = cv2.copyMakeBorder(
        np.clip(img, 0, 255).astype(np.uint8),
        margin,
        margin,
        margin,
        margin,
        cv2.BORDER_CONSTANT,
        value=(paper * 0.97, paper, paper),
    )
    return np.asarray(sheet, dtype=np.uint8)


def background(size: tuple[int, int], rng: np.random.Generator) -> Image:
    """A plausible room behind the sheet: a lit gradient, a few soft shapes and texture."""
    import cv2

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(60, 190, size=3).astype(np.float32)
    slope = rng.uniform(-0.12, 0.12, size=2).astype(np.float32)
    img = base[None, None, :] + (slope[0] * xx + slope[1] * yy)[..., None]
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(40, 300)), y0 + int(rng.integers(40, 300))
        colour = rng.uniform(30, 230, size=3).tolist()
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
    noise = rng.normal(0, 1, size=(h // 8 + 1, w // 8 + 1)).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    img = cv2.GaussianBlur(img, (0, 0), 3.0) + 6.0 * noise[..., None]
    return np.asarray(np.clip(img, 0, 255), dtype=np.uint8)


# --- how the sheet moves ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pose:
    """One frame's state of the sheet."""

    bend_v: float  # cylinder around a horizontal axis: angle (rad) at the sheet's top/bottom edge
    bend_h: float  # cylinder around a vertical axis: angle (rad) at the sheet's side edges
    fold: float  # crease along the eye line, the upper part turned back by this angle (rad)
    yaw: float
    pitch: float
    roll: float
    tx: float  # px in the frame
    ty: float
    scale: float
    gain: float  # lighting


def _wave(rng: np.random.Generator, t: npt.NDArray[np.float64], hz: tuple[float, float]) -> Floats:
    """A smooth random signal in about [-1, 1]: three sines of random frequency and phase."""
    out = np.zeros_like(t)
    for _ in range(3):
        f = rng.uniform(*hz)
        out += np.sin(2 * math.pi * f * t / 1000.0 + rng.uniform(0, 2 * math.pi))
    return np.asarray(out / 3.0 * math.sqrt(2.0), dtype=np.float64)


def blink_profile(t: Floats, centres_ms: Sequence[float], close_ms: float = 70.0) -> Floats:
    """0..1 bumps shaped like a blink: a fast close (``close_ms``), a slower reopening."""
    out = np.zeros_like(t)
    for c in centres_ms:
        d = t - c
        rise = np.exp(-0.5 * (d / close_ms) ** 2)
        fall = np.exp(-0.5 * (d / (1.8 * close_ms)) ** 2)
        out = np.maximum(out, np.where(d < 0, rise, fall))
    return out


def poses(
    species: str, times_ms: Floats, rng: np.random.Generator, dips_ms: Sequence[float] | None
) -> list[Pose]:
    """The sheet's state at every time of ``times_ms`` for ``species`` (seeded by ``rng``)."""
    motions = _motions(species)
    t = np.asarray(times_ms, dtype=np.float64)
    zero = np.zeros_like(t)
    tremor = 1.5 + rng.uniform(0, 1.5)
    tx = tremor * _wave(rng, t, (2.0, 6.0))
    ty = tremor * _wave(rng, t, (2.0, 6.0))
    roll = math.radians(1.0) * _wave(rng, t, (0.5, 3.0)) + math.radians(rng.uniform(-6, 6))
    yaw = math.radians(rng.uniform(-8, 8)) + zero
    pitch = math.radians(rng.uniform(-8, 8)) + zero
    scale = 1.0 + 0.01 * _wave(rng, t, (0.5, 2.0))
    bend_v, bend_h, fold = zero.copy(), zero.copy(), zero.copy()
    gain = 1.0 + 0.03 * _wave(rng, t, (0.2, 1.0))
    if "bent" in motions:
        amp = rng.uniform(0.35, 0.9)
        wave = 0.5 + 0.5 * _wave(rng, t, (0.3, 0.9))
        if rng.random() < 0.6:
            bend_v = amp * wave * rng.choice([-1.0, 1.0])
        else:
            bend_h = amp * wave * rng.choice([-1.0, 1.0])
    if "rotated" in motions:
        yaw = yaw + math.radians(rng.uniform(20, 35)) * _wave(rng, t, (0.2, 0.6))
        pitch = pitch + math.radians(rng.uniform(15, 30)) * _wave(rng, t, (0.2, 0.6))
        roll = roll + math.radians(rng.uniform(5, 15)) * _wave(rng, t, (0.2, 0.5))
    if "moved" in motions:
        tx = tx + rng.uniform(40, 90) * _wave(rng, t, (0.2, 0.7))
        ty = ty + rng.uniform(20, 50) * _wave(rng, t, (0.2, 0.7))
        scale = scale + rng.uniform(0.08, 0.18) * _wave(rng, t, (0.15, 0.5))
        roll = roll + math.radians(rng.uniform(4, 10)) * _wave(rng, t, (0.2, 0.6))
    if "blink" in motions:
        if dips_ms is None:
            span = float(t[-1] - t[0])
            count = int(rng.integers(1, 4))
            dips_ms = sorted(
                float(t[0]) + span * (0.2 + 0.6 * (i + rng.uniform(0.2, 0.8)) / count)
                for i in range(count)
            )
        bump = blink_profile(t, dips_ms, close_ms=rng.uniform(45, 80))
        # measured (docs/authenticity.md): snapping the sheet back along a crease just under the
        # eyes by 60-78 degrees makes dlib's lids close while its brows keep their place, so the
        # openness dips 30-60 %; cylinder bends and tilts of the whole sheet barely move it
        if rng.random() < 0.8:
            fold = fold + math.radians(rng.uniform(60, 78)) * bump
        else:
            pitch = pitch + math.radians(rng.uniform(45, 60)) * bump * rng.choice([-1.0, 1.0])
    return [
        Pose(
            float(bend_v[i]),
            float(bend_h[i]),
            float(fold[i]),
            float(yaw[i]),
            float(pitch[i]),
            float(roll[i]),
            float(tx[i]),
            float(ty[i]),
            float(scale[i]),
            float(gain[i]),
        )
        for i in range(len(t))
    ]


# --- rendering ----------------------------------------------------------------------------------


def _bend_maps(
    shape: tuple[int, int], pose: Pose, fold_y: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Inverse maps (and shading) of the bent sheet seen from the front (orthographic)."""
    h, w = shape
    ys = np.arange(h, dtype=np.float64) - h / 2.0
    xs = np.arange(w, dtype=np.float64) - w / 2.0
    src_y, shade_y = ys.copy(), np.ones(h)
    if abs(pose.bend_v) > 1e-3:
        radius = (h / 2.0) / abs(pose.bend_v)
        ratio = np.clip(ys / radius, -1.0, 1.0)
        src_y = radius * np.arcsin(ratio)
        src_y[np.abs(ys / radius) > math.sin(min(abs(pose.bend_v), math.pi / 2))] = 1e6
        shade_y = np.sqrt(np.clip(1 - ratio**2, 0, 1))
    if pose.fold > 1e-3:
        f = fold_y - h / 2.0
        c = max(math.cos(pose.fold), 0.05)
        above = ys < f
        src_y = np.where(above, f - (f - src_y) / c, src_y)
        shade_y = np.where(above, shade_y * (0.75 + 0.25 * c), shade_y)
    src_x, shade_x = xs.copy(), np.ones(w)
    if abs(pose.bend_h) > 1e-3:
        radius = (w / 2.0) / abs(pose.bend_h)
        ratio = np.clip(xs / radius, -1.0, 1.0)
        src_x = radius * np.arcsin(ratio)
        src_x[np.abs(xs / radius) > math.sin(min(abs(pose.bend_h), math.pi / 2))] = 1e6
        shade_x = np.sqrt(np.clip(1 - ratio**2, 0, 1))
    map_x = np.broadcast_to((src_x + w / 2.0)[None, :], (h, w)).astype(np.float32)
    map_y = np.broadcast_to((src_y + h / 2.0)[:, None], (h, w)).astype(np.float32)
    shade = (0.8 + 0.2 * shade_y[:, None] * shade_x[None, :]).astype(np.float32)
    return map_x, map_y, shade


def _homography(
    sheet_hw: tuple[int, int], size: tuple[int, int], pose: Pose, base_scale: float
) -> npt.NDArray[np.float64]:
    """Perspective of the (flat) sheet rotated in 3D, scaled and moved in the frame."""
    h, w = sheet_hw
    fw, fh = size
    focal = 1.3 * fw
    cy, sy = math.cos(pose.yaw), math.sin(pose.yaw)
    cp, sp = math.cos(pose.pitch), math.sin(pose.pitch)
    cr, sr = math.cos(pose.roll), math.sin(pose.roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    rot = r_roll @ r_pitch @ r_yaw
    s = base_scale * pose.scale
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    pts3 = np.c_[(corners - [w / 2, h / 2]) * s, np.zeros(4)] @ rot.T
    pts3[:, 2] += focal
    proj = focal * pts3[:, :2] / pts3[:, 2:3] + [fw / 2 + pose.tx, fh / 2 + pose.ty]
    import cv2

    return np.asarray(
        cv2.getPerspectiveTransform(corners.astype(np.float32), proj.astype(np.float32)),
        dtype=np.float64,
    )


_GRAIN: dict[tuple[int, ...], npt.NDArray[np.float32]] = {}


def _grain(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> Floats32:
    """Camera noise of standard deviation ``sigma``: a window of a larger unit-noise field at a
    random offset (drawing fresh Gaussian noise for every frame costs more than the rest)."""
    import cv2

    field = _GRAIN.get(shape)
    if field is None:
        field = np.empty((shape[0] + 64, shape[1] + 64, *shape[2:]), np.float32)
        cv2.setRNGSeed(12345)
        cv2.randn(field, 0.0, 1.0)
        _GRAIN[shape] = field
    y, x = int(rng.integers(0, 64)), int(rng.integers(0, 64))
    return np.asarray(field[y : y + shape[0], x : x + shape[1]] * sigma, dtype=np.float32)


def render(
    sheet: Image,
    bg: Image,
    pose: Pose,
    *,
    fold_y: float,
    base_scale: float,
    thumb: tuple[float, float, float, tuple[float, float, float]],
    noise: float,
    quality: int,
    rng: np.random.Generator,
) -> Image:
    """One camera frame of the sheet in ``pose`` over ``bg`` (noise, JPEG: as a webcam films it)."""
    import cv2

    h, w = sheet.shape[:2]
    if abs(pose.bend_v) > 1e-3 or abs(pose.bend_h) > 1e-3 or pose.fold > 1e-3:
        map_x, map_y, shade = _bend_maps((h, w), pose, fold_y)
        bent = cv2.remap(sheet, map_x, map_y, cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        alpha = cv2.remap(
            np.full((h, w), 255, np.uint8), map_x, map_y, cv2.INTER_LINEAR, borderValue=0
        )
    else:
        bent, alpha = sheet.copy(), np.full((h, w), 255, np.uint8)
        shade = np.ones((h, w), np.float32)
    # a thumb holding the bottom edge
    tx, _, r, colour = thumb
    cv2.ellipse(
        bent, (round(tx * w), round(h - 2)), (round(r), round(1.4 * r)), 0, 0, 360, colour, -1
    )
    cv2.ellipse(
        alpha, (round(tx * w), round(h - 2)), (round(r), round(1.4 * r)), 0, 0, 360, 255, -1
    )
    lit = bent.astype(np.float32) * (shade * pose.gain)[..., None]
    hom = _homography((h, w), (bg.shape[1], bg.shape[0]), pose, base_scale)
    fw, fh = bg.shape[1], bg.shape[0]
    warped = cv2.warpPerspective(lit, hom, (fw, fh), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(alpha, hom, (fw, fh), flags=cv2.INTER_LINEAR).astype(np.float32)
    mask = cv2.GaussianBlur(mask, (3, 3), 0)[..., None] / 255.0
    scene = bg.astype(np.float32) * pose.gain
    frame = scene * (1 - mask) + warped * mask
    frame += _grain(frame.shape, noise, rng)
    out = np.clip(frame, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), dtype=np.uint8)


def print_attack(
    photo: Image,
    face_box: tuple[int, int, int, int],
    species: str,
    seed: int,
    *,
    fps: float = 30.0,
    duration_ms: float = 4000.0,
    size: tuple[int, int] = SIZE,
    dips_ms: Sequence[float] | None = None,
    eye_y: float | None = None,
) -> Timed:
    """A printed-photo attack clip of ``species`` from ``photo`` (BGR) whose face is
    ``face_box`` (left, top, right, bottom): ``(bgr, t_ms)`` frames in memory.

    ``dips_ms`` fixes when a ``print_blink`` sheet is snapped (default: 1-3 random moments);
    ``eye_y`` is the eyes' height in ``photo`` (the fold's crease; default: 40 % of the box).
    """
    rng = np.random.default_rng(seed)
    left, top, right, bottom = face_box
    crop = face_crop(photo, face_box)
    # where the face box lands in the crop
    cx0 = max(0, round((left + right) / 2 - 1.1 * (right - left)))
    cy0 = max(0, round((top + bottom) / 2 - 0.1 * (bottom - top) - 1.35 * (bottom - top)))
    target_face = rng.uniform(0.32, 0.45) * size[1]
    sheet = print_sheet(crop, bottom - top, target_face, rng)
    s = target_face / (bottom - top)
    margin = round(0.04 * max(round(crop.shape[0] * s), round(crop.shape[1] * s)))
    eye = eye_y if eye_y is not None else top + 0.4 * (bottom - top)
    fold_y = margin + (eye - cy0) * s + rng.uniform(0.03, 0.10) * target_face
    del cx0
    bg = background(size, rng)
    skin = (rng.uniform(90, 150), rng.uniform(120, 170), rng.uniform(170, 220))
    thumb = (rng.uniform(0.3, 0.7), 0.0, rng.uniform(0.05, 0.08) * sheet.shape[1], skin)
    noise = rng.uniform(1.5, 4.0)
    quality = int(rng.integers(70, 93))
    n = max(2, round(duration_ms * fps / 1000.0))
    times = np.arange(n, dtype=np.float64) * 1000.0 / fps
    # the sheet fills about 0.3-0.45 of the frame height with its face (target_face)
    return [
        (
            render(
                sheet,
                bg,
                p,
                fold_y=fold_y,
                base_scale=1.0,
                thumb=thumb,
                noise=noise,
                quality=quality,
                rng=rng,
            ),
            float(t),
        )
        for p, t in zip(poses(species, times, rng, dips_ms), times, strict=True)
    ]


# --- sources ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A photo to print: a shared still or a single frame of a live clip, with its face box."""

    name: str
    bgr: Image
    box: tuple[int, int, int, int]
    eye_y: float


def sources(data: Path, models: object, *, limit: int | None = None) -> list[Source]:
    """Photos to print from ../shared/data: one still of each person in faces/, the spoof
    stills, and one frame (the first) of each live clip. Faces are found with ``models``
    (:class:`~ecard.faces.models.FaceModels`); pictures without exactly one clear face are
    skipped."""
    import cv2

    from ecard.liveness.media import folder_frames, iter_video
    from ecard.liveness.policy import MediaLimits

    paths: list[tuple[str, Image]] = []
    faces = data / "faces"
    if faces.is_dir():
        for person in sorted(p for p in faces.iterdir() if p.is_dir() and p.name[0] != "_"):
            files = sorted(person.iterdir())
            if files:
                img = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
                if img is not None:
                    paths.append((f"faces/{person.name}/{files[0].name}", img))
    stills = data / "blink" / "spoof_stills"
    if stills.is_dir():
        for f in sorted(stills.iterdir()):
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)  # applies the EXIF orientation
            if img is not None:
                paths.append((f"spoof_stills/{f.name}", img))
    for clip in (
        "videos/r4onlyrishabh-blink-detector__default1.mp4",
        "videos/repeating-Blink-Detector__video.mp4",
        "videos/jakubvlk-BlinkRate__blink.mov",
        "nuaa_photo_attack/live_0001_00_00_01",
        "nuaa_photo_attack/live_0008_00_00_02",
    ):
        path = data / "blink" / clip
        if path.is_dir():
            first = folder_frames(path)[0]
            img = cv2.imread(str(first), cv2.IMREAD_COLOR)
            if img is not None:
                paths.append((clip, img))
        elif path.exists():
            frame = next(iter(iter_video(path, MediaLimits())), None)
            if frame is not None:
                paths.append((clip, frame[0]))
    out: list[Source] = []
    for name, img in paths:
        h, w = img.shape[:2]
        if max(h, w) > 1000:
            f = 1000 / max(h, w)
            img = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        boxes = models.detect(gray, 1 if max(img.shape[:2]) < 500 else 0)  # type: ignore[attr-defined]
        if len(boxes) != 1 or boxes[0].height < 60:
            continue
        b = boxes[0]
        marks = models.landmarks(gray, b)  # type: ignore[attr-defined]
        eye_y = float(np.mean(marks[36:48, 1]))
        out.append(Source(name, img, (b.left, b.top, b.right, b.bottom), eye_y))
        if limit is not None and len(out) >= limit:
            break
    return out
