"""Face tracking: detect rarely on a small image, follow the face with its own landmarks.

HOG detection at 640 x 480 with upsampling costs about 95 ms, the 68 landmarks about 0.6 ms. The
tracker detects on a copy downscaled to :data:`DETECT_WIDTH` (upsampling only for tiny images),
then places each next landmark box from the previous frame's landmarks, and detects again when the
track looks lost or every ``redetect_ms`` (which also counts the faces in view).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ecard.faces.models import Box, FaceModels

Image = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float64]

#: width of the image the detector sees (faces down to ~80 px at 640 px wide are found)
DETECT_WIDTH = 320
#: on periodic checks the image is scaled so the tracked face is about this high (px): HOG then
#: also finds a second face of half that height (its floor is ~80 px)
CHECK_FACE = 170
#: below this width the detector upsamples (tiny clips such as 96 x 128 face crops)
SMALL_WIDTH = 400
#: landmark indices that barely move with expression: eye corners, nose, jaw ends
_STABLE = [0, 16, 27, 30, 36, 39, 42, 45]


#: mean absolute change of the 24 x 24 face thumbnail between frames, in units of its contrast,
#: above which the track is dropped (calibrated in docs/liveness.md)
CHANGE_LIMIT = 0.6


def _thumbnail(gray: Image, box: Box) -> Image:
    import cv2

    h, w = gray.shape[:2]
    crop = gray[max(0, box.top) : min(h, box.bottom), max(0, box.left) : min(w, box.right)]
    if crop.size == 0:
        return np.zeros((24, 24), dtype=np.uint8)
    return np.asarray(cv2.resize(crop, (24, 24), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def change_score(new: npt.NDArray[np.float64], old: npt.NDArray[np.float64]) -> float:
    """Mean absolute change between two face thumbnails, in units of the old one's contrast."""
    return float(np.mean(np.abs(new - old))) / (float(np.std(old)) + 1.0)


@dataclass(frozen=True)
class Observation:
    """One frame's result: the landmarks (None when no face) and, when detection ran, the count
    of faces at least ``second_face_min_height`` of the main face's height (main included)."""

    landmarks: Points | None
    box: Box | None
    detected: bool
    faces: int | None
    #: True when the face was (re)acquired by a detection in this frame: the track starts anew
    acquired: bool = False


def _landmark_bbox(points: Points) -> tuple[float, float, float, float]:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


