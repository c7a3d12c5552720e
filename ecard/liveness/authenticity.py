"""Is a dip of eye openness a real blink? Rigid face geometry and a change of the eye's look.

Eye openness alone is fooled by a printed photo: bending, tilting or moving the sheet changes the
face's geometry, and the landmark fit's lid gap shrinks like a blink. A real blink closes the
lids while the rest of the head stays rigid, and the eye region looks different while closed
(the dark iris and the bright sclera disappear under the lid's skin). Per blink we measure both:

* **appearance** (:func:`eye_features`, per frame): each eye's region is sampled on a small grid
  aligned to its two corners (so scale and roll do not matter, and the lid landmarks, which are
  what a bent photo fools, are not used). :func:`judge_blink` compares the deepest frame of the
  dip with the open frames before and after it, in units of the open eye's own contrast.
* **geometry**: the non-eye landmarks (brows, nose, jaw, mouth) at the deepest frame against the
  open frames around it, after a similarity alignment, in units of the eye distance; and the
  lid gap normalised by the face's own vertical scale (the nose length) must dip too.

Thresholds are in docs/authenticity.md, with the data they were calibrated on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ecard.liveness.blinks import BlinkEvent

Image = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float64]

#: grid of each eye's patch: columns along the corner-to-corner axis, rows across it
GRID_W = 8
GRID_H = 3
#: patch extent in units of the corner-to-corner distance, from the corners' midpoint:
#: x from -X_HALF to +X_HALF, y (down the image) from Y_TOP to Y_BOTTOM
X_HALF = 0.6
Y_TOP = -0.4
Y_BOTTOM = 0.2
#: the brow above each eye: a coarser grid over x in [-BROW_X_HALF, BROW_X_HALF] and y in
#: [BROW_TOP, Y_TOP] (the brow and the lid crease; it does not change when the lids close)
BROW_W = 4
BROW_H = 2
BROW_X_HALF = 0.7
BROW_TOP = -1.1
EYE_CELLS = GRID_W * GRID_H
BROW_CELLS = BROW_W * BROW_H
#: length of :func:`eye_features`' vector: per eye, its grid then its brow's grid
FEATURES = 2 * (EYE_CELLS + BROW_CELLS)

_EYES = ((36, 39), (42, 45))


def _grid(
    gray: Image,
    left: Floats,
    right: Floats,
    cols: int,
    rows: int,
    x_half: float,
    y_top: float,
    y_bottom: float,
) -> npt.NDArray[np.float32]:
    """Mean gray levels of a ``cols`` x ``rows`` grid aligned to the eye corners."""
    import cv2

    axis = right - left
    width = float(np.hypot(axis[0], axis[1]))
    if not math.isfinite(width) or width < 2.0:
        return np.full(cols * rows, np.nan, dtype=np.float32)
    u = axis / width
    v = np.array([-u[1], u[0]])  # perpendicular, pointing down the image when the face is upright
    centre = (left + right) / 2.0
    # supersample so each grid cell averages the pixels it covers (INTER_AREA below)
    k = int(min(8, max(1, math.ceil(2.0 * x_half * width / cols))))
    out_w, out_h = cols * k, rows * k
    sx = 2.0 * x_half * width / out_w
    sy = (y_bottom - y_top) * width / out_h
    origin = centre + u * (-x_half * width) + v * (y_top * width)
    # output pixel (i, j) centre -> source point origin + (i + .5) sx u + (j + .5) sy v
    m = np.array(
        [
            [sx * u[0], sy * v[0], origin[0] + 0.5 * sx * u[0] + 0.5 * sy * v[0]],
            [sx * u[1], sy * v[1], origin[1] + 0.5 * sx * u[1] + 0.5 * sy * v[1]],
        ],
        dtype=np.float64,
    )
    fine = cv2.warpAffine(
        gray,
        m,
        (out_w, out_h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if k > 1:
        fine = cv2.resize(fine, (cols, rows), interpolation=cv2.INTER_AREA)
    return np.asarray(fine, dtype=np.float32).reshape(-1)


def eye_features(gray: Image, landmarks: Floats) -> npt.NDArray[np.float32]:
    """Both eye regions as small corner-aligned grids of gray levels (float32, 64 values).

    Per eye (the image's left eye first): a :data:`GRID_W` x :data:`GRID_H` grid covering
    1.2 x 0.6 of its corner-to-corner width (the eye and a little lid skin), then a coarse
    :data:`BROW_W` x :data:`BROW_H` grid of the brow above it; each cell is the mean gray level
    of the pixels it covers, so no picture of the face beyond the eyes can be rebuilt from it.
    NaN where an eye is degenerate.
    """
    p = np.asarray(landmarks, dtype=np.float64)
    parts = []
    for a, b in _EYES:
        parts.append(_grid(gray, p[a], p[b], GRID_W, GRID_H, X_HALF, Y_TOP, Y_BOTTOM))
        parts.append(_grid(gray, p[a], p[b], BROW_W, BROW_H, BROW_X_HALF, BROW_TOP, Y_TOP))
    return np.concatenate(parts)


@dataclass(frozen=True)
class BlinkEvidence:
    """Why a dip is (or is not) judged a real blink; every measure is scale-free.

    ``appearance``: change of the eye regions at the deepest frame against the open frames, in
    units of the open-open change (>= :data:`MIN_APPEARANCE` for a blink). ``rigidity``: motion
    of the non-eye landmarks at the deepest frame after similarity alignment, in units of the
    eye distance (<= :data:`MAX_RIGIDITY`). ``gap_depth``: the dip of lid gap over nose length.
    """

    authentic: bool
    rigidity: float
    appearance: float
    gap_depth: float
    open_change: float
    closed_change: float
    deepest: int
    reason: str | None
    brow_motion: float = math.nan
    dark_drop: float = math.nan
    brow_change: float = math.nan
    shortening: float = math.nan
    shortening_limit: float = math.nan
    brow_drop: float = math.nan


#: open frames are looked for this far (ms) before a dip's start and after its end ...
SIDE_MS = 1000.0
#: ... at most this many on each side, the nearest first ...
SIDE_FRAMES = 3
#: ... and a frame is open when its openness is within this share of the dip's depth from the
#: most open frame there (eyes reopening slowly after a blink, or the next blink, are not open)
OPEN_SHARE = 0.25
#: landmarks that are not the eyes: jaw 0-16, brows 17-26, nose 27-35, mouth 48-67
NON_EYE = np.r_[0:36, 48:68]
#: a blink's eye regions change at least this many times the open-open change
MIN_APPEARANCE = 1.5
#: a blink's non-eye landmarks move at most this much (median, in eye distances)
MAX_RIGIDITY = 0.05
#: lid gap over nose length must fall at least this fraction of the openness dip ...
MIN_GAP_SHARE = 0.6
#: ... and at most this multiple of it (more means the brows came down onto the eyes too)
MAX_GAP_SHARE = 1.2
#: the face's vertical scale (nose length over eye distance, a rigid ratio of the head) may
#: shrink at most this much at the deepest frame: a sheet folded or tilted shortens the face
MAX_SHORTENING = 0.04
#: ... or this many robust standard deviations of its wander among the open frames around it
SHORTENING_K = 3.5
#: the brows may come down towards the eye corners at most this share of their height (dlib's
#: brows rise a little when the lids close; a folded sheet brings them down)
MAX_BROW_DROP = 0.1
#: closing lids cover the dark iris with lid skin: the eye's darkest central cells must not get
#: darker than when open (in units of the open eye's contrast). An open eye under flickering
#: landmarks keeps its dark iris; a sheet folded under the eyes squashes the dark brow into the
#: eye's grid and makes it darker
MIN_DARK_DROP = 0.0
#: the open-open change is never taken as smaller than this (in units of the eye's contrast)
CHANGE_FLOOR = 0.15


def _openness(points: Floats) -> float:
    from ecard.liveness.blinks import face_openness

    return face_openness(points)


def _lid_gap(points: Floats) -> float:
    gaps = []
    for a in (36, 42):
        e = points[a : a + 6]
        gaps.append((np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4])) / 2.0)
    nose = float(np.linalg.norm(points[33] - points[27]))
    return float(np.mean(gaps)) / nose if nose > 0 else math.nan


def _similarity(src: Floats, dst: Floats) -> Floats:
    """``src`` mapped onto ``dst`` by the least-squares similarity (Umeyama)."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - ms, dst - md
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[1, 1] = -1
    rot = u @ s @ vt
    var = float((a**2).sum() / len(src))
    scale = float(np.trace(np.diag(d) @ s)) / var if var > 0 else 1.0
    return np.asarray(scale * a @ rot.T + md, dtype=np.float64)


def _vertical(points: Floats) -> tuple[float, float]:
    """(nose length, brow height above the eye corners), both over the eye distance."""
    iod = max(_eye_distance(points), 1e-6)
    heights = []
    for (a, b), brow in (((36, 39), (18, 19, 20)), ((42, 45), (23, 24, 25))):
        axis = points[b] - points[a]
        u = axis / max(float(np.hypot(axis[0], axis[1])), 1e-6)
        down = np.array([-u[1], u[0]])
        mid = (points[a] + points[b]) / 2.0
        heights.append(-float(np.mean([(points[k] - mid) @ down for k in brow])))
    nose = float(np.linalg.norm(points[33] - points[27]))
    return nose / iod, float(np.mean(heights)) / iod


def _eye_distance(points: Floats) -> float:
    return float(np.linalg.norm(points[42:48].mean(axis=0) - points[36:42].mean(axis=0)))


def _mean_shape(shapes: list[Floats]) -> Floats:
    ref = shapes[0]
    return np.asarray(np.mean([_similarity(s, ref) for s in shapes], axis=0), dtype=np.float64)


def _shape_change(shape: Floats, ref: Floats) -> float:
    """Median motion of the non-eye landmarks after similarity alignment, in eye distances."""
    src, dst = shape[NON_EYE], ref[NON_EYE]
    moved = np.linalg.norm(_similarity(src, dst) - dst, axis=1)
    return float(np.median(moved)) / max(_eye_distance(ref), 1e-6)


#: landmarks that move with the head only: jaw line, nose, the four eye corners
STABLE = np.r_[0:17, 27:36, 36, 39, 42, 45]
BROWS = np.r_[17:27]


def _brow_motion(shape: Floats, ref: Floats) -> float:
    """Median motion of the brows once the head's stable landmarks are aligned (eye distances)."""
    ms, md = shape[STABLE], ref[STABLE]
    # the similarity that maps the stable points onto the reference, applied to the brows
    src = np.vstack([ms, shape[BROWS]])
    mu_s, mu_d = ms.mean(axis=0), md.mean(axis=0)
    a, b = ms - mu_s, md - mu_d
    u, d, vt = np.linalg.svd(b.T @ a / len(ms))
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var = float((a**2).sum() / len(ms))
    scale = float(np.trace(np.diag(d) @ sign)) / var if var > 0 else 1.0
    mapped = scale * (src - mu_s) @ rot.T + mu_d
    moved = np.linalg.norm(mapped[len(ms) :] - ref[BROWS], axis=1)
    return float(np.median(moved)) / max(_eye_distance(ref), 1e-6)


def _centred(x: npt.ArrayLike) -> Floats:
    a = np.asarray(x, dtype=np.float64)
    return np.asarray(a - a.mean(axis=-1, keepdims=True), dtype=np.float64)


#: a grid is compared with another at the best of these shifts (in cells, both axes): the eye
#: corners' landmarks jitter by a pixel or two, which moves a small eye's grid by up to a cell
SHIFTS = (-1.0, -0.5, 0.0, 0.5, 1.0)


def _shifted(grid: Floats, shape: tuple[int, int]) -> list[Floats]:
    """``grid`` (flat, ``shape`` = (rows, cols)) moved by each pair of :data:`SHIFTS`
    (bilinear, edges replicated), each centred again."""
    import cv2

    rows, cols = shape
    g = grid.reshape(rows, cols).astype(np.float32)
    out = []
    for dy in SHIFTS:
        for dx in SHIFTS:
            m = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float64)
            moved = cv2.warpAffine(
                g, m, (cols, rows), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            out.append(_centred(np.asarray(moved, dtype=np.float64).reshape(-1)))
    return out


def _distance(a: Floats, moved_b: list[Floats]) -> float:
    """RMS difference of grid ``a`` and the best-aligned of ``moved_b`` (from :func:`_shifted`)."""
    return min(float(np.sqrt(np.mean((a - b) ** 2))) for b in moved_b)


def _grid_change(
    deep: Floats, sides: list[Floats], shape: tuple[int, int]
) -> tuple[float, float, float]:
    """One eye: (closed change, open-open change, open jitter), in units of its open contrast.

    ``deep`` is the deepest frame's grid, ``sides`` the open frames' grids of each side; each
    grid is centred (its mean removed: exposure and lighting drifts do not count), and each
    comparison is made at the best small shift (:data:`SHIFTS`), so that a grid moved by the
    corners' jitter is not a change, while a closed eye matches an open one at no shift."""
    templates = [s.mean(axis=0) for s in sides]
    contrast = float(np.mean([t.std() for t in templates]))
    if not contrast > 0:
        return math.nan, math.nan, math.nan
    moved = [_shifted(t, shape) for t in templates]
    closed = min(_distance(deep, m) for m in moved)
    between = _distance(templates[0], moved[-1])
    jitter = [_distance(x, m) for s, m in zip(sides, moved, strict=True) for x in s]
    return closed / contrast, between / contrast, float(np.median(jitter)) / contrast


def _darkness(grid: Floats) -> float:
    """How much darker than the grid's median its 3 darkest central cells are (the iris)."""
    g = np.asarray(grid, dtype=np.float64).reshape(GRID_H, GRID_W)
    centre = np.sort(g[:, GRID_W // 4 : GRID_W - GRID_W // 4].reshape(-1))[:3]
    return float(np.median(g)) - float(centre.mean())


def _open_sides(
    t: Floats,
    valid: npt.NDArray[np.bool_],
    openness: Floats,
    event: BlinkEvent,
    deep: int,
    limit: int | None = SIDE_FRAMES,
) -> list[list[int]]:
    """The open frames before and after the dip (nearest first, at most ``limit`` a side);
    a side may be empty."""
    near = [
        [k for k in range(event.start - 1, -1, -1) if t[event.start] - t[k] <= SIDE_MS],
        [k for k in range(event.end + 1, len(t)) if t[k] - t[event.end] <= SIDE_MS],
    ]
    near = [[k for k in side if valid[k]] for side in near]
    pool = [k for side in near for k in side]
    if not pool:
        return [[], []]
    top = float(np.max(openness[pool]))
    level = top - OPEN_SHARE * (top - float(openness[deep]))
    return [[k for k in side if openness[k] >= level][:limit] for side in near]


def _evidence(reason: str, deep: int = -1, **known: float) -> BlinkEvidence:
    values = {"rigidity": math.nan, "appearance": math.nan, "gap_depth": math.nan}
    values |= {"open_change": math.nan, "closed_change": math.nan} | known
    return BlinkEvidence(authentic=False, deepest=deep, reason=reason, **values)


def judge_blink(
    times_ms: npt.ArrayLike,
    landmarks: npt.ArrayLike,
    eye_feats: npt.ArrayLike,
    event: BlinkEvent,
) -> BlinkEvidence:
    """Whether ``event`` (a dip found by :func:`~ecard.liveness.blinks.detect_blinks` in the
    openness of these frames) is a real blink: see :class:`BlinkEvidence`.

    ``times_ms`` (n,), ``landmarks`` (n, 68, 2) and ``eye_feats`` (n, :data:`FEATURES`) are the
    clip's per-frame series (NaN rows where no face was found); ``event`` indexes them.
    """
    t = np.asarray(times_ms, dtype=np.float64)
    pts = np.asarray(landmarks, dtype=np.float64)
    feats = np.asarray(eye_feats, dtype=np.float64)
    n = len(t)
    valid = np.asarray(
        np.isfinite(pts.reshape(n, -1)).all(axis=1) & np.isfinite(feats).all(axis=1), dtype=bool
    )
    openness = np.full(n, np.nan)
    lo = int(np.searchsorted(t, t[max(0, min(n - 1, event.start))] - SIDE_MS - 1.0, side="left"))
    hi = int(np.searchsorted(t, t[max(0, min(n - 1, event.end))] + SIDE_MS + 1.0, side="right"))
    for k in np.flatnonzero(valid[lo:hi]) + lo:  # only the frames the judgement looks at
        openness[k] = _openness(pts[k])
    inside = [k for k in range(max(0, event.start), min(n, event.end + 1)) if valid[k]]
    if not inside:
        return _evidence("no_face")
    deep = min(inside, key=lambda k: float(openness[k]))
    sides = _open_sides(t, valid, openness, event, deep)
    if not sides[0] and not sides[1]:
        return _evidence("no_open_frames", deep)
    opened = [k for side in sides for k in side]

    # geometry: the rest of the face must not move (compared with the nearer open side)
    refs = [_mean_shape([pts[k] for k in s]) for s in sides if s]
    rigidity = min(_shape_change(pts[deep], r) for r in refs)
    brow_motion = min(_brow_motion(pts[deep], r) for r in refs)
    vertical_open = np.median([_vertical(pts[k]) for k in opened], axis=0)
    vertical_deep = _vertical(pts[deep])
    shortening = 1.0 - vertical_deep[0] / float(vertical_open[0])
    # how much the nose ratio wanders among all the open frames around the dip (landmark noise
    # of this face and camera): a shortening within 3 robust deviations of it is not evidence
    pool = [k for side in _open_sides(t, valid, openness, event, deep, None) for k in side]
    ratios = np.array([_vertical(pts[k])[0] for k in pool]) / float(vertical_open[0])
    wander = 1.4826 * float(np.median(np.abs(ratios - np.median(ratios)))) if len(pool) > 2 else 0.0
    shortening_limit = max(MAX_SHORTENING, SHORTENING_K * wander)
    brow_drop = 1.0 - vertical_deep[1] / float(vertical_open[1])
    gap_open = float(np.median([_lid_gap(pts[k]) for k in opened]))
    gap_depth = 1.0 - _lid_gap(pts[deep]) / gap_open if gap_open > 0 else math.nan

    # appearance: each eye at the deepest frame against its open look before and after; the
    # brow above it must keep its look (a sheet folded under the eyes squashes both)
    eye_changes, brow_changes, drops = [], [], []
    for e in range(2):
        first = e * (EYE_CELLS + BROW_CELLS)
        eye = slice(first, first + EYE_CELLS)
        brow = slice(first + EYE_CELLS, first + EYE_CELLS + BROW_CELLS)
        grids = [_centred(feats[s, eye]) for s in sides if s]
        change = _grid_change(_centred(feats[deep, eye]), grids, (GRID_H, GRID_W))
        if all(math.isfinite(c) for c in change):
            eye_changes.append(change)
            opened_grids = feats[opened, eye]
            contrast = float(np.mean(opened_grids.std(axis=1)))
            dark_open = float(np.mean([_darkness(g) for g in opened_grids]))
            drops.append((dark_open - _darkness(feats[deep, eye])) / contrast)
        grids = [_centred(feats[s, brow]) for s in sides if s]
        change = _grid_change(_centred(feats[deep, brow]), grids, (BROW_H, BROW_W))
        if all(math.isfinite(c) for c in change):
            brow_changes.append(change)
    if not eye_changes:
        return _evidence("no_contrast", deep, rigidity=rigidity, gap_depth=gap_depth)
    closed, between, jitter = (float(v) for v in np.mean(eye_changes, axis=0))
    open_change = max(between, jitter, CHANGE_FLOOR)
    appearance = closed / open_change
    dark_drop = float(np.mean(drops))
    brow_change = math.nan
    if brow_changes:
        b_closed, b_between, b_jitter = (float(v) for v in np.mean(brow_changes, axis=0))
        brow_change = b_closed / max(b_between, b_jitter, CHANGE_FLOOR)

    reason: str | None = None
    if appearance < MIN_APPEARANCE:
        reason = "eye_unchanged"
    elif rigidity > MAX_RIGIDITY:
        reason = "face_not_rigid"
    elif not gap_depth >= MIN_GAP_SHARE * event.depth:
        reason = "gap_not_closed"
    elif not gap_depth <= MAX_GAP_SHARE * event.depth:
        reason = "brows_dropped"
    elif not dark_drop >= MIN_DARK_DROP:
        reason = "eye_darkened"
    elif not shortening <= shortening_limit:
        reason = "face_shortened"
    elif not brow_drop <= MAX_BROW_DROP:
        reason = "brows_dropped"
    return BlinkEvidence(
        authentic=reason is None,
        rigidity=rigidity,
        appearance=appearance,
        gap_depth=gap_depth,
        open_change=open_change,
        closed_change=closed,
        deepest=deep,
        reason=reason,
        brow_motion=brow_motion,
        dark_drop=dark_drop,
        brow_change=brow_change,
        shortening=shortening,
        shortening_limit=shortening_limit,
        brow_drop=brow_drop,
    )
