"""Test media made at run time from the real clips in ../shared/data/blink.

Chromium's fake camera (``--use-file-for-fake-video-capture``) plays a YUV4MPEG2 (``.y4m``) file
in a loop. The format is a one-line text header followed by raw I420 frames, so it is written
here directly from OpenCV-decoded frames with numpy (no ffmpeg on the machine).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def _fps_fraction(fps: float) -> tuple[int, int]:
    """A y4m frame-rate fraction close to ``fps`` (23.86 -> 2386:100)."""
    if fps <= 0 or not np.isfinite(fps):
        return 25, 1
    return round(fps * 100), 100


def write_y4m(
    src: Path,
    dst: Path,
    *,
    start: int = 0,
    stop: int | None = None,
    max_side: int = 640,
) -> dict[str, Any]:
    """Convert frames ``start:stop`` of ``src`` (any container OpenCV reads) into a ``.y4m``.

    Frames are downscaled so the longer side is at most ``max_side`` pixels and both sides are
    even (I420 halves the chroma planes). Returns ``{"frames", "width", "height", "fps"}``.
    """
    import cv2

    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise ValueError(f"OpenCV cannot read {src}")
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    num, den = _fps_fraction(fps)
    written = 0
    width = height = 0
    index = 0
    try:
        with dst.open("wb") as out:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if index < start:
                    index += 1
                    continue
                if stop is not None and index >= stop:
                    break
                index += 1
                if not written:
                    h, w = frame.shape[:2]
                    scale = min(1.0, max_side / max(h, w))
                    width = int(w * scale) // 2 * 2
                    height = int(h * scale) // 2 * 2
                    out.write(
                        f"YUV4MPEG2 W{width} H{height} F{num}:{den} Ip A1:1 C420jpeg\n".encode()
                    )
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
                # OpenCV's I420 layout is exactly the y4m frame payload: Y, then U, then V planes.
                yuv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
                out.write(b"FRAME\n")
                out.write(np.ascontiguousarray(yuv).tobytes())
                written += 1
    finally:
        cap.release()
    if not written:
        raise ValueError(f"no frames decoded from {src} in [{start}, {stop})")
    return {"frames": written, "width": width, "height": height, "fps": num / den}


def id_photo_from_clip(src: Path, dst: Path, *, frame_index: int, size: tuple[int, int]) -> Path:
    """Write an ID-style photo (head and shoulders, ``size`` = (width, height)) of frame
    ``frame_index`` of ``src``: the one face found by dlib's HOG detector, with a margin, resized.
    """
    import cv2
    import dlib

    cap = cv2.VideoCapture(str(src))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, frame_index)
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok:
        raise ValueError(f"frame {frame_index} of {src} cannot be read")
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    faces = dlib.get_frontal_face_detector()(rgb, 1)
    if len(faces) != 1:
        raise ValueError(f"expected one face in frame {frame_index} of {src}, found {len(faces)}")
    face = faces[0]
    cx, cy = (face.left() + face.right()) / 2, (face.top() + face.bottom()) / 2
    # An ID photo shows the head with some margin: the box is ~1.9x the face width, 35:45 aspect.
    box_w = (face.right() - face.left()) * 1.9
    box_h = box_w * size[1] / size[0]
    h, w = frame.shape[:2]
    x0, y0 = max(0, int(cx - box_w / 2)), max(0, int(cy - box_h * 0.45))
    x1, y1 = min(w, int(cx + box_w / 2)), min(h, int(cy + box_h * 0.55))
    crop = cv2.resize(frame[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(dst), crop, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return dst


def write_still_y4m(
    picture: Path, dst: Path, *, size: tuple[int, int] = (640, 480), frames: int = 15
) -> Path:
    """A ``.y4m`` showing ``picture`` (e.g. a screenshot of the phone's QR code) held in front of
    a desk camera: centred on a grey background at 80 % of the frame height, ``frames`` frames."""
    import cv2

    width, height = size
    image = cv2.imread(str(picture))
    if image is None:
        raise ValueError(f"OpenCV cannot read {picture}")
    scale = 0.8 * height / image.shape[0]
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 96, np.uint8)
    y, x = (height - image.shape[0]) // 2, (width - image.shape[1]) // 2
    canvas[y : y + image.shape[0], x : x + image.shape[1]] = image
    payload = np.ascontiguousarray(cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420)).tobytes()
    with dst.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F15:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n")
            out.write(payload)
    return dst


# --- a fake camera that blinks when the page says "Blink now" ----------------------------------

#: Closed-eye frames of ``repeating-Blink-Detector__video.mp4`` (0-based, PROVENANCE.md): four
#: ordinary blinks; the long closure at 137-194 ends the usable part of the clip.
LIVE_CLIP_BLINKS = ((10, 13), (40, 43), (82, 85), (111, 113))
LIVE_CLIP_USABLE = 134  # frames 0..133: nothing but these four blinks
#: Frames kept between open eyes and a blink, so that hovering never touches a half-closed lid.
MARGIN = 3
#: Each frame of a blink is shown this many times: a deliberate blink of ~0.5 s (people asked
#: to blink, older people above all, close their eyes longer than the clip's quick ~0.17 s).
SLOW = 1
#: How far the walk sways while it waits for a cue (source frames, one a step).
HOVER = 5
#: How far ahead of the played frame a blink rewrites the file (s).
REWRITE_S = 6.0
#: Bits of the frame-index marker in the picture's top rows (see ``CooperativeCamera``).
MARKER_BITS = 12
MARKER_BLOCK = 16


class CooperativeCamera:
    """A ``.y4m`` for Chromium's fake camera made of the live clip's own frames, in which the
    person blinks only when asked: ``blink(now_frame, after_frames)`` rewrites the file ahead
    of the frame being played, so that one of the clip's *real* blinks starts ``after_frames``
    later. Chromium reads each frame from the file when it plays it, so the change shows.

    Between blinks the walk "hovers": it sways back and forth, a frame at a time, in open-eye
    frames next to the blink it will go through next (forwards through the clip's blinks while
    there are some, then back and forth through the last one: a blink played backwards still
    closes and opens the eyes). No cut, no jump of the face anywhere.

    Each output frame carries its index as a binary marker in the top ``MARKER_BLOCK`` rows;
    the page never sends those rows (it sends the 3:4 part its preview shows, the middle of a
    portrait picture), but a test can read them from the ``<video>`` (``READ_MARKER_JS``).
    """

    def __init__(
        self, src: Path, dst: Path, *, seconds: float, max_side: int = 480, bounce: bool = True
    ) -> None:
        import cv2

        cap = cv2.VideoCapture(str(src))
        if not cap.isOpened():
            raise ValueError(f"OpenCV cannot read {src}")
        self.fps = float(cap.get(cv2.CAP_PROP_FPS))
        num, den = _fps_fraction(self.fps)
        self.fps = num / den
        self.planes: list[bytes] = []
        self.width = self.height = 0
        try:
            while len(self.planes) < LIVE_CLIP_USABLE:
                ok, frame = cap.read()
                if not ok:
                    raise ValueError(f"{src} has fewer than {LIVE_CLIP_USABLE} frames")
                if not self.width:
                    h, w = frame.shape[:2]
                    scale = min(1.0, max_side / max(h, w))
                    self.width, self.height = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
                frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
                yuv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
                self.planes.append(np.ascontiguousarray(yuv).tobytes())
        finally:
            cap.release()
        if self.width < MARKER_BITS * MARKER_BLOCK:
            raise ValueError("the picture is too narrow for the frame marker")
        self.dst = dst
        self.header = f"YUV4MPEG2 W{self.width} H{self.height} F{num}:{den} Ip A1:1 C420jpeg\n"
        self.frame_bytes = len(b"FRAME\n") + len(self.planes[0])
        self.frames = round(seconds * self.fps)
        self.region = 1  # between blink 0 and blink 1
        self.bounce = bounce
        self.blinks_at: list[int] = []
        self.path = self._hover_path(self._entry()[0] - 2, self.frames)
        with dst.open("wb") as out:
            out.write(self.header.encode())
            for k in range(self.frames):
                out.write(self._frame(k))

    def _next_crossing(self) -> tuple[int, int, bool]:
        """(blink index, entry frame, forwards) of the blink the walk goes through next."""
        forward = self.region < len(LIVE_CLIP_BLINKS)
        k = self.region if forward else self.region - 1
        a, b = LIVE_CLIP_BLINKS[k]
        return k, (a - 1 - MARGIN if forward else b + 1 + MARGIN), forward

    def _entry(self) -> tuple[int, int]:
        """The next entry frame, and the side (-1 / +1) the hover sways to, away from it."""
        _, entry, forward = self._next_crossing()
        return entry, -1 if forward else 1

    def _hover_path(self, pos: int, steps: int) -> list[int]:
        """Walk to the next entry (a frame a step), then sway between it and HOVER frames away."""
        entry, side = self._entry()
        far = entry + side * HOVER
        out: list[int] = []
        f = pos
        while f != entry and len(out) < steps:
            f += 1 if entry > f else -1
            out.append(f)
        d = side
        while len(out) < steps:
            if f == far:
                d = -side
            elif f == entry:
                d = side
            f += d
            out.append(f)
        return out

    def _frame(self, k: int) -> bytes:
        plane = self.planes[self.path[k]]
        size = self.width * self.height
        y = np.frombuffer(plane, np.uint8, count=size).reshape(self.height, self.width).copy()
        for bit in range(MARKER_BITS):
            y[:MARKER_BLOCK, bit * MARKER_BLOCK : (bit + 1) * MARKER_BLOCK] = (
                235 if (k >> bit) & 1 else 16
            )
        return b"FRAME\n" + y.tobytes() + plane[size:]

    def blink(self, now_frame: int, after_frames: int, *, safety: int = 3) -> int:
        """Make the person blink: the first closed frame comes ``after_frames`` frames after
        ``now_frame`` (the frame playing now), or as soon after as the walk can get there.
        Rewrites the file from ``now_frame + safety`` on; returns the closed frame's index."""
        start = max(now_frame + safety, (self.blinks_at[-1] + 12) if self.blinks_at else 0)
        if start >= self.frames - 30:
            raise ValueError("the fake camera's file is too short for another blink")
        _, entry, forward = self._next_crossing()
        pos = self.path[start - 1]
        # At most two frames a step on the way to the blink (a slight, quick move of the head).
        need = math.ceil(abs(entry - pos) / 2)
        closed_at = max(now_frame + after_frames, start + max(1, need) + MARGIN)
        steps = closed_at - MARGIN - start  # the entry frame is the walk's last
        walk = [round(pos + (entry - pos) * i / steps) for i in range(1, steps + 1)]
        a, b = LIVE_CLIP_BLINKS[self._next_crossing()[0]]
        crossing = (
            list(range(entry + 1, b + 2 + MARGIN))
            if forward
            else list(range(entry - 1, a - 2 - MARGIN, -1))
        )
        # The closing, closed and opening frames each SLOW times: still seen when a busy
        # browser drops a camera frame or two.
        crossing = (
            crossing[:MARGIN]
            + [f for f in crossing[MARGIN:-MARGIN] for _ in range(SLOW)]
            + (crossing[-MARGIN:])
        )
        if self.bounce:
            # Into the blink and back out the same side: the eyes close as in the clip and
            # open along the same frames, so every cue can use the same (forward) blink.
            deepest = (a + b + 1) // 2 if forward else (a + b) // 2
            into = [f for f in crossing if (f <= deepest if forward else f >= deepest)]
            crossing = into + into[-2::-1]
        else:
            self.region += 1 if forward else -1
        tail = self._hover_path(crossing[-1], self.frames)
        new = (walk + crossing + tail)[: self.frames - start]
        self.path[start:] = new
        self.blinks_at.append(closed_at)
        # Only the next REWRITE_S are written now (quick); the next blink rewrites again, and a
        # capture ends well within that after its last cue.
        stop = min(self.frames, start + round(REWRITE_S * self.fps))
        with self.dst.open("r+b") as out:
            out.seek(len(self.header) + start * self.frame_bytes)
            out.write(b"".join(self._frame(k) for k in range(start, stop)))
        return closed_at


#: JavaScript for ``page.evaluate``: the file frame the fake camera shows now, and when.
READ_MARKER_JS = f"""() => {{
  const v = document.getElementById('video');
  if (!v || !v.videoWidth) return null;
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = {MARKER_BLOCK};
  const x = c.getContext('2d', {{ willReadFrequently: true }});
  x.drawImage(v, 0, 0, v.videoWidth, v.videoHeight, 0, 0, v.videoWidth, v.videoHeight);
  const d = x.getImageData(0, 0, c.width, {MARKER_BLOCK}).data;
  let n = 0;
  for (let i = 0; i < {MARKER_BITS}; i++) {{
    const px = ({MARKER_BLOCK // 2} * c.width + i * {MARKER_BLOCK} + {MARKER_BLOCK // 2}) * 4;
    if (d[px] > 128) n |= 1 << i;
  }}
  return [n, performance.now()];
}}"""
