"""Blinks in an eye-openness series: per-face baseline, closure depth, shape and duration.

The detector never uses an absolute threshold, so it works on any landmark scheme (dlib's 68
points, MediaPipe's mesh) and on any face: values are divided by a rolling open-eye baseline
and compared with the series' own noise. See :class:`~ecard.liveness.policy.BlinkPolicy` for
the knobs and docs/liveness.md for how they were calibrated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from ecard.errors import SeriesError
from ecard.liveness.policy import BlinkPolicy

Floats = npt.NDArray[np.float64]
ClosureKind = Literal["blink", "long_closure", "truncated", "rejected"]

#: inside a closure's core, excursions above the core level this short (ms) are crossed
CORE_BRIDGE_MS = 90.0
#: the longest series ``parse_series`` accepts (about 2 hours at 30 fps)
MAX_SERIES_LINES = 250_000


@dataclass(frozen=True)
class BlinkEvent:
    """One eye closure: frames ``start``..``end`` inclusive (0-based) and their times in ms.

    ``kind`` is ``"blink"`` for a counted blink, ``"long_closure"`` for a deliberate closure
    longer than the policy's ``max_blink_ms``, ``"truncated"`` for a closure cut by the
    start or end of the clip (its duration is unknown, so it is not counted), and ``"rejected"``
    for a blink-shaped dip that the liveness check does not count (``note`` says why: no face
    descriptor of the same track on both sides, or not an authentic blink). ``depth`` is the
    deepest relative drop under the open-eye baseline (0.4 = 40 % less open).
    """

    start: int
    end: int
    start_ms: int
    end_ms: int
    kind: ClosureKind
    depth: float
    note: str | None = None

    @property
    def is_blink(self) -> bool:
        return self.kind == "blink"

    def to_dict(self) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "kind": self.kind,
            "depth": round(self.depth, 3),
            **({"note": self.note} if self.note else {}),
        }


def eye_aspect_ratio(points: Floats) -> float:
    """Soukupová & Čech's EAR of one eye from its 6 landmarks (corner, 2 top, corner, 2 bottom)."""
    p = np.asarray(points, dtype=np.float64)
    width = float(np.linalg.norm(p[0] - p[3]))
    if width <= 0:
        return math.nan
    vertical = float(np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4]))
    return vertical / (2.0 * width)


def face_ear(landmarks: Floats) -> float:
    """Mean EAR of both eyes from dlib's 68 landmarks (points 36-41 and 42-47)."""
    return (eye_aspect_ratio(landmarks[36:42]) + eye_aspect_ratio(landmarks[42:48])) / 2.0


def _eye_openness(eye: Floats, brow: Floats) -> float:
    gap = (np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])) / 2.0
    lower_lid = (eye[4] + eye[5]) / 2.0
    height = float(np.linalg.norm(brow.mean(axis=0) - lower_lid))
    return float(gap) / height if height > 0 else math.nan


def face_openness(landmarks: Floats) -> float:
    """Eye opening over brow height (lid gap / distance from brow to lower lid), both eyes.

    Like EAR it falls when the eyes close, but both terms are vertical, so it does not drop when
    the head pitches down or a printed photo is bent (both shrink together), and it falls
    *more* than EAR in a real blink, because the upper lid moves away from the brow.
    """
    left, right = eye_openness(landmarks)
    return (left + right) / 2.0


def eye_openness(landmarks: Floats) -> tuple[float, float]:
    """:func:`face_openness` of each eye (the image's left eye first)."""
    return (
        _eye_openness(landmarks[36:42], landmarks[18:21]),
        _eye_openness(landmarks[42:48], landmarks[23:26]),
    )


