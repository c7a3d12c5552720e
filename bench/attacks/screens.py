"""Screen replay attacks: a live clip played on a phone or monitor and filmed by a camera.

The replayed content keeps its real blinks (the frames are shown at their own times), which is
the hard case: a blink-only check passes it. What a screen adds is physical, and each step here
models one thing a camera sees when it films a display:

1. **Display transfer.** The content goes through the panel's tone curve and gamut: a raised
   black level (backlight leak and room light reflected by the glass), a lower white, a gamma
   change, less saturation and a colour cast (most panels run cool, some warm).
2. **Pixel grid.** The content is resampled onto the panel's pixel grid, each pixel drawn as
   three vertical R, G, B stripes with a dark gap. The grid is projected into the camera and
   sampled at its pixel centres with only the lens blur as a prefilter (as a sensor samples
   it), so its frequencies alias into moire.
3. **Geometry.** The panel is a plane seen under a homography: a slight tilt (perspective),
   rotation and scale, with hand tremor and slow drift over time (smooth seeded paths). With
   ``fill=False`` the device body (bezel) and the room behind it are in view; with ``fill=True``
   the camera is so close that the panel fills the frame (no bezel, the hard case).
4. **Glare.** A soft specular reflection of a light source on the glass, fixed in the room (so
   it slides over the content as the device moves).
5. **Camera.** Sensor noise, 8-bit quantisation and JPEG recompression.

Deterministic for a seed; frames live in memory only, as ``(bgr, t_ms)``.

Usage::

    from bench.attacks import screens
    frames = screens.clip_frames(path, max_ms=6000)         # a live clip, in memory
    attack = screens.screen_replay(frames, seed=1, device="phone", fill=False)
    for name, cfg in screens.VARIANTS.items(): ...           # the suite the bench runs
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Timed = list[tuple[Image, float]]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ScreenSetup:
    """One way of filming a screen. Ranges are drawn per clip from the seed."""

    device: str = "phone"  # "phone" (thick black bezel, held in the hand) or "monitor"
    fill: bool = False  # the panel fills the frame: no bezel in view
    camera: tuple[int, int] = (640, 480)  # width, height of the filming camera's frames
    #: panel size in camera pixels relative to the frame height (fill: > 1)
    screen_height: float = 0.8
    #: camera pixels per panel pixel (pitch): near 1 the grid aliases into visible moire
    pitch: tuple[float, float] = (0.8, 1.6)
    black: tuple[float, float] = (0.05, 0.12)  # panel black level (fraction of white)
    white: tuple[float, float] = (0.78, 0.95)
    gamma: tuple[float, float] = (0.85, 1.2)
    saturation: tuple[float, float] = (0.7, 0.92)
    glare: tuple[float, float] = (0.15, 0.45)  # peak of the specular reflection
    tilt_deg: tuple[float, float] = (4.0, 12.0)  # out-of-plane tilt (perspective)
    jpeg: tuple[int, int] = (60, 85)
    noise: tuple[float, float] = (1.5, 3.0)  # sensor noise, grey levels


#: the suite: phone and monitor, bezel in view or panel filling the frame
VARIANTS: dict[str, ScreenSetup] = {
    "phone_bezel": ScreenSetup(device="phone", fill=False, camera=(480, 640), screen_height=0.78),
    "phone_fill": ScreenSetup(device="phone", fill=True, camera=(480, 640), screen_height=1.12),
    "monitor_bezel": ScreenSetup(
        device="monitor", fill=False, camera=(640, 480), screen_height=0.7
    ),
    "monitor_fill": ScreenSetup(device="monitor", fill=True, camera=(640, 480), screen_height=1.1),
}


def clip_frames(path: Path, *, max_ms: float = 10_000, fps: float | None = None) -> Timed:
    """A shared clip (file or frame folder) decoded into memory, optionally thinned to ``fps``."""
    from ecard.liveness.media import iter_video
    from ecard.liveness.policy import MediaLimits

    frames: Timed = []
    last = -1e18
    for bgr, t in iter_video(path, MediaLimits()):
        if t > max_ms:
            break
        if fps is not None and t - last < 1000.0 / fps - 1e-6:
            continue
        last = t
        frames.append((bgr, t))
    return frames


def _u(rng: np.random.Generator, span: tuple[float, float]) -> float:
    return float(rng.uniform(span[0], span[1]))


def _path(rng: np.random.Generator, amplitude: float, hz: tuple[float, float]) -> list[float]:
    """A smooth random path: three sinusoids with random phases (returns [a, f, phase] * 3)."""
    out: list[float] = []
    for _ in range(3):
        out += [amplitude * float(rng.uniform(0.3, 1.0)), _u(rng, hz), _u(rng, (0, 2 * math.pi))]
    return out


def _eval(path: Sequence[float], t_s: float) -> float:
    return sum(
        path[i] * math.sin(2 * math.pi * path[i + 1] * t_s + path[i + 2])
        for i in range(0, len(path), 3)
    )


def _display(
    content: Image, black: float, white: float, gamma: float, sat: float, cast: F32
) -> F32:
    """Panel tone curve and gamut: 0..1 float BGR of what the panel emits."""
    x = content.astype(np.float32) / 255.0
    luma = x @ np.array([0.114, 0.587, 0.299], dtype=np.float32)
    x = luma[..., None] + sat * (x - luma[..., None])
    x = np.clip(x, 0.0, 1.0) ** gamma
    x = x * cast
    return np.asarray(black + (white - black) * np.clip(x, 0.0, 1.0), dtype=np.float32)


#: std of the camera's optical blur plus pixel integration, in camera pixels
LENS_SIGMA = 0.3


def _grid(u: F32, v: F32, pitch: float) -> F32:
    """Per-channel transmission (mean 1) of the panel's pixel grid at panel coordinates (u, v).

    Each panel pixel is three vertical stripes (R, G, B from left, a third of the cell each)
    over 80 % of its height (the black matrix fills the rest). The stripes are written as a
    Fourier series whose harmonics are attenuated by the camera's blur (:data:`LENS_SIGMA`,
    converted to panel pixels through ``pitch``) and then *sampled* at the camera's pixel
    centres: frequencies above the camera's Nyquist fold back as moire, as on a real sensor.
    """
    out = np.empty((*u.shape, 3), dtype=np.float32)
    duty_c, duty_r = 1 / 3, 0.8
    rows = np.ones_like(v)
    cols = [np.ones_like(u) for _ in range(3)]
    for k in (1, 2, 3):
        att = math.exp(-2 * math.pi**2 * (LENS_SIGMA * k / pitch) ** 2)
        if att < 1e-3:
            break
        w = np.float32(2 * math.pi * k)
        coef_r = 2 * math.sin(math.pi * k * duty_r) / (math.pi * k * duty_r) * att
        rows += np.float32(coef_r) * np.cos(w * (v - np.float32(0.5)))
        cu, su = np.cos(w * u), np.sin(w * u)
        coef_c = 2 * math.sin(math.pi * k * duty_c) / (math.pi * k * duty_c) * att
        for i, centre in enumerate((1 / 6, 1 / 2, 5 / 6)):  # R, G, B stripe centres
            phase = 2 * math.pi * k * centre
            cols[i] += np.float32(coef_c * math.cos(phase)) * cu
            cols[i] += np.float32(coef_c * math.sin(phase)) * su
    for i, channel in enumerate((2, 1, 0)):  # R, G, B -> BGR index
        out[..., channel] = cols[i] * rows
    return out


def _homography(
    corners_src: npt.NDArray[np.float32], corners_dst: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    import cv2

    return np.asarray(cv2.getPerspectiveTransform(corners_src, corners_dst), dtype=np.float64)


def _quad(
    cx: float, cy: float, w: float, h: float, angle: float, tilt_x: float, tilt_y: float
) -> npt.NDArray[np.float32]:
    """Image corners (tl, tr, br, bl) of a w x h plane centred at (cx, cy): turned by
    ``tilt_x`` about its vertical axis and ``tilt_y`` about its horizontal axis (radians), seen
    by a pinhole camera at a distance of 1.5 plane heights, then rotated by ``angle`` in view."""
    focal = 1.5 * max(w, h)
    cyx, syx = math.cos(tilt_x), math.sin(tilt_x)
    cyy, syy = math.cos(tilt_y), math.sin(tilt_y)
    ca, sa = math.cos(angle), math.sin(angle)
    pts = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        x, y, z = sx * w / 2, sy * h / 2, 0.0
        x, z = cyx * x + syx * z, -syx * x + cyx * z
        y, z = cyy * y - syy * z, syy * y + cyy * z
        u, v = focal * x / (focal + z), focal * y / (focal + z)
        pts.append((cx + ca * u - sa * v, cy + sa * u + ca * v))
    return np.array(pts, dtype=np.float32)


def _room(rng: np.random.Generator, w: int, h: int) -> F32:
    """A plain, face-free room behind the device: a lit wall gradient, a shelf edge, texture."""
    import cv2

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.array(rng.uniform(0.35, 0.7, 3), dtype=np.float32)
    grad = 0.75 + 0.35 * (xx / w) * float(rng.uniform(-1, 1)) + 0.25 * (yy / h)
    room = grad[..., None] * base
    low = rng.normal(0, 1, (max(2, h // 40), max(2, w // 40), 3)).astype(np.float32)
    room += 0.05 * cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    edge = int(rng.uniform(0.75, 0.9) * h)
    room[edge:] *= float(rng.uniform(0.5, 0.8))  # a table top
    return np.asarray(np.clip(room, 0, 1), dtype=np.float32)


def screen_replay(
    frames: Sequence[tuple[Image, float]],
    *,
    seed: int,
    setup: ScreenSetup | None = None,
    device: str | None = None,
    fill: bool | None = None,
) -> Timed:
    """``frames`` (a live clip, in order) replayed on a screen and filmed: ``(bgr, t_ms)``.

    The output has one frame per input frame at the same times, so the content's blinks stay
    where they were.
    """
    import cv2

    cfg = setup or ScreenSetup()
    if device is not None:
        cfg = replace(cfg, device=device)
    if fill is not None:
        cfg = replace(cfg, fill=fill)
    rng = np.random.default_rng(seed)
    cam_w, cam_h = cfg.camera
    ch, cw = frames[0][0].shape[:2]
    aspect = cw / ch  # the device is turned to match the content (portrait or landscape)
    if cfg.device == "monitor":
        aspect = max(aspect, 16 / 10)  # a monitor is landscape: portrait content is pillarboxed
    scr_h = cfg.screen_height * cam_h
    scr_w = scr_h * aspect
    if cfg.fill:  # close enough that the panel covers the frame both ways
        scr_w = max(scr_w, 1.08 * cam_w)
        scr_h = max(scr_h, scr_w / aspect, 1.08 * cam_h)
        scr_w = scr_h * aspect
    elif scr_w > 0.9 * cam_w:
        scr_w = 0.9 * cam_w
        scr_h = scr_w / aspect
    pitch = _u(rng, cfg.pitch)
    pan_w, pan_h = max(16, round(scr_w / pitch)), max(16, round(scr_h / pitch))
    black, white = _u(rng, cfg.black), _u(rng, cfg.white)
    gamma, sat = _u(rng, cfg.gamma), _u(rng, cfg.saturation)
    warm = rng.uniform() < 0.3
    cast = np.array((0.9, 0.97, 1.06) if warm else (1.08, 1.0, 0.9), dtype=np.float32) * np.array(
        rng.uniform(0.97, 1.03, 3), dtype=np.float32
    )
    glare_peak = _u(rng, cfg.glare)
    glare_xy = (float(rng.uniform(0.2, 0.8)) * cam_w, float(rng.uniform(0.1, 0.5)) * cam_h)
    glare_r = float(rng.uniform(0.12, 0.3)) * cam_h
    tilt = math.radians(_u(rng, cfg.tilt_deg))
    tilt_dir = float(rng.uniform(0, 2 * math.pi))
    jpeg = int(rng.integers(cfg.jpeg[0], cfg.jpeg[1] + 1))
    noise = _u(rng, cfg.noise)
    hand = 0.012 if cfg.device == "phone" else 0.004  # tremor, fraction of the frame
    paths = {
        "x": _path(rng, hand * cam_w, (0.3, 2.0)),
        "y": _path(rng, hand * cam_h, (0.3, 2.0)),
        "a": _path(rng, math.radians(2.0 if cfg.device == "phone" else 0.5), (0.1, 0.8)),
        "s": _path(rng, 0.02, (0.1, 0.5)),
    }
    room = _room(rng, cam_w, cam_h)
    bezel = 0.06 * scr_h if cfg.device == "phone" else 0.025 * scr_h
    body_colour = np.array(rng.uniform(0.03, 0.12, 3), dtype=np.float32)
    yy, xx = np.mgrid[0:cam_h, 0:cam_w].astype(np.float32)
    glare = np.exp(-((xx - glare_xy[0]) ** 2 + (yy - glare_xy[1]) ** 2) / (2 * glare_r**2))
    glare = glare_peak * glare.astype(np.float32)

    src = np.array([[0, 0], [pan_w, 0], [pan_w, pan_h], [0, pan_h]], dtype=np.float32)
    out: Timed = []
    t0 = frames[0][1]
    for bgr, t_ms in frames:
        ts = (t_ms - t0) / 1000.0
        cx = cam_w / 2 + _eval(paths["x"], ts)
        cy = cam_h / 2 + _eval(paths["y"], ts)
        angle = _eval(paths["a"], ts)
        s = 1.0 + _eval(paths["s"], ts)
        tx, ty = tilt * math.cos(tilt_dir), tilt * math.sin(tilt_dir)
        quad = _quad(cx, cy, scr_w * s, scr_h * s, angle, tx, ty)
        # content letterboxed into the panel (a monitor shows portrait video pillarboxed)
        panel_content = np.zeros((pan_h, pan_w, 3), dtype=np.uint8)
        k = min(pan_w / bgr.shape[1], pan_h / bgr.shape[0])
        nw, nh = max(1, round(bgr.shape[1] * k)), max(1, round(bgr.shape[0] * k))
        resized = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA)
        ox, oy = (pan_w - nw) // 2, (pan_h - nh) // 2
        panel_content[oy : oy + nh, ox : ox + nw] = resized
        panel = _display(panel_content, black, white, gamma, sat, cast)
        hom = _homography(src, quad)
        m = [float(x) for x in np.linalg.inv(hom).reshape(-1)]
        den = m[6] * xx + m[7] * yy + m[8]
        u = (m[0] * xx + m[1] * yy + m[2]) / den
        v = (m[3] * xx + m[4] * yy + m[5]) / den
        screen = cv2.remap(
            panel, u - 0.5, v - 0.5, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        inside = (u >= 0) & (u < pan_w) & (v >= 0) & (v < pan_h)
        alpha = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 0.7)
        screen = screen * _grid(u, v, pitch)
        screen = cv2.GaussianBlur(screen, (0, 0), 0.6)  # the lens
        img = room.copy()
        if not cfg.fill:
            body = _quad(cx, cy, scr_w * s + 2 * bezel, scr_h * s + 2.6 * bezel, angle, tx, ty)
            cv2.fillConvexPoly(
                img, np.round(body).astype(np.int32), body_colour.tolist(), cv2.LINE_AA
            )
        img = img * (1 - alpha[..., None]) + screen * alpha[..., None]
        img += (glare * alpha)[..., None]  # the reflection is on the glass only
        img = img * 255.0 + np.float32(noise) * rng.standard_normal(img.shape, dtype=np.float32)
        cam = np.clip(img, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", cam, [cv2.IMWRITE_JPEG_QUALITY, jpeg])
        assert ok
        out.append((np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), dtype=np.uint8), t_ms))
    return out


def generate(variant: str, frames: Sequence[tuple[Image, float]], seed: int = 0) -> Timed:
    """One attack clip of a :data:`VARIANTS` entry."""
    return screen_replay(frames, seed=seed, setup=VARIANTS[variant])
