"""Size limits of an uploaded picture, per purpose, checked from its header before decoding.

A PNG of one flat colour compresses about 1000 : 1, so the byte limit says little about the
work a picture costs: a 62 kB PNG declares 7,000 x 7,000 pixels, and decoding it takes 49 MB
and a second or more of CPU before anything useful happens. Each purpose therefore has its own
:class:`ImageLimits` — bytes, longest side and pixel count — and :func:`check_image_header`
refuses a picture from the width and height its header declares, before a single pixel is
decoded (:class:`~ecard.errors.ImageTooLargeError`, HTTP 413 ``image_too_large``).

============  ========  ========  =========  ==============================================
purpose       bytes     side      pixels     what it must hold
============  ========  ========  =========  ==============================================
QR photo      15 MB     4096 px   16.8 MP    a phone photo of a phone screen (12 MP cameras
                                             give 4032 x 3024); the decoder works at 1600 px
camera frame  bytes of  1920 px   3.7 MP     a browser's camera frame (640 x 480 to
              the step                       1920 x 1080), the face check's preview still
ID photo      40 MB     8192 px   50 MP      the registry photo (a 102 x 126 chip photo or a
                                             scan) and ``ecard match``'s phone photos (48 MP)
============  ========  ========  =========  ==============================================

The header is read with Pillow's lazy :func:`PIL.Image.open`, which parses only the header.
Pillow's own decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``, a process-wide setting)
is never changed: it stays in force for every other caller in the process. Pictures past that
guard (over ~179 MP) raise inside ``Image.open``; they are refused here with the same error.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from ecard.errors import (
    EmptyMediaError,
    ImageTooLargeError,
    ImageTooSmallError,
    MediaTooLargeError,
    UnreadableMediaError,
)


@dataclass(frozen=True)
class ImageLimits:
    """What a picture may declare for one purpose (``what`` names it in messages)."""

    what: str
    #: largest file, in bytes
    max_bytes: int
    #: longest side, in pixels
    max_side: int
    #: width x height, in pixels
    max_pixels: int
    #: shortest side, in pixels (below it the picture cannot serve its purpose)
    min_side: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min_side <= self.max_side or self.max_pixels < 1 or self.max_bytes < 1:
            raise ValueError("ImageLimits need 1 <= min_side <= max_side and positive maxima")


#: A photo of a QR code on a phone screen (``POST /api/v1/scan``, the desk, ``ecard scan``).
QR_PHOTO = ImageLimits("QR code picture", 15 * 1024 * 1024, 4096, 4096 * 4096)
#: One camera frame of a liveness clip, or the face check's preview still.
CAMERA_FRAME = ImageLimits("camera frame", 50 * 1024 * 1024, 1920, 1920 * 1920)
#: An ID photo or a photo to match (registry import, ``ecard citizens add``, ``ecard match``).
ID_PHOTO = ImageLimits("photo", 40 * 1024 * 1024, 8192, 50_000_000, min_side=32)

#: The formats a picture upload may be: everything else (EPS runs Ghostscript; PSD, ICO, ...)
#: never reaches a decoder.
PICTURE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")


def image_size(data: bytes, *, formats: Sequence[str] = PICTURE_FORMATS) -> tuple[int, int]:
    """Width and height declared by the header of ``data``; no pixel is decoded.

    Raises :class:`~ecard.errors.EmptyMediaError`, :class:`~ecard.errors.UnreadableMediaError`
    (not one of ``formats``, or a damaged header) or :class:`~ecard.errors.ImageTooLargeError`
    (past Pillow's own guard, ~179 MP, which it enforces while reading the header).
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise EmptyMediaError("The picture is empty.")
    try:
        with warnings.catch_warnings():
            # Pillow warns between ~89 and ~179 MP: the caller's own, lower limit decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # malformed metadata: not the sender's
            with Image.open(io.BytesIO(data), formats=list(formats)) as img:
                width, height = img.size
    except Image.DecompressionBombError:
        raise ImageTooLargeError(
            f"The picture declares more than {2 * _pillow_guard() // 1_000_000} megapixels."
        ) from None
    except UnidentifiedImageError:
        raise UnreadableMediaError(
            f"The file is not a picture in a supported format ({', '.join(formats)})."
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UnreadableMediaError(f"The picture's header cannot be read ({exc}).") from None
    return int(width), int(height)


def _pillow_guard() -> int:
    from PIL import Image

    return int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def check_size(width: int, height: int, limits: ImageLimits) -> None:
    """Refuse ``width`` x ``height`` pixels that ``limits`` do not allow (typed errors)."""
    if max(width, height) > limits.max_side or width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"The {limits.what} is {width} x {height} pixels; at most {limits.max_side} pixels "
            f"a side and {limits.max_pixels / 1e6:.1f} megapixels are accepted."
        )
    if min(width, height) < limits.min_side:
        raise ImageTooSmallError(
            f"The {limits.what} is {width} x {height} pixels; at least "
            f"{limits.min_side} x {limits.min_side} is needed."
        )


def check_image_header(
    data: bytes, limits: ImageLimits, *, formats: Sequence[str] = PICTURE_FORMATS
) -> tuple[int, int]:
    """Check the bytes and the declared size of a picture against ``limits``; no decoding.

    Returns ``(width, height)``. Raises :class:`~ecard.errors.MediaTooLargeError` (bytes),
    :class:`~ecard.errors.ImageTooLargeError` (side or pixels),
    :class:`~ecard.errors.ImageTooSmallError` or :class:`~ecard.errors.UnreadableMediaError`.
    """
    if len(data) > limits.max_bytes:
        raise MediaTooLargeError(
            f"The {limits.what} has {len(data)} bytes; at most {limits.max_bytes} are accepted."
        )
    width, height = image_size(data, formats=formats)
    check_size(width, height, limits)
    return width, height