def parse_series(text: str) -> list[float | None]:
    """Parse an EAR series: one number per line, ``None`` (or ``nan``) where no face was found.

    Blank lines at the end are ignored. Raises :class:`SeriesError` naming the first bad line.
    """
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise SeriesError("The EAR series is empty.")
    if len(lines) > MAX_SERIES_LINES:
        raise SeriesError(f"The EAR series has more than {MAX_SERIES_LINES} lines.")
    values: list[float | None] = []
    for number, raw in enumerate(lines, start=1):
        item = raw.strip()
        if item.lower() in ("none", "nan", "null"):
            values.append(None)
            continue
        try:
            value = float(item)
        except ValueError:
            shown = item[:40]
            raise SeriesError(
                f"Line {number} of the EAR series is not a number or None: {shown!r}."
            ) from None
        if not math.isfinite(value) or value < 0:
            raise SeriesError(f"Line {number} of the EAR series is not a finite value >= 0.")
        values.append(value)
    return values


def _times(n: int, fps: float | None, times_ms: Sequence[float] | None) -> Floats:
    if times_ms is not None:
        t = np.asarray(times_ms, dtype=np.float64)
        if t.shape != (n,):
            raise SeriesError("There must be one timestamp per value.")
        if n > 1 and not np.all(np.diff(t) > 0):
            raise SeriesError("Timestamps must increase strictly.")
        return t
    if fps is None or not math.isfinite(fps) or fps <= 0 or fps > 1000:
        raise SeriesError("The frame rate must be a number between 0 and 1000.")
    return np.arange(n, dtype=np.float64) * (1000.0 / fps)


def rolling_baseline(values: Floats, half_window: int, percentile: float) -> Floats:
    """The ``percentile`` of the non-missing values within ``half_window`` frames of each frame.

    Evaluated on every ``step``-th frame and interpolated in between, which keeps an 8-minute
    series at 30 fps under 0.1 s.
    """
    n = len(values)
    step = max(1, half_window // 8)
    centres = np.arange(0, n, step)
    if centres[-1] != n - 1:
        centres = np.append(centres, n - 1)
    out = np.full(len(centres), np.nan)
    for k, c in enumerate(centres):
        window = values[max(0, c - half_window) : c + half_window + 1]
        window = window[~np.isnan(window)]
        if window.size:
            out[k] = np.percentile(window, percentile)
    good = ~np.isnan(out)
    if not good.any():
        return np.full(n, np.nan)
    return np.interp(np.arange(n), centres[good], out[good])


def open_eye_noise(ratio: Floats, open_level: float) -> float:
    """Robust frame-to-frame noise of the openness ratio while the eyes are open.

    The MAD of the differences between consecutive open-eye frames, scaled to a standard
    deviation: blinks, long closures and slow drifts do not inflate it, landmark jitter and a
    photo being bent in front of the camera do.
    """
    both_open = (ratio[:-1] >= open_level) & (ratio[1:] >= open_level)
    diffs = np.diff(ratio)[both_open]
    if diffs.size < 3:
        return 0.0
    return 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2.0)


def required_depth(policy: BlinkPolicy, frame_ms: float) -> float:
    """The depth a blink must reach when frames are ``frame_ms`` apart.

    A blink keeps the eyes fully shut for only 50-100 ms, so below ``policy.full_depth_fps`` the
    frames often straddle the closed moment and the sampled minimum is shallower: the required
    depth shrinks in proportion to the frame rate, never under ``policy.min_depth_floor``.
    """
    fps = 1000.0 / frame_ms
    scale = min(1.0, fps / policy.full_depth_fps)
    return max(policy.min_depth_floor, policy.min_depth * scale)


def _cut_by_gap(valid: npt.NDArray[np.bool_], start: int, end: int) -> bool:
    """Whether the face is missing right before or after a closure (its shape is unknown)."""
    before = start - 1 >= 0 and not valid[start - 1]
    after = end + 1 < len(valid) and not valid[end + 1]
    return bool(before or after)


