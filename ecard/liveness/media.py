"""Decoding clips and frame sequences into (BGR frame, time in ms), with limits checked first.

Accepted: anything OpenCV's FFmpeg backend reads (mp4, webm, mov, mkv, avi), given as a path or
as bytes; a folder of JPEG/PNG frames taken in natural file-name order (``f_2.jpg`` before
``f_10.jpg``) at :data:`FOLDER_FPS`; or a list of ``(jpeg_bytes, t_ms)`` pairs from a browser.
Every failure is a typed :class:`~ecard.errors.MediaError`; OpenCV never reaches the caller.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ecard.errors import (
    EmptyMediaError,
    ImageTooLargeError,
    MediaTooLargeError,
    TooFewFramesError,
    UnreadableMediaError,
)
from ecard.image_limits import image_size
from ecard.liveness.policy import MediaLimits

Image = npt.NDArray[np.uint8]
TimedFrame = tuple[Image, float]

#: frame rate assumed for a folder of still frames (a browser sends about 10-15 frames a second)
FOLDER_FPS = 15.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"


def quiet_cv2() -> Any:
    """OpenCV with its own and FFmpeg's console logging off (errors reach users as ours)."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    import cv2

    with contextlib.suppress(AttributeError):  # builds without the logging module
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return cv2


def natural_key(name: str) -> list[object]:
    """Sort key putting ``f_2.jpg`` before ``f_10.jpg``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def folder_frames(folder: Path) -> list[Path]:
    """The image files of a frame folder in natural name order."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: natural_key(p.name))


