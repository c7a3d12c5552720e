"""Picture limits per purpose, refused from the header before decoding (finding 6), and no
process-wide change to Pillow's decompression-bomb guard (issue 11, "No process-wide side
effects")."""

from __future__ import annotations

import functools
import io
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ecard.errors import ImageTooLargeError, MediaTooLargeError, UnreadableMediaError
from ecard.image_limits import (
    CAMERA_FRAME,
    ID_PHOTO,
    QR_PHOTO,
    ImageLimits,
    check_image_header,
    image_size,
)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def flat_png(width: int, height: int, grey: int = 200) -> bytes:
    """A complete, valid PNG of one flat grey, built row by row (the test never holds the
    pixels): 7,000 x 7,000 is about 50 kB."""
    comp = zlib.compressobj(9)
    row = b"\x00" + bytes([grey]) * width  # filter byte + pixels
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return _PNG_MAGIC + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` and whose pixels never come."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))
    return _PNG_MAGIC + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every attempt to decode pixels (OpenCV's imdecode, Pillow's load)."""
    import cv2
    from PIL import ImageFile

    calls: list[str] = []
    real_imdecode, real_load = cv2.imdecode, ImageFile.ImageFile.load

    def imdecode(*args: Any, **kwargs: Any) -> Any:
        calls.append("cv2.imdecode")
        return real_imdecode(*args, **kwargs)

    def load(self: Any) -> Any:
        calls.append("PIL.load")
        return real_load(self)

    monkeypatch.setattr(cv2, "imdecode", imdecode)
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return calls


# --- the limits themselves ------------------------------------------------------------------


def test_the_7000_px_png_is_small_in_bytes_and_passes_the_old_limits() -> None:
    data = flat_png(7000, 7000)
    assert len(data) < 100_000  # under every byte limit, and under the old 50 MP limit
    assert image_size(data) == (7000, 7000)


@pytest.mark.parametrize("limits", [QR_PHOTO, CAMERA_FRAME], ids=lambda lim: lim.what)
def test_7000_px_png_is_refused_from_its_header(
    limits: ImageLimits, no_decoding: list[str]
) -> None:
    data = flat_png(7000, 7000)
    start = time.process_time()
    with pytest.raises(ImageTooLargeError, match="7000 x 7000") as info:
        check_image_header(data, limits)
    assert time.process_time() - start < 0.1  # CPU seconds; decoding took 0.9-2.3 s
    assert no_decoding == []
    assert info.value.code == "image_too_large" and info.value.status == 413


@pytest.mark.parametrize(
    ("limits", "fits", "too_long", "too_many"),
    [
        (QR_PHOTO, (4032, 3024), (4100, 100), None),  # a 12 MP phone photo fits
        (CAMERA_FRAME, (1920, 1080), (1921, 1080), None),
        (ID_PHOTO, (8000, 6000), (8200, 100), (8000, 6500)),  # 48 MP fits, 52 MP does not
    ],
    ids=["qr", "frame", "id photo"],
)
def test_each_purpose_takes_what_it_needs_and_no_more(
    limits: ImageLimits,
    fits: tuple[int, int],
    too_long: tuple[int, int],
    too_many: tuple[int, int] | None,
) -> None:
    assert check_image_header(header_only_png(*fits), limits) == fits
    for size in (too_long, too_many):
        if size is not None:
            with pytest.raises(ImageTooLargeError):
                check_image_header(header_only_png(*size), limits)


def test_bytes_and_formats_are_checked_too() -> None:
    small = ImageLimits("thing", max_bytes=1000, max_side=100, max_pixels=10_000)
    with pytest.raises(MediaTooLargeError, match="bytes"):
        check_image_header(b"\x89PNG" + b"\x00" * 2000, small)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n%%EOF\n"
    with pytest.raises(UnreadableMediaError, match="supported format"):
        check_image_header(eps, small)
    with pytest.raises(ValueError):
        ImageLimits("bad", max_bytes=1, max_side=10, max_pixels=1, min_side=20)


def test_the_qr_decoder_refuses_it_before_decoding(no_decoding: list[str]) -> None:
    from ecard.tokens.qr import decode_qr_image

    with pytest.raises(ImageTooLargeError):
        decode_qr_image(flat_png(7000, 7000))
    assert no_decoding == []


def test_a_face_check_still_is_refused_before_decoding(no_decoding: list[str]) -> None:
    from ecard.faces.images import load_photo

    with pytest.raises(ImageTooLargeError):
        load_photo(flat_png(7000, 7000), max_side=480, limits=CAMERA_FRAME)
    assert no_decoding == []


# --- Pillow's global guard stays in force -----------------------------------------------------


def test_media_code_leaves_pillows_bomb_guard_alone(no_decoding: list[str]) -> None:
    """The frame decoder used to set ``PIL.Image.MAX_IMAGE_PIXELS = None`` for the whole
    process; every later ``Image.open(...).load()`` in the process then decoded any bomb."""
    import cv2

    from ecard.faces.images import load_photo
    from ecard.liveness.media import decode_image, iter_jpegs, iter_video
    from ecard.liveness.policy import MediaLimits

    before = Image.MAX_IMAGE_PIXELS
    assert before is not None and before < 100_000_000

    ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
    assert ok
    limits = MediaLimits()
    assert decode_image(jpeg.tobytes(), limits).shape == (48, 64, 3)
    with pytest.raises(MediaTooLargeError):
        decode_image(header_only_png(20_000, 10_000), limits)  # past Pillow's own guard
    with pytest.raises(MediaTooLargeError):
        list(iter_jpegs([(flat_png(7000, 7000), 0.0), (jpeg.tobytes(), 40.0)], limits))
    with pytest.raises(MediaTooLargeError):
        list(iter_video(header_only_png(20_000, 10_000), limits))  # a still, not a clip
    with pytest.raises(MediaTooLargeError):
        load_photo(header_only_png(20_000, 10_000))
    assert before == Image.MAX_IMAGE_PIXELS

    # an ordinary caller elsewhere in the process is still protected by Pillow
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(header_only_png(20_000, 10_000))).load()


def test_nothing_in_ecard_assigns_pillows_global_guard() -> None:
    import re

    assignment = re.compile(r"\.MAX_IMAGE_PIXELS\s*=(?!=)|setattr\([^)]*MAX_IMAGE_PIXELS")
    root = Path(__file__).resolve().parents[1] / "ecard"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if assignment.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


# --- through the routes: 413 with our JSON, nothing decoded -----------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Any:
    from ecard.web import create_app

    return create_app(
        {"ECARD_INSTANCE": str(tmp_path), "LOAD_MODELS": "0", "ECARD_RATELIMIT_ENABLED": "0"}
    )


def _basic(client_id: str, secret: str) -> dict[str, str]:
    import base64

    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def test_scan_route_answers_413_before_decoding(app: Any, no_decoding: list[str]) -> None:
    from ecard.channels import add_channel

    desk = add_channel(app.extensions["ecard"].store, "Hospital", "scan")
    resp = app.test_client().post(
        "/api/v1/scan",
        data={"image": (io.BytesIO(flat_png(7000, 7000)), "qr.png")},
        content_type="multipart/form-data",
        headers=_basic(desk.client_id, desk.client_secret),
    )
    assert resp.status_code == 413, resp.get_data(as_text=True)
    assert resp.json["error"] == "image_too_large" and "7000 x 7000" in resp.json["message"]
    assert no_decoding == []


def test_face_check_route_answers_413_before_decoding(app: Any, no_decoding: list[str]) -> None:
    from datetime import UTC, datetime

    from ecard.channels import add_channel
    from ecard.store.models import Citizen

    store = app.extensions["ecard"].store
    city = add_channel(store, "City", "enroll")
    with store.write() as s:
        s.add(
            Citizen(
                id_number="11010519491231002X",
                name="张伟",
                photo=b"-",
                template=b"-",
                created_at=datetime.now(UTC),
            )
        )
    client = app.test_client()
    enr = client.post(
        "/api/v1/enrollments",
        json={"id_number": "11010519491231002X", "name": "张伟"},
        headers=_basic(city.client_id, city.client_secret),
    )
    assert enr.status_code == 201, enr.json
    eid, token = enr.json["enrollment_id"], enr.json["enrollment_token"]
    auth = {"Authorization": f"Bearer {token}"}
    consent = client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=auth)
    assert consent.status_code == 200, consent.json
    data = flat_png(7000, 7000)
    assert len(data) < 200_000  # under the face check's byte limit
    resp = client.post(
        "/enroll/face-check",
        data={"enrollment_id": eid, "frame": (io.BytesIO(data), "still.png")},
        content_type="multipart/form-data",
        headers=auth,
    )
    assert resp.status_code == 413, resp.get_data(as_text=True)
    assert resp.json["error"] == "image_too_large"
    assert no_decoding == []
