"""Photo loading for the face pipeline: bytes or a path in, an upright RGB uint8 array out.

What this adds over ``face_recognition.load_image_file``:

* EXIF orientation is applied (phone photos are stored sideways with Orientation 6 or 8; without
  it the face is lying on its side and the HOG detector finds nothing);
* size limits (:class:`~ecard.image_limits.ImageLimits`, per purpose: :data:`ID_PHOTO` by
  default, :data:`~ecard.image_limits.CAMERA_FRAME` for the face check) are checked from the
  header *before* the pixels are decoded, so a decompression bomb (a 10,000 x 10,000 PNG of a
  few kB) is refused without allocating 300 MB, and Pillow's process-wide guard is left alone;
* large photos are decoded at a reduced scale (JPEG DCT scaling) and downscaled to
  ``max_side`` pixels, which is all the detector and the 150 x 150 face chip need;
* every failure is a typed :class:`~ecard.errors.MediaError` with a message for the sender.

Pillow is imported inside the functions (it is light, but nothing image-related runs at import).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ecard.errors import (
    EmptyMediaError,
    ImageTooLargeError,
    MediaError,
    MediaTooLargeError,
    UnreadableMediaError,
)
from ecard.faces.models import Image
from ecard.image_limits import ID_PHOTO, ImageLimits, check_size

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

#: Any photo source the face pipeline accepts: raw file bytes or a file path.
PhotoSource = bytes | bytearray | memoryview | str | os.PathLike[str]

#: Largest file accepted by default, in bytes (a 48-megapixel phone JPEG is about 15 MB).
MAX_FILE_BYTES = ID_PHOTO.max_bytes
#: Largest image accepted by default, in pixels (width x height) as declared by the header: 50 MP
#: lets a 48 MP phone photo (8000 x 6000) through and refuses 10,000 x 10,000 before decoding.
MAX_PIXELS = ID_PHOTO.max_pixels
#: Smallest side accepted, in pixels: below this no face can be found (a chip photo is 102 x 126).
MIN_SIDE = ID_PHOTO.min_side
#: Formats Pillow may open. Everything else (EPS, which runs Ghostscript; PSD; ICO; ...) is
#: refused: a photo upload has no business reaching a less-travelled decoder.
PHOTO_FORMATS = ("JPEG", "JPEG2000", "PNG", "WEBP", "GIF", "BMP", "TIFF")
#: Default long side, in pixels, that photos are downscaled to for detection and encoding.
#: A portrait at 1024 px still has a face of 300+ px; the encoder works on a 150 x 150 chip.
DEFAULT_MAX_SIDE = 1024


def read_source(source: PhotoSource, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``source`` (bytes are passed through), refusing empty and oversized files."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise MediaTooLargeError(
                    f"{path.name} has {size} bytes; the limit is {max_bytes} bytes."
                )
            data = path.read_bytes()
        except IsADirectoryError as exc:
            raise UnreadableMediaError(f"{path} is a folder, not a photo.") from exc
        except OSError as exc:
            raise UnreadableMediaError(
                f"Cannot read {path}: {exc.strerror or exc.__class__.__name__}."
            ) from exc
    if not data:
        raise EmptyMediaError()
    if len(data) > max_bytes:
        raise MediaTooLargeError(f"The file has {len(data)} bytes; the limit is {max_bytes}.")
    return data


def _open_checked(data: bytes, limits: ImageLimits = ID_PHOTO) -> PILImage:
    """Open ``data`` with Pillow reading only the header, and check the declared dimensions
    against ``limits`` (Pillow's global guard is not touched)."""
    from PIL import Image as PIL
    from PIL import UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns above ~89 MP (our own, lower limit is checked just below) and raises
            # above ~179 MP; opening reads the header only.
            warnings.simplefilter("ignore", PIL.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # malformed metadata: not the user's
            img = PIL.open(io.BytesIO(data), formats=PHOTO_FORMATS)
    except PIL.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"The image is too large to process (over {limits.max_pixels // 1_000_000} megapixels)."
        ) from exc
    except UnidentifiedImageError as exc:
        raise UnreadableMediaError(
            "The file is not an image in a supported format "
            "(JPEG, JPEG 2000, PNG, WebP, GIF, BMP, TIFF)."
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise UnreadableMediaError(f"The image header cannot be read ({exc}).") from exc
    width, height = img.size
    try:
        check_size(width, height, limits)
    except MediaError:
        img.close()
        raise
    return img


def _to_rgb(img: PILImage) -> PILImage:
    """RGB version of ``img``; transparent areas become white (as on a printed ID photo)."""
    from PIL import Image as PIL

    if img.mode == "RGB":
        return img
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = PIL.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit gray: scale to 8 bits instead of clipping everything above 255 to white.
        arr = np.asarray(img, dtype=np.float64)
        peak = float(arr.max()) or 1.0
        gray = np.clip(arr * (255.0 / peak), 0, 255).astype(np.uint8)
        return PIL.fromarray(gray, mode="L").convert("RGB")
    return img.convert("RGB")


def is_photo(path: str | os.PathLike[str]) -> bool:
    """True when Pillow recognises the file as a still image (reads the header only).

    Used to route a file to photo or video handling; a folder or a video file is False.
    """
    from PIL import Image as PIL

    if Path(path).is_dir():
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.DecompressionBombWarning)
            with PIL.open(path, formats=PHOTO_FORMATS):
                return True
    except PIL.DecompressionBombError:
        return True  # an image, refused later by load_photo with a clear error
    except (OSError, ValueError, SyntaxError):
        return False


def load_photo(
    source: PhotoSource,
    *,
    max_side: int | None = DEFAULT_MAX_SIDE,
    limits: ImageLimits = ID_PHOTO,
) -> Image:
    """Decode a photo (JPEG, PNG, WebP, anything Pillow reads) into an upright RGB uint8 array.

    ``source`` is the file's bytes or its path. EXIF orientation is applied. Images whose long
    side exceeds ``max_side`` pixels are downscaled (aspect kept); ``None`` keeps full size.
    Multi-frame files (GIF, TIFF) give their first frame. ``limits`` is what the picture may
    declare (:data:`~ecard.image_limits.ID_PHOTO` by default: 40 MB, 8192 px a side, 50 MP;
    pass :data:`~ecard.image_limits.CAMERA_FRAME` for a camera still).

    Raises :class:`~ecard.errors.EmptyMediaError` (empty file),
    :class:`~ecard.errors.UnreadableMediaError` (not an image, truncated, unreadable path),
    :class:`~ecard.errors.MediaTooLargeError` (file over ``limits.max_bytes``),
    :class:`~ecard.errors.ImageTooLargeError` (header over ``limits.max_side`` or
    ``limits.max_pixels``, checked before decoding) and :class:`~ecard.errors.ImageTooSmallError`
    (a side under ``limits.min_side`` pixels).
    """
    from PIL import Image as PIL
    from PIL import ImageOps

    data = read_source(source, max_bytes=limits.max_bytes)
    img = _open_checked(data, limits)
    try:
        if max_side is not None and img.format == "JPEG":
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still covers max_side:
            # a 48 MP photo then costs a 3 MP decode. EXIF may swap the axes, so keep both >=.
            img.draft("RGB", (max_side, max_side))
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # e.g. "Tag data larger than file"
            img.load()
            upright = ImageOps.exif_transpose(img) or img
            rgb = _to_rgb(upright)
    except (PIL.DecompressionBombWarning, PIL.DecompressionBombError) as exc:
        raise MediaTooLargeError("The image is too large to process.") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UnreadableMediaError(
            "The image cannot be decoded (truncated or corrupt file)."
        ) from exc
    if max_side is not None and max(rgb.size) > max_side:
        factor = max_side / max(rgb.size)
        size = (max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor)))
        rgb = rgb.resize(size, PIL.Resampling.LANCZOS, reducing_gap=2.0)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