def _slow_fall(r: Floats, t: Floats, low: int, half: float, window_ms: float) -> bool:
    """Whether the eyes took longer than ``window_ms`` to fall the last ``half`` to ``low``.

    A blink shuts in about 0.1 s: within ``window_ms`` before its deepest frame the openness was
    at least ``half`` higher. Eyes drifting shut (gaze going down, drowsiness) fall slower.
    """
    k = low - 1
    highest = -math.inf
    while k >= 0 and t[k] >= t[low] - window_ms:
        if not np.isnan(r[k]):
            highest = max(highest, float(r[k]))
        k -= 1
    if highest == -math.inf:
        return False  # nothing before it within the window (edge or gap): no evidence
    return highest < float(r[low]) + half


def local_depth(r: Floats, t: Floats, low: int, core: tuple[int, int], window_ms: float) -> float:
    """Relative drop of the minimum ``low`` under the open level on each side of its core.

    Each side's open level is the highest value within ``window_ms`` before the core's first
    frame (after its last frame); the drop is taken from the lower of the two, so a blink must
    fall from open eyes *and* reopen them. A dip in eyes that stay narrowed before or after it
    (gaze going down, a squint) measures shallow here even where the rolling baseline is high.
    A side with no value in the window (edge, missing face) gives no evidence.
    """
    levels = []
    for edge, direction in ((core[0], -1), (core[1], 1)):
        k = edge + direction
        best = -math.inf
        while 0 <= k < len(r) and abs(float(t[k] - t[edge])) <= window_ms:
            if not np.isnan(r[k]):
                best = max(best, float(r[k]))
            k += direction
        if best > -math.inf:
            levels.append(best)
    if not levels or min(levels) <= 0:
        return 1.0
    return 1.0 - float(r[low]) / min(levels)


def _local_minima(r: Floats) -> list[int]:
    """Indices of local minima (plateaus give their first frame), deepest first."""
    n = len(r)
    found: list[int] = []
    i = 0
    while i < n:
        if np.isnan(r[i]):
            i += 1
            continue
        j = i
        while j + 1 < n and r[j + 1] == r[i]:
            j += 1
        left_ok = i == 0 or np.isnan(r[i - 1]) or r[i - 1] > r[i]
        right_ok = j == n - 1 or np.isnan(r[j + 1]) or r[j + 1] > r[i]
        if left_ok and right_ok:
            found.append(i)
        i = j + 1
    return sorted(found, key=lambda k: float(r[k]))


def _prominence(r: Floats, low: int, reach: int, need: float) -> float:
    """How far ``r`` rises on both sides of the minimum ``low`` before it falls below it again.

    Each side looks ``reach`` frames past the end of the closure (the last frame still within
    ``need / 2`` of the minimum, so a long closure is crossed whole); the smaller rise of the two
    sides is the prominence, or the only side's rise at the edge of the series.
    """
    value = r[low]
    rises = []
    for direction in (-1, 1):
        best = math.nan
        k = low + direction
        since_closed = 0
        ran_off = True
        while 0 <= k < len(r):
            x = r[k]
            if not np.isnan(x):
                if x < value:
                    ran_off = False
                    break
                best = x if math.isnan(best) else max(best, x)
                since_closed = 0 if x < value + need / 2 else since_closed + 1
            else:
                since_closed += 1
            if since_closed >= reach:
                ran_off = False
                break
            k += direction
        if ran_off and not best - value >= need:
            continue  # ran off the series still closed: this side is unknown, not flat
        if not math.isnan(best):
            rises.append(best - value)
    return float(min(rises)) if rises else 0.0


