"""The liveness upload: multipart ``nonce`` + ``video`` (one file) or ``frames`` (JPEG parts).

Limits (bytes, frames, duration, resolution) are checked from headers and container metadata
before any frame is decoded for analysis; the bytes stay in memory and are dropped after the
request. Frame timestamps: an optional ``timestamps_ms`` field (a JSON list of non-decreasing
integers, one per frame), else an even frame rate from an optional ``fps`` field (default 15).
"""

from __future__ import annotations

import io
import itertools
import json
import math
from dataclasses import dataclass

from flask import Request, request

from ecard.errors import (
    InvalidFieldError,
    MediaError,
    MediaTooLargeError,
    MissingFieldError,
    UnreadableMediaError,
    UnsupportedMediaTypeError,
)
from ecard.web.services import WebSettings

DEFAULT_FPS = 15.0


class MemoryRequest(Request):
    """Uploaded files stay in memory: werkzeug would spool a part over 500 kB to a temporary
    file on disk, and an upload holds frames. The body is capped by ``MAX_CONTENT_LENGTH``."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> io.BytesIO:
        return io.BytesIO()


@dataclass(frozen=True)
class Upload:
    """One liveness upload, in memory only. Exactly one of ``video`` and ``frames`` is set."""

    nonce: str
    video: bytes | None
    frames: tuple[tuple[bytes, int], ...]


def _frame_size(data: bytes) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            if img.format != "JPEG":
                raise UnreadableMediaError("Each frame must be a JPEG image.")
            return int(img.size[0]), int(img.size[1])
    except (UnidentifiedImageError, OSError, ValueError):
        raise UnreadableMediaError("A frame is not a readable JPEG image.") from None


def _timestamps(count: int) -> list[int]:
    raw = request.form.get("timestamps_ms")
    if raw is not None:
        try:
            stamps = json.loads(raw)
        except ValueError:
            raise InvalidFieldError("timestamps_ms must be a JSON list of integers.") from None
        if (
            not isinstance(stamps, list)
            or len(stamps) != count
            or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in stamps)
            or any(b < a for a, b in itertools.pairwise(stamps))
        ):
            raise InvalidFieldError(
                "timestamps_ms must list one non-negative, non-decreasing integer per frame."
            )
        return [int(t) for t in stamps]
    fps_raw = request.form.get("fps")
    fps = DEFAULT_FPS
    if fps_raw is not None:
        try:
            fps = float(fps_raw)
        except ValueError:
            raise InvalidFieldError("fps must be a number.") from None
        if not math.isfinite(fps) or not 1.0 <= fps <= 120.0:
            raise InvalidFieldError("fps must be between 1 and 120.")
    return [round(i * 1000.0 / fps) for i in range(count)]


def _probe_video(data: bytes, limits: WebSettings) -> None:
    """Check a clip's resolution, frame count and duration from its container (no decoding)."""
    import cv2

    from ecard.liveness.media import memory_file

    with memory_file(data) as path:
        cap = cv2.VideoCapture(path)
        try:
            if not cap.isOpened():
                raise UnreadableMediaError("The video cannot be read.")
            width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        finally:
            cap.release()
    if width <= 0 or height <= 0:
        raise UnreadableMediaError("The video cannot be read.")
    if max(width, height) > limits.max_frame_side:
        raise MediaTooLargeError(
            f"The video is {width}x{height}; at most {limits.max_frame_side} pixels a side."
        )
    if count > limits.max_frames * 3:
        raise MediaTooLargeError(f"The video has {count} frames; it is too long.")
    if fps > 0 and count > 0 and count / fps * 1000 > limits.max_clip_ms:
        raise MediaError(
            f"The video lasts {count / fps:.1f} s; at most {limits.max_clip_ms // 1000} s."
        )


def read_upload(limits: WebSettings) -> Upload:
    """Parse and bound-check the liveness upload of the current request."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaTypeError("Send the clip as multipart/form-data.")
    nonce = request.form.get("nonce")
    if not nonce:
        raise MissingFieldError("The field 'nonce' is required.")
    if len(nonce) > 200:
        raise InvalidFieldError("The nonce is too long.")
    videos = request.files.getlist("video")
    frame_files = request.files.getlist("frames")
    if bool(videos) == bool(frame_files):
        raise MissingFieldError("Send either one 'video' file or 'frames' JPEG parts.")
    if videos:
        if len(videos) != 1:
            raise InvalidFieldError("Send exactly one 'video' file.")
        data = videos[0].read()
        if not data:
            raise MediaError("The video file is empty.")
        _probe_video(data, limits)
        return Upload(nonce, data, ())
    if len(frame_files) > limits.max_frames:
        raise MediaTooLargeError(
            f"{len(frame_files)} frames sent; at most {limits.max_frames} are accepted."
        )
    stamps = _timestamps(len(frame_files))
    if stamps and stamps[-1] - stamps[0] > limits.max_clip_ms:
        raise MediaError(f"The frames span more than {limits.max_clip_ms // 1000} s.")
    frames = []
    for part, t_ms in zip(frame_files, stamps, strict=True):
        data = part.read()
        if not data:
            raise MediaError("A frame is empty.")
        w, h = _frame_size(data)
        if max(w, h) > limits.max_frame_side:
            raise MediaTooLargeError(
                f"A frame is {w}x{h}; at most {limits.max_frame_side} pixels a side."
            )
        frames.append((data, t_ms))
    return Upload(nonce, None, tuple(frames))
