"""Test media made at run time from the real clips in ../shared/data/blink.

Chromium's fake camera (``--use-file-for-fake-video-capture``) plays a YUV4MPEG2 (``.y4m``) file
in a loop. The format is a one-line text header followed by raw I420 frames, so it is written
here directly from OpenCV-decoded frames with numpy (no ffmpeg on the machine).
"""

from __future__ import annotations

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