def _extent(r: Floats, low: int, level: float, max_gap: int, bridge: int = 0) -> tuple[int, int]:
    """The frames around ``low`` whose value stays at or under ``level``.

    Up to ``max_gap`` missing frames and ``bridge`` frames above the level (noise inside a long
    closure) are crossed when the value comes back under the level right after.
    """
    bounds = []
    for direction in (-1, 1):
        edge = k = low
        gap = above = 0
        while 0 <= k + direction < len(r):
            k += direction
            x = r[k]
            if np.isnan(x):
                gap += 1
                if gap > max_gap:
                    break
                continue
            if x > level:
                above += 1
                if above > bridge:
                    break
                continue
            edge, gap, above = k, 0, 0
        bounds.append(edge)
    return bounds[0], bounds[1]


def detect_blinks(
    values: Sequence[float | None] | Floats,
    *,
    fps: float | None = None,
    times_ms: Sequence[float] | None = None,
    policy: BlinkPolicy | None = None,
) -> tuple[BlinkEvent, ...]:
    """Every eye closure in an openness (or EAR) series, in order; blinks have kind ``"blink"``.

    Give either ``fps`` or one timestamp per value (``times_ms``, strictly increasing, e.g. the
    capture times of webcam frames). ``None``/NaN marks frames without a face.
    """
    policy = policy or BlinkPolicy()
    v = np.array([math.nan if x is None else float(x) for x in values], dtype=np.float64)
    n = len(v)
    t = _times(n, fps, times_ms)
    valid = ~np.isnan(v)
    if n < 3 or valid.sum() < 3:
        return ()
    dt = float(np.median(np.diff(t)))
    half = max(2, round(policy.baseline_window_ms / 2 / dt))
    base = rolling_baseline(v, half, policy.baseline_percentile)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(base > 0, v / base, np.nan)
    noise = open_eye_noise(ratio, 1.0 - policy.min_drop)
    need_depth = max(required_depth(policy, dt), policy.depth_noise_k * noise)
    first_valid = int(np.argmax(valid))
    last_valid = n - 1 - int(np.argmax(valid[::-1]))

    reach = max(1, round(policy.prominence_window_ms / dt))
    bridge = max(1, int(CORE_BRIDGE_MS // dt))  # noise frames crossed inside a closure's core
    r = np.where(valid, ratio, np.nan)
    events: list[BlinkEvent] = []
    covered: list[tuple[int, int]] = []
    for low in _local_minima(r):
        depth = 1.0 - float(r[low])
        if depth < need_depth:
            continue
        prominence = _prominence(r, low, reach, need_depth)
        if prominence < need_depth:
            continue
        core_level = float(r[low]) + policy.core_fraction * prominence
        c0, c1 = _extent(r, low, core_level, policy.max_gap_frames, bridge=bridge)
        half_level = float(r[low]) + 0.5 * prominence
        start, end = _extent(r, low, half_level, policy.max_gap_frames)
        half_ms = float(t[end] - t[start]) + dt
        if any(start <= b and end >= a for a, b in covered):
            continue  # a shallower dip inside a closure already reported
        covered.append((start, end))
        core_ms = float(t[c1] - t[c0]) + dt
        kind: ClosureKind
        if start <= first_valid or end >= last_valid or _cut_by_gap(valid, start, end):
            kind = "truncated"
        elif float(t[end] - t[start]) + dt < policy.min_blink_ms:
            continue  # a one-frame flicker at a high frame rate: landmark jitter, not a blink
        elif core_ms > policy.max_blink_ms or half_ms > policy.max_dip_ms:
            kind = "long_closure"
        elif _slow_fall(r, t, low, 0.5 * min(prominence, depth), policy.max_fall_ms):
            continue  # the eyes drifted shut slowly (gaze, drowsiness): not a blink's snap
        elif local_depth(r, t, low, (c0, c1), policy.open_window_ms) < need_depth:
            continue  # not open right before or right after: a gaze shift or squint, not a blink
        else:
            kind = "blink"
        events.append(
            BlinkEvent(
                start=start,
                end=end,
                start_ms=round(float(t[start])),
                end_ms=round(float(t[end])),
                kind=kind,
                depth=depth,
            )
        )
    return tuple(sorted(events, key=lambda e: e.start))
