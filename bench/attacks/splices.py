"""Identity attacks: the victim's face in some seconds, another person blinking in the others.

Species (issue 10, section 1):

* ``swap_photo``: the victim's registry photo scaled up on a grey card in seconds 0-1, 2-3, 4-5
  and a live stranger blinking in seconds 1-2 and 3-4 (hard cuts);
* ``swap_frames``: the same pattern with the victim's own live frames instead of the photo;
* ``crossfade``: the victim fades into the stranger over ``fade_ms`` (400 ms) and back;
* ``morph``: a slow linear blend from the victim to the stranger over the whole clip (no cut at
  all, every consecutive pair of frames nearly identical).

Frames are built in memory as ``(bgr, t_ms)`` (never written to disk), all at one size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Timed = list[tuple[Image, float]]

SIZE = (640, 480)  # width, height of every generated frame
SPECIES = ("swap_photo", "swap_frames", "crossfade", "morph")


def fit(bgr: Image, size: tuple[int, int] = SIZE, grey: int = 128) -> Image:
    """``bgr`` scaled to fit ``size`` (aspect kept) and centred on a grey card."""
    import cv2

    w, h = size
    ih, iw = bgr.shape[:2]
    scale = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
    resized = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_CUBIC)
    out = np.full((h, w, 3), grey, dtype=np.uint8)
    x0, y0 = (w - nw) // 2, (h - nh) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = resized
    return out


def photo_card(photo: Image, size: tuple[int, int] = SIZE) -> Image:
    """A registry photo (e.g. 102 x 126) scaled up to ~70 % of the frame height on grey."""
    import cv2

    h = size[1]
    ph, pw = photo.shape[:2]
    scale = 0.7 * h / ph
    big = cv2.resize(photo, (round(pw * scale), round(ph * scale)), interpolation=cv2.INTER_CUBIC)
    return fit(big, size)


def clip_frames(path: Path, fps: float | None = None, max_ms: float = 10_000) -> Timed:
    """A shared clip decoded and fitted to :data:`SIZE` (frames in memory)."""
    from ecard.liveness.media import iter_video
    from ecard.liveness.policy import MediaLimits

    frames: Timed = []
    for bgr, t in iter_video(path, MediaLimits()):
        if t > max_ms:
            break
        frames.append((fit(bgr), t))
    return frames


def _at(frames: Timed, t_ms: float) -> Image:
    """The frame of ``frames`` shown at ``t_ms`` (looping)."""
    span = frames[-1][1] + (frames[-1][1] - frames[0][1]) / max(1, len(frames) - 1)
    t = t_ms % span if span > 0 else 0.0
    times = [f[1] for f in frames]
    k = int(np.searchsorted(times, t, side="right")) - 1
    return frames[max(0, k)][0]


def _source(victim: Image | Timed, t_ms: float) -> Image:
    return victim if isinstance(victim, np.ndarray) else _at(victim, t_ms)


def swap(
    victim: Image | Timed,
    stranger: Timed,
    *,
    duration_ms: float = 5000,
    fps: float = 30.0,
    victim_seconds: Sequence[int] = (0, 2, 4),
) -> Timed:
    """Hard cuts: the victim (a card or frames) in ``victim_seconds``, the stranger between."""
    out: Timed = []
    step = 1000.0 / fps
    t = 0.0
    while t < duration_ms:
        second = int(t // 1000)
        frame = _source(victim, t) if second in victim_seconds else _at(stranger, t)
        out.append((frame.copy(), t))
        t += step
    return out


def crossfade(
    victim: Image | Timed,
    stranger: Timed,
    *,
    duration_ms: float = 5000,
    fps: float = 30.0,
    fade_ms: float = 400,
    victim_seconds: Sequence[int] = (0, 2, 4),
) -> Timed:
    """Like :func:`swap`, but each change of person is a linear blend over ``fade_ms``."""
    out: Timed = []
    step = 1000.0 / fps
    t = 0.0

    def weight(t_ms: float) -> float:
        """1.0 = victim, 0.0 = stranger, ramping around each second boundary."""
        w = 1.0 if int(t_ms // 1000) in victim_seconds else 0.0
        for boundary in range(1, int(duration_ms // 1000) + 1):
            b = boundary * 1000.0
            if abs(t_ms - b) < fade_ms / 2:
                before = 1.0 if (boundary - 1) in victim_seconds else 0.0
                after = 1.0 if boundary in victim_seconds else 0.0
                x = (t_ms - (b - fade_ms / 2)) / fade_ms
                w = before + (after - before) * x
        return w

    while t < duration_ms:
        w = weight(t)
        a = _source(victim, t).astype(np.float32)
        b = _at(stranger, t).astype(np.float32)
        out.append((np.clip(w * a + (1 - w) * b, 0, 255).astype(np.uint8), t))
        t += step
    return out


def morph(
    victim: Image | Timed, stranger: Timed, *, duration_ms: float = 6000, fps: float = 30.0
) -> Timed:
    """A slow blend from the victim (t = 0) to the stranger (t = duration): no cut anywhere."""
    out: Timed = []
    step = 1000.0 / fps
    t = 0.0
    while t < duration_ms:
        w = 1.0 - t / duration_ms
        a = _source(victim, t).astype(np.float32)
        b = _at(stranger, t).astype(np.float32)
        out.append((np.clip(w * a + (1 - w) * b, 0, 255).astype(np.uint8), t))
        t += step
    return out


def generate(species: str, victim: Image | Timed, stranger: Timed) -> Timed:
    """One attack clip of ``species`` (see :data:`SPECIES`)."""
    if species in ("swap_photo", "swap_frames"):
        return swap(victim, stranger)
    if species == "crossfade":
        return crossfade(victim, stranger)
    if species == "morph":
        return morph(victim, stranger)
    raise ValueError(f"unknown species {species!r}")
