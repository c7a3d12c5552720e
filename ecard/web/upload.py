"""The liveness upload: multipart ``nonce`` + ``video`` (one file) or ``frames`` (JPEG parts).

The fields are validated by :class:`~ecard.web.schemas.LivenessForm` (shape, types, bounded
frame times); here the limits (frames, duration, resolution) are checked from headers and
container metadata before any frame is decoded for analysis. The bytes stay in memory
(:class:`MemoryRequest`) and are dropped after the request.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from flask import Request

from ecard.errors import (
    MediaError,
    MediaTooLargeError,
    UnreadableMediaError,
)
from ecard.web.schemas import LivenessForm
from ecard.web.services import WebSettings


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


def read_upload(form: LivenessForm, limits: WebSettings) -> Upload:
    """Bound-check the validated liveness upload (frame count, span, JPEG sides, the clip's
    container) from headers only, before anything is decoded for analysis."""
    if form.video is not None:
        if not form.video:
            raise MediaError("The video file is empty.")
        _probe_video(form.video, limits)
        return Upload(form.nonce, form.video, ())
    if len(form.frames) > limits.max_frames:
        raise MediaTooLargeError(
            f"{len(form.frames)} frames sent; at most {limits.max_frames} are accepted."
        )
    stamps = form.frame_times()
    if stamps and stamps[-1] - stamps[0] > limits.max_clip_ms:
        raise MediaError(f"The frames span more than {limits.max_clip_ms // 1000} s.")
    frames = []
    for data, t_ms in zip(form.frames, stamps, strict=True):
        if not data:
            raise MediaError("A frame is empty.")
        w, h = _frame_size(data)
        if max(w, h) > limits.max_frame_side:
            raise MediaTooLargeError(
                f"A frame is {w}x{h}; at most {limits.max_frame_side} pixels a side."
            )
        frames.append((data, t_ms))
    return Upload(form.nonce, None, tuple(frames))