#: Formats a frame may be (their headers are read with Pillow, the pixels decoded by OpenCV).
FRAME_FORMATS = ("JPEG", "PNG")


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height from an image header, without decoding the pixels.

    Pillow's process-wide decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``) is left as
    it is; a header past it is refused as ``media_too_large`` like any other oversized frame.
    """
    try:
        return image_size(data, formats=FRAME_FORMATS)
    except EmptyMediaError:
        raise
    except ImageTooLargeError as exc:
        raise MediaTooLargeError(exc.message) from None
    except UnreadableMediaError as exc:
        raise UnreadableMediaError("A frame is not a readable JPEG or PNG image.") from exc


def _check_size(width: int, height: int, limits: MediaLimits) -> None:
    if width > limits.max_width or height > limits.max_height:
        raise MediaTooLargeError(
            f"The picture is {width} x {height} pixels; at most "
            f"{limits.max_width} x {limits.max_height} is accepted."
        )


def decode_image(data: bytes, limits: MediaLimits) -> Image:
    """One JPEG/PNG frame as a BGR array (size checked from the header before decoding)."""
    import cv2

    if not data:
        raise EmptyMediaError("A frame is empty.")
    width, height = _image_size(data)
    _check_size(width, height, limits)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadableMediaError("A frame is not a readable JPEG or PNG image.")
    return np.asarray(image, dtype=np.uint8)


def iter_jpegs(frames: Sequence[tuple[bytes, float]], limits: MediaLimits) -> Iterator[TimedFrame]:
    """Decode ``(jpeg_bytes, t_ms)`` pairs in order; timestamps must increase."""
    if len(frames) > limits.max_frames:
        raise MediaTooLargeError(f"At most {limits.max_frames} frames are accepted.")
    if sum(len(data) for data, _ in frames) > limits.max_bytes:
        raise MediaTooLargeError(f"The frames exceed {limits.max_bytes} bytes in total.")
    if len(frames) < limits.min_frames:
        raise TooFewFramesError(f"At least {limits.min_frames} frames are needed.")
    try:
        times = [float(t) for _, t in frames]
    except (TypeError, ValueError):
        raise UnreadableMediaError("Frame timestamps must be numbers that increase.") from None
    if not all(np.isfinite(t) for t in times) or any(b <= a for a, b in itertools.pairwise(times)):
        raise UnreadableMediaError("Frame timestamps must be numbers that increase.")
    if times[-1] - times[0] > limits.max_duration_ms:
        raise MediaTooLargeError(f"The frames span more than {limits.max_duration_ms} ms.")
    for (data, _), t in zip(frames, times, strict=True):
        yield decode_image(data, limits), t


def iter_folder(folder: Path, limits: MediaLimits) -> Iterator[TimedFrame]:
    files = folder_frames(folder)
    if len(files) > limits.max_frames:
        raise MediaTooLargeError(f"At most {limits.max_frames} frames are accepted.")
    if len(files) < limits.min_frames:
        raise TooFewFramesError(
            f"The folder has {len(files)} image frames; at least {limits.min_frames} are needed."
        )
    for i, path in enumerate(files):
        yield decode_image(path.read_bytes(), limits), i * 1000.0 / FOLDER_FPS


@contextlib.contextmanager
def memory_file(data: bytes) -> Iterator[str]:
    """A path to ``data`` in an anonymous in-memory file (``memfd_create``), for readers that
    want a path (OpenCV's FFmpeg backend). Nothing is written to any file system; the memory is
    freed when the block ends."""
    fd = os.memfd_create("ecard-clip", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def iter_video(source: str | os.PathLike[str] | bytes, limits: MediaLimits) -> Iterator[TimedFrame]:
    """Decode a clip (path, folder or bytes) into BGR frames with their times in ms."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        _check_bytes(len(data), limits)
        _refuse_still(data[:16], lambda: data, limits)
        with memory_file(data) as in_memory:
            yield from _iter_capture(in_memory, limits)
        return
    path = Path(source)
    if path.is_dir():
        yield from iter_folder(path, limits)
        return
    size = path.stat().st_size  # OSError (missing file) is the caller's bad input
    _check_bytes(size, limits)
    with path.open("rb") as fh:
        head = fh.read(16)
    _refuse_still(head, path.read_bytes, limits)
    yield from _iter_capture(str(path), limits)


def _check_bytes(size: int, limits: MediaLimits) -> None:
    if size == 0:
        raise EmptyMediaError("The clip is empty.")
    if size > limits.max_bytes:
        raise MediaTooLargeError(f"The clip has {size} bytes; at most {limits.max_bytes}.")


def _refuse_still(head: bytes, read: Any, limits: MediaLimits) -> None:
    """A single JPEG/PNG is not a clip: refuse it (after the size check, so it reads as such)."""
    if head.startswith(_JPEG) or head.startswith(_PNG):
        width, height = _image_size(read())
        _check_size(width, height, limits)
        raise TooFewFramesError("A single picture is not a clip: liveness needs a video.")


def _iter_capture(path: str, limits: MediaLimits) -> Iterator[TimedFrame]:
    cv2 = quiet_cv2()

    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise UnreadableMediaError("The file is not a readable video.")
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        _check_size(width, height, limits)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        # a frame count is only trusted with a plausible constant rate: browser webm (variable
        # rate, often reported as 1000 fps) has no reliable count, so it is not checked
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if 1.0 <= fps <= 120.0 else 0
        if not 1.0 <= fps <= 240.0:
            fps = 30.0
        count = 0
        last_t = -1.0
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if count >= limits.max_frames:
                raise MediaTooLargeError(f"The clip has more than {limits.max_frames} frames.")
            pos = float(cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
            t = count * 1000.0 / fps
            if count > 0 and pos > last_t and abs(pos - t) < 5000:
                t = pos  # the container's own timestamps (variable frame rate, browser webm)
            elif count > 0 and t <= last_t:
                t = last_t + 1000.0 / fps
            if t > limits.max_duration_ms:
                raise MediaTooLargeError(f"The clip is longer than {limits.max_duration_ms} ms.")
            last_t = t
            count += 1
            yield np.asarray(frame, dtype=np.uint8), t
        if count < limits.min_frames:
            raise TooFewFramesError(
                f"The clip has {count} readable frames; at least {limits.min_frames} are needed."
            )
        if declared > 0 and count < 0.9 * declared - 1:
            raise UnreadableMediaError(
                f"The video is truncated or damaged: {count} of {declared} frames could be read."
            )
    finally:
        cap.release()