class FaceTracker:
    """Follows the largest face through a sequence of gray frames of one size."""

    def __init__(
        self,
        models: FaceModels,
        *,
        redetect_ms: float = 1000.0,
        second_face_min_height: float = 0.5,
    ) -> None:
        self._models = models
        self._redetect_ms = redetect_ms
        self._second = second_face_min_height
        self._points: Points | None = None
        self._rel: tuple[float, float, float, float] | None = None
        self._last_detect_t = -1e18
        self._thumb: Image | None = None
        self.detections = 0

    def _detect(self, gray: Image, check: bool = False) -> list[Box]:
        import cv2

        h, w = gray.shape[:2]
        self.detections += 1
        width = DETECT_WIDTH
        if check and self._points is not None:
            # keep the tracked face ~CHECK_FACE px high so a second face half its size is found
            face_h = float(np.ptp(self._points[:, 1])) * 1.3
            width = max(DETECT_WIDTH, round(w * min(1.0, CHECK_FACE / max(face_h, 1.0))))
        if w > width * 1.25:
            scale = width / w
            small = np.asarray(
                cv2.resize(gray, (width, round(h * scale)), interpolation=cv2.INTER_AREA),
                dtype=np.uint8,
            )
            boxes = self._models.detect(small, 0)
            if boxes:
                return [b.scaled(1 / scale) for b in boxes]
        upsample = 0 if w >= SMALL_WIDTH else (1 if w >= SMALL_WIDTH / 2 else 2)
        return self._models.detect(gray, upsample)

    def _anchor(self, box: Box, points: Points) -> None:
        x0, y0, x1, y1 = _landmark_bbox(points)
        lw, lh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        self._rel = (
            (box.left - x0) / lw,
            (box.top - y0) / lh,
            (box.right - x1) / lw,
            (box.bottom - y1) / lh,
        )

    def _predicted_box(self, shape: tuple[int, ...]) -> Box | None:
        return None if self._points is None else self._box_from(self._points, shape)

    def _box_from(self, points: Points, shape: tuple[int, ...]) -> Box | None:
        """The detector-like box around ``points`` (same margins as at the last detection)."""
        if self._rel is None:
            return None
        x0, y0, x1, y1 = _landmark_bbox(points)
        lw, lh = x1 - x0, y1 - y0
        box = Box(
            round(x0 + self._rel[0] * lw),
            round(y0 + self._rel[1] * lh),
            round(x1 + self._rel[2] * lw),
            round(y1 + self._rel[3] * lh),
        )
        h, w = shape[:2]
        cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
        if box.width < 20 or not (0 <= cx < w and 0 <= cy < h):
            return None
        return box

    def _changed(self, thumb: Image | None) -> bool:
        """Whether the face-box content differs from the last frame's more than motion explains."""
        if thumb is None or self._thumb is None:
            return False
        a = thumb.astype(np.float64)
        b = self._thumb.astype(np.float64)
        return change_score(a, b) > CHANGE_LIMIT

    def _moved(self, new: Points) -> float:
        """Median motion of the stable landmarks since the last frame, in interocular units."""
        old = self._points
        if old is None:
            return 0.0
        inter = float(np.linalg.norm(old[45] - old[36])) or 1.0
        return float(np.median(np.linalg.norm(new[_STABLE] - old[_STABLE], axis=1))) / inter

    def _plausible(self, new: Points) -> bool:
        old = self._points
        if old is None:
            return True
        inter = float(np.linalg.norm(old[45] - old[36]))
        if inter <= 1:
            return False
        moved = float(np.median(np.linalg.norm(new[_STABLE] - old[_STABLE], axis=1)))
        scale = float(np.linalg.norm(new[45] - new[36])) / inter
        return moved < 0.35 * inter and 0.75 < scale < 1.33

    def observe(self, gray: Image, t_ms: float) -> Observation:
        """Landmarks of the tracked face in ``gray`` (or None), detecting when needed."""
        faces: int | None = None
        if self._points is not None and t_ms - self._last_detect_t >= self._redetect_ms:
            # periodic check: count the faces in view and make sure ours is still there; the
            # track keeps its own landmarks (re-anchoring each second would make them jump)
            self._last_detect_t = t_ms
            boxes = self._detect(gray, check=True)
            mine = self._near(boxes)
            if mine is None:
                self._points = None  # lost: acquire again below
            else:
                faces = sum(b.height >= self._second * mine.height for b in boxes)
        box = self._predicted_box(gray.shape)
        thumb = None if box is None else _thumbnail(gray, box)
        if box is not None and self._changed(thumb):
            box = None  # the picture under the face box changed: the face jumped, detect again
        if box is not None:
            points = self._models.landmarks(gray, box)
            moved = self._moved(points)
            if 0.05 < moved <= 0.25:
                # the face moved: fit again in the box the new landmarks give (it converges)
                refit = self._box_from(points, gray.shape)
                if refit is not None:
                    box, points = refit, self._models.landmarks(gray, refit)
                    moved = self._moved(points)
            if moved <= 0.25 and self._plausible(points):
                self._points = points
                self._thumb = thumb
                return Observation(points, box, detected=faces is not None, faces=faces)
        boxes = self._detect(gray)
        self._last_detect_t = t_ms
        if not boxes:
            self._points = None
            return Observation(None, None, detected=True, faces=0)
        main = self._near(boxes) or boxes[0]
        points = self._models.landmarks(gray, main)
        self._anchor(main, points)
        self._points = points
        self._thumb = _thumbnail(gray, main)
        big = [b for b in boxes if b.height >= self._second * main.height]
        return Observation(points, main, detected=True, faces=len(big), acquired=True)

    def get_state(self) -> dict[str, object]:
        """The tracker's state as plain values (no pixels but the 24 x 24 gray thumbnail)."""
        return {
            "points": None if self._points is None else self._points.tolist(),
            "rel": None if self._rel is None else list(self._rel),
            "last_detect_t": self._last_detect_t,
            "thumb": None if self._thumb is None else self._thumb.tolist(),
            "detections": self.detections,
        }

    def set_state(self, state: dict[str, object]) -> None:
        """Restore :meth:`get_state` (another process may continue the same capture)."""
        points, rel, thumb = state.get("points"), state.get("rel"), state.get("thumb")
        self._points = None if points is None else np.asarray(points, dtype=np.float64)
        if rel is None:
            self._rel = None
        else:
            r0, r1, r2, r3 = (float(v) for v in rel)  # type: ignore[attr-defined]
            self._rel = (r0, r1, r2, r3)
        self._last_detect_t = float(state.get("last_detect_t", -1e18))  # type: ignore[arg-type]
        self._thumb = None if thumb is None else np.asarray(thumb, dtype=np.uint8)
        self.detections = int(state.get("detections", 0))  # type: ignore[call-overload]

    def _near(self, boxes: list[Box]) -> Box | None:
        """The detected box of the tracked face, if it is among ``boxes``."""
        if self._points is None or not boxes:
            return None
        cx, cy = self._points[_STABLE].mean(axis=0)

        def distance(b: Box) -> float:
            return float(np.hypot((b.left + b.right) / 2 - cx, (b.top + b.bottom) / 2 - cy))

        near = min(boxes, key=distance)
        return near if distance(near) < near.width else None
