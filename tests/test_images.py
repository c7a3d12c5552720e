"""Photo loading: EXIF orientation, colour modes, size limits checked before decoding."""

from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sharedpaths import shared_path

from ecard.errors import (
    EmptyMediaError,
    ImageTooSmallError,
    MediaError,
    MediaTooLargeError,
    UnreadableMediaError,
)
from ecard.faces.images import DEFAULT_MAX_SIDE, is_photo, load_photo


def _jpeg(img: Image.Image, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kwargs)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _gradient(width: int, height: int) -> Image.Image:
    """An RGB picture whose orientation can be told from its pixels (red grows rightwards)."""
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, np.full_like(x, 60)], axis=-1), "RGB")


@functools.cache
def _png_bomb(width: int, height: int) -> bytes:
    """A valid, tiny PNG that declares ``width`` x ``height`` gray pixels (all black).

    Built row by row with a streaming compressor, so the test never holds the pixels either.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_exif_orientation_is_applied() -> None:
    picture = _gradient(120, 80)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": what phones write for a portrait shot
    loaded = load_photo(_jpeg(picture, exif=exif.tobytes()))
    assert loaded.shape == (120, 80, 3)  # upright: portrait, not the stored landscape
    expected = np.asarray(picture.transpose(Image.Transpose.ROTATE_270))
    assert np.abs(loaded.astype(int) - expected.astype(int)).mean() < 3


@pytest.mark.shared_data
def test_sideways_phone_photo_comes_out_upright_with_its_face(face_models) -> None:
    """The shared T1 still is stored sideways (EXIF Orientation 6); its face must be found."""
    from ecard.faces.match import find_faces

    path = shared_path("blink", "spoof_stills", "silentface__image_T1.jpg")
    stored = Image.open(path)
    assert stored.size == (640, 480)
    raw = np.asarray(stored.convert("RGB"))
    assert face_models.detect(raw, 1) == []  # what face_recognition.load_image_file sees
    upright = load_photo(path)
    assert upright.shape[:2] == (640, 480)
    _, boxes = find_faces(upright, face_models)
    assert len(boxes) == 1


def test_large_photo_is_downscaled_keeping_its_aspect() -> None:
    loaded = load_photo(_jpeg(_gradient(3000, 2000)))
    assert loaded.shape == (683, DEFAULT_MAX_SIDE, 3)
    assert loaded.dtype == np.uint8 and loaded.flags.c_contiguous
    assert load_photo(_jpeg(_gradient(300, 200)), max_side=None).shape == (200, 300, 3)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG2000", "WEBP", "BMP", "TIFF", "GIF"])
def test_common_formats_load_as_rgb(fmt: str) -> None:
    """JPEG 2000 included: that is how ID-card chips and passports store the photo."""
    buf = io.BytesIO()
    Image.new("RGB", (102, 126), (30, 120, 200)).save(buf, fmt)
    loaded = load_photo(buf.getvalue())
    assert loaded.shape == (126, 102, 3)
    assert np.abs(loaded[60, 50].astype(int) - (30, 120, 200)).max() <= 12


def test_transparent_png_gets_a_white_background() -> None:
    rgba = np.zeros((64, 64, 4), dtype=np.uint8)
    rgba[:32, :, :] = (200, 10, 10, 255)  # opaque red top half, transparent bottom half
    loaded = load_photo(_png(Image.fromarray(rgba, "RGBA")))
    assert tuple(loaded[10, 10]) == (200, 10, 10)
    assert tuple(loaded[50, 10]) == (255, 255, 255)


def test_sixteen_bit_gray_png_is_scaled_not_clipped() -> None:
    gray = np.full((64, 64), 1000, dtype=np.uint16)
    gray[:, 32:] = 4000
    loaded = load_photo(_png(Image.fromarray(gray)))
    assert loaded[0, 0, 0] < 100 and loaded[0, 63, 0] == 255  # contrast kept


def test_path_and_bytes_give_the_same_pixels(tmp_path: Path) -> None:
    data = _png(_gradient(90, 70))
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    assert np.array_equal(load_photo(path), load_photo(data))
    assert np.array_equal(load_photo(str(path)), load_photo(bytearray(data)))


def _truncated_jpeg() -> bytes:
    data = _jpeg(_gradient(400, 300))
    return data[: len(data) // 2]


BAD_INPUTS = [
    ("empty", lambda: b"", EmptyMediaError, "empty"),
    (
        "not an image",
        lambda: b"%PDF-1.4 hello, this is not a picture" * 10,
        UnreadableMediaError,
        "not an image",
    ),
    ("truncated jpeg", _truncated_jpeg, UnreadableMediaError, "truncated"),
    (
        "eps (would run Ghostscript)",
        lambda: (
            b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n"
            b"0 0 moveto 64 64 lineto stroke\n%%EOF\n"
        ),
        UnreadableMediaError,
        "supported format",
    ),
    ("10000 x 10000 png", lambda: _png_bomb(10_000, 10_000), MediaTooLargeError, "10000 x 10000"),
    ("1 x 1 png", lambda: _png(Image.new("RGB", (1, 1))), ImageTooSmallError, "1 x 1"),
    ("20 x 500 png", lambda: _png(Image.new("RGB", (20, 500))), ImageTooSmallError, "20 x 500"),
]


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_photos_are_typed_errors(make, error: type[MediaError], words: str) -> None:
    data = make()
    with pytest.raises(error, match=words) as info:
        load_photo(data)
    assert info.value.exit_code == 2 and 400 <= info.value.status < 500


def test_bomb_is_refused_from_its_header() -> None:
    """The 10,000 x 10,000 PNG is ~100 kB; refusing it must not decode its 100 MB of pixels."""
    data = _png_bomb(10_000, 10_000)
    assert len(data) < 1_000_000
    with pytest.raises(MediaTooLargeError):
        load_photo(data, max_side=None)
    # Far over Pillow's own guard (2 x 89 MP), which raises inside Image.open: also typed.
    with pytest.raises(MediaTooLargeError):
        load_photo(_png_bomb(20_000, 9_000))


def test_missing_path_and_folder_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(UnreadableMediaError, match="Cannot read"):
        load_photo(tmp_path / "nope.jpg")
    with pytest.raises(UnreadableMediaError, match="folder"):
        load_photo(tmp_path)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(EmptyMediaError):
        load_photo(empty)


def test_is_photo_tells_stills_from_other_files(tmp_path: Path) -> None:
    photo = tmp_path / "a.png"
    photo.write_bytes(_png(_gradient(50, 50)))
    clip = tmp_path / "b.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    assert is_photo(photo)
    assert not is_photo(clip)
    assert not is_photo(tmp_path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP"])
def test_damaged_files_give_typed_errors_only(fmt: str) -> None:
    """Random byte flips and cuts (seeded): every outcome is a picture or a MediaError."""
    import random

    from ecard.errors import EcardError

    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    _gradient(100, 80).save(buf, fmt, **({"exif": exif.tobytes()} if fmt == "JPEG" else {}))
    original = buf.getvalue()
    rng = random.Random(fmt)
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(150):
        data = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        try:
            image = load_photo(bytes(data))
        except EcardError as exc:
            assert isinstance(exc, MediaError), exc
            outcomes["refused"] += 1
        else:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            outcomes["ok"] += 1
    assert outcomes["refused"] > 0


def test_bomb_costs_no_memory(tmp_path: Path) -> None:
    """Measured in a fresh process: refusing the 10,000 x 10,000 PNG keeps the peak RSS small
    (decoding it would take 100 MB gray + 300 MB RGB)."""
    import subprocess
    import sys

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_bomb(10_000, 10_000))
    code = (
        "import resource, sys\n"
        "from ecard.errors import MediaTooLargeError\n"
        "from ecard.faces.images import load_photo\n"
        "import numpy, PIL.Image\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    load_photo(sys.argv[1], max_side=None)\n"
        "except MediaTooLargeError:\n"
        "    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    grown_kib = int(proc.stdout.strip())
    assert grown_kib < 20_000  # < 20 MB over the imports
