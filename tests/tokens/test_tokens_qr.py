"""QR presentation tokens: size (version <= 11 at M), single use, rendering, and decoding from a
picture that looks like a phone photo of a screen (made with OpenCV at test time)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import numpy as np
import pytest
import segno

from ecard.errors import ConfigError, QrNotFoundError, TokenError, UnreadableMediaError
from ecard.tokens.jws import parse_header
from ecard.tokens.keys import KeyStore
from ecard.tokens.qr import (
    QR_MAX_VERSION,
    MemoryReplayGuard,
    decode_qr_image,
    issue_qr,
    qr_text_from_token,
    qr_version,
    render_png,
    render_svg,
    token_from_qr_text,
    verify_qr,
)

from .conftest import ISSUER, NOW

LONG_ISSUER = "https://ecard.shanghai.gov.cn"  # 29 characters


@pytest.mark.parametrize(
    ("issuer", "card_no"),
    [
        ("http://127.0.0.1:8000", "E310100123456"),
        (ISSUER, "E310100123456"),
        (LONG_ISSUER, "E" + "9" * 19),  # the longest card number the store allows (20)
    ],
)
def test_qr_fits_version_11_at_level_m(keystore: KeyStore, issuer: str, card_no: str) -> None:
    qr = issue_qr(keystore, card_no=card_no, issuer=issuer, now=NOW)
    assert qr_version(qr.text) <= QR_MAX_VERSION
    code = segno.make(qr.text, error="m", boost_error=False, micro=False)
    assert code.version <= 11 and code.error == "M" and code.mode == "alphanumeric"
    # the same token restored from the QR text is byte-identical
    assert token_from_qr_text(qr.text) == qr.token
    assert qr_text_from_token(qr.token) == qr.text


def test_qr_token_carries_only_what_the_desk_needs(keystore: KeyStore) -> None:
    qr = issue_qr(keystore, card_no="E310100123456", issuer=ISSUER, now=NOW)
    assert parse_header(qr.token) == {"alg": "ES256", "typ": "ecard-qr+jwt"}
    v = verify_qr(qr.token, keystore, issuer=ISSUER, replay_guard=None, now=NOW)
    assert v.card_no == "E310100123456" and v.expires_at - v.issued_at == 60
    assert v.kid == keystore.signing_key().kid
    import base64
    import json

    body = qr.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    assert set(claims) == {"iss", "sub", "iat", "exp", "jti"}


def test_too_long_issuer_is_refused_rather_than_a_big_qr(keystore: KeyStore) -> None:
    with pytest.raises(ConfigError, match="version-11"):
        issue_qr(keystore, card_no="E" * 20, issuer="https://" + "x" * 60, now=NOW)


@pytest.mark.parametrize("lifetime", [0, 61, 3600])
def test_qr_lifetime_is_at_most_60_seconds(keystore: KeyStore, lifetime: int) -> None:
    with pytest.raises(ValueError):
        issue_qr(keystore, card_no="E1", issuer=ISSUER, now=NOW, lifetime=lifetime)


def test_qr_expires_after_a_minute(keystore: KeyStore) -> None:
    qr = issue_qr(keystore, card_no="E310100123456", issuer=ISSUER, now=NOW)
    verify_qr(qr.text, keystore, issuer=ISSUER, replay_guard=None, now=NOW + 60)
    with pytest.raises(TokenError) as exc:
        verify_qr(qr.text, keystore, issuer=ISSUER, replay_guard=None, now=NOW + 66)
    assert exc.value.code == "token_expired"


def test_second_scan_is_a_replay(keystore: KeyStore) -> None:
    guard = MemoryReplayGuard()
    qr = issue_qr(keystore, card_no="E310100123456", issuer=ISSUER, now=NOW)
    verify_qr(qr.text, keystore, issuer=ISSUER, replay_guard=guard, now=NOW + 1)
    with pytest.raises(TokenError) as exc:
        verify_qr(qr.token, keystore, issuer=ISSUER, replay_guard=guard, now=NOW + 2)
    assert exc.value.code == "replayed" and exc.value.status == 409
    # a fresh QR code for the same card is fine
    fresh = issue_qr(keystore, card_no="E310100123456", issuer=ISSUER, now=NOW + 3)
    verify_qr(fresh.text, keystore, issuer=ISSUER, replay_guard=guard, now=NOW + 4)


def test_concurrent_scans_of_one_code_succeed_exactly_once(keystore: KeyStore) -> None:
    guard = MemoryReplayGuard()
    qr = issue_qr(keystore, card_no="E310100123456", issuer=ISSUER, now=NOW)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def scan() -> None:
        barrier.wait()
        try:
            verify_qr(qr.text, keystore, issuer=ISSUER, replay_guard=guard, now=NOW)
            results.append("ok")
        except TokenError as exc:
            results.append(exc.code)

    threads = [threading.Thread(target=scan) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["replayed"] * 7


def test_qr_verifies_across_a_rotation(keystore: KeyStore) -> None:
    qr = issue_qr(keystore, card_no="E310100123456", issuer=ISSUER, now=NOW)
    keystore.rotate(now=NOW)
    v = verify_qr(qr.text, keystore, issuer=ISSUER, replay_guard=None, now=NOW)
    assert v.kid != keystore.signing_key().kid  # found the verify-only key without a kid


def test_memory_guard_forgets_expired_tokens() -> None:
    clock = [float(NOW)]
    guard = MemoryReplayGuard(clock=lambda: clock[0])
    for i in range(1100):
        assert guard.use(f"j{i}", datetime.fromtimestamp(NOW + 60, UTC))
    clock[0] += 3600
    assert guard.use("late", datetime.fromtimestamp(NOW + 3660, UTC))
    assert len(guard) == 1


def test_render_png_and_svg(keystore: KeyStore) -> None:
    qr = issue_qr(keystore, card_no="E310100123456", issuer=ISSUER, now=NOW)
    png = render_png(qr.token)
    assert png.startswith(b"\x89PNG")
    svg = render_svg(qr.token)
    assert svg.startswith("<svg") and "<path" in svg
    assert decode_qr_image(png) == qr.text


def _phone_photo_of_screen(
    png: bytes, *, dark_mode: bool = False, seed: int = 7, code_px: int = 440, blur: float = 1.6
) -> bytes:
    """Put the code on a lit phone screen in a dim room, photograph it at an angle: perspective,
    rotation, scale, screen glow, defocus blur, sensor noise, JPEG."""
    import cv2

    rng = np.random.default_rng(seed)
    code = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    if dark_mode:
        code = 255 - code
    # the phone screen: the code in the middle of a bright panel with a dark bezel around
    screen = np.full((900, 600), 235 if not dark_mode else 25, np.uint8)
    code = cv2.resize(code, (code_px, code_px), interpolation=cv2.INTER_NEAREST)
    top, left = 450 - code_px // 2, 300 - code_px // 2
    screen[top : top + code_px, left : left + code_px] = code
    photo = np.full((1080, 1440), 40, np.uint8)
    src = np.float32([[0, 0], [600, 0], [600, 900], [0, 900]])
    dst = np.float32([[520, 170], [1010, 230], [960, 930], [470, 880]])  # tilted, rotated ~7°
    warp = cv2.getPerspectiveTransform(src, dst)
    photo = cv2.warpPerspective(
        screen, warp, (1440, 1080), borderMode=cv2.BORDER_CONSTANT, borderValue=40
    )
    photo = photo.astype(np.float32)
    # uneven light (glare towards one corner), lower contrast, blur and noise
    yy, xx = np.mgrid[0:1080, 0:1440].astype(np.float32)
    photo = photo * 0.75 + 30 * np.exp(-((xx - 1000) ** 2 + (yy - 250) ** 2) / (2 * 300.0**2))
    photo = cv2.GaussianBlur(photo, (0, 0), blur)
    photo += rng.normal(0, 6, photo.shape)
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    bgr = cv2.cvtColor(photo, cv2.COLOR_GRAY2BGR)
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    return jpeg.tobytes()


@pytest.mark.parametrize("dark_mode", [False, True], ids=["light screen", "dark mode"])
def test_decode_from_a_phone_photo_of_a_screen(keystore: KeyStore, dark_mode: bool) -> None:
    qr = issue_qr(keystore, card_no="E310100123456", issuer=LONG_ISSUER, now=NOW)
    photo = _phone_photo_of_screen(render_png(qr.token, scale=6), dark_mode=dark_mode)
    text = decode_qr_image(photo)
    v = verify_qr(text, keystore, issuer=LONG_ISSUER, replay_guard=MemoryReplayGuard(), now=NOW)
    assert v.card_no == "E310100123456"


def test_decode_a_small_code_far_from_the_camera(keystore: KeyStore) -> None:
    """About 3.3 px per module: located, then cropped and enlarged before it can be read."""
    qr = issue_qr(keystore, card_no="E" + "9" * 19, issuer=LONG_ISSUER, now=NOW)
    assert qr_version(qr.text) == 11
    photo = _phone_photo_of_screen(render_png(qr.token), code_px=280, blur=1.0)
    assert decode_qr_image(photo) == qr.text


def test_picture_without_a_code() -> None:
    import cv2

    noise = np.random.default_rng(1).integers(0, 255, (480, 640), dtype=np.uint8)
    _, png = cv2.imencode(".png", noise)
    with pytest.raises(QrNotFoundError):
        decode_qr_image(png.tobytes())


@pytest.mark.parametrize("data", [b"", b"not an image at all"])
def test_unreadable_picture(data: bytes) -> None:
    with pytest.raises(UnreadableMediaError):
        decode_qr_image(data)


def test_garbled_qr_text_is_malformed(keystore: KeyStore) -> None:
    with pytest.raises(TokenError) as exc:
        verify_qr("ABC.DEF.GHI", keystore, issuer=ISSUER, replay_guard=None, now=NOW)
    assert exc.value.code == "token_malformed"


def test_decompression_bomb_picture_is_refused_before_decoding() -> None:
    """A PNG that claims 40000x40000 pixels (1.6 GB decoded) in a few bytes of header."""
    import struct
    import zlib

    from ecard.errors import MediaTooLargeError

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 0, 0, 0, 0)
    idat = zlib.compress(bytes(1 + 40_000) * 64)  # a few rows; the rest never comes
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    with pytest.raises(MediaTooLargeError):
        decode_qr_image(png)
