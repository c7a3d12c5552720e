"""The QR presentation token a hospital desk scans: short-lived, single use, small.

Token: an ES256 compact JWS, header ``{"alg": "ES256", "typ": "ecard-qr+jwt"}``, claims
``iss``, ``sub`` (the card number: what the desk looks the patient up by), ``iat``, ``exp``
(at most :data:`QR_MAX_LIFETIME` = 60 s after ``iat``) and ``jti`` (64 random bits, single use).
Nothing else: no name, no ID number — the desk asks the service, which also reports the status.

Why no ``kid``: an ES256 signature alone takes 86 of the 251 characters a version-11 QR code
holds at error correction M, and the 43-character thumbprint would not leave room for the
claims. Without ``kid`` the verifier tries each of our own keys (the active one first; at most
two or three during a rotation). A ``kid`` that is present is still resolved strictly.

QR text: the compact JWS is also a lot of lowercase base64url, which forces the QR code's byte
mode (8 bits per character). The QR code therefore carries a lossless re-encoding — each of the
three segments' bytes in upper-case RFC 4648 base32 without padding, joined by ``.`` — that fits
the alphanumeric mode (5.5 bits per character): about 25 % fewer modules, so a version-11 code
at level M holds the token with room to spare, and bigger modules scan better from a phone
screen. :func:`verify_qr` accepts either form; :func:`token_from_qr_text` restores the exact JWS.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ecard.errors import (
    ConfigError,
    QrNotFoundError,
    TokenClaimsError,
    TokenMalformedError,
    TokenReplayedError,
    UnreadableMediaError,
)
from ecard.image_limits import QR_PHOTO, ImageLimits, check_image_header
from ecard.tokens.jws import Clock, epoch, sign_jws, split_token, verify_jws
from ecard.tokens.keys import KeySet, KeyStore

QR_TYP = "ecard-qr+jwt"
QR_MAX_LIFETIME = 60
#: Largest QR code version allowed, at error correction M (CONTRACT.md).
QR_MAX_VERSION = 11
#: Alphanumeric characters a version-11 code holds at level M (ISO/IEC 18004 table 7).
QR_MAX_TEXT = 366
#: Default clock leeway for QR tokens (they live only a minute), in seconds.
QR_LEEWAY = 5.0

_QR_TEXT = re.compile(r"[A-Z2-7]+\.[A-Z2-7]+\.[A-Z2-7]+")


# --- single use -------------------------------------------------------------------------------


class ReplayGuard(Protocol):
    """Remembers used ``jti`` values until their token expires.

    ``use`` must be atomic across every process that verifies QR tokens: True the first time a
    ``jti`` is presented, False every later time. The service implements it on its database
    (``ecard.store.audit.DbReplayGuard``); :class:`MemoryReplayGuard` serves one process.
    """

    def use(self, jti: str, expires_at: datetime) -> bool: ...


class MemoryReplayGuard:
    """Thread-safe in-memory :class:`ReplayGuard` (one process; tests, the CLI)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._used: dict[str, float] = {}

    def use(self, jti: str, expires_at: datetime) -> bool:
        now = self._clock()
        with self._lock:
            if len(self._used) > 1024:  # forget tokens that can no longer verify anyway
                for old in [j for j, exp in self._used.items() if exp + 120 < now]:
                    del self._used[old]
            if jti in self._used:
                return False
            self._used[jti] = expires_at.timestamp()
            return True

    def __len__(self) -> int:
        return len(self._used)


# --- QR text <-> compact JWS ------------------------------------------------------------------


def _b64url_to_b32(segment: str) -> str:
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def _b32_to_b64url(segment: str) -> str:
    raw = base64.b32decode(segment + "=" * (-len(segment) % 8))
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def qr_text_from_token(token: str) -> str:
    """The QR code's content for a compact JWS (alphanumeric-mode friendly, lossless)."""
    return ".".join(_b64url_to_b32(s) for s in split_token(token))


def token_from_qr_text(text: str) -> str:
    """The compact JWS from a QR code's content; a compact JWS passes through unchanged."""
    text = text.strip() if isinstance(text, str) else text
    if isinstance(text, str) and _QR_TEXT.fullmatch(text):
        try:
            return ".".join(_b32_to_b64url(s) for s in text.split("."))
        except (binascii.Error, ValueError):
            raise TokenMalformedError("The QR code does not hold an e-card QR token.") from None
    return text


# --- issue and verify -------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedQr:
    """A fresh QR token: ``token`` is the compact JWS, ``text`` what the QR code holds."""

    token: str
    text: str
    jti: str
    expires_at: int


@dataclass(frozen=True)
class VerifiedQr:
    card_no: str
    jti: str
    issued_at: int
    expires_at: int
    kid: str


def issue_qr(
    keystore: KeyStore,
    *,
    card_no: str,
    issuer: str,
    now: Clock = None,
    lifetime: int = QR_MAX_LIFETIME,
) -> IssuedQr:
    """Sign a QR presentation token for ``card_no`` living ``lifetime`` seconds (1..60).

    Raises :class:`ConfigError` if the issuer and card number are too long for a version-11 QR
    code at level M (issuer and card number together: up to 50 characters).
    """
    if not 1 <= lifetime <= QR_MAX_LIFETIME:
        raise ValueError(f"lifetime must be 1..{QR_MAX_LIFETIME} seconds")
    if not card_no:
        raise ValueError("card_no must not be empty")
    iat = int(epoch(now))
    jti = secrets.token_urlsafe(8)
    body = {"iss": issuer, "sub": card_no, "iat": iat, "exp": iat + lifetime, "jti": jti}
    token = sign_jws(body, keystore.signing_key(), typ=QR_TYP, include_kid=False)
    text = qr_text_from_token(token)
    if len(text) > QR_MAX_TEXT:
        raise ConfigError(
            f"The QR token needs {len(text)} characters, more than a version-{QR_MAX_VERSION} "
            "QR code holds; shorten the issuer or the card number."
        )
    return IssuedQr(token=token, text=text, jti=jti, expires_at=iat + lifetime)


def verify_qr(
    token_or_text: object,
    keys: KeyStore | KeySet | Mapping[str, Any],
    *,
    issuer: str,
    replay_guard: ReplayGuard | None,
    now: Clock = None,
    leeway: float = QR_LEEWAY,
) -> VerifiedQr:
    """Verify a QR token (compact JWS or QR text) and, with a guard, spend its ``jti``.

    The ``jti`` is spent only after everything else checked out, so forged or expired codes
    cannot burn real ones. Pass ``replay_guard=None`` only where single use is enforced
    elsewhere. Raises ``replayed`` (:class:`TokenReplayedError`) on a second presentation.
    """
    token = token_from_qr_text(token_or_text) if isinstance(token_or_text, str) else token_or_text
    verified = verify_jws(
        token,
        keys,
        typ=QR_TYP,
        issuer=issuer,
        now=now,
        leeway=leeway,
        require_kid=False,
        max_lifetime=QR_MAX_LIFETIME,
    )
    c = verified.claims
    sub, jti = c.get("sub"), c.get("jti")
    if not isinstance(sub, str) or not sub or not isinstance(jti, str) or not jti:
        raise TokenClaimsError("The QR token lacks 'sub' or 'jti'.")
    exp = int(c["exp"])
    if replay_guard is not None and not replay_guard.use(jti, datetime.fromtimestamp(exp, UTC)):
        raise TokenReplayedError()
    return VerifiedQr(
        card_no=sub, jti=jti, issued_at=int(c["iat"]), expires_at=exp, kid=verified.kid
    )


# --- rendering and decoding -------------------------------------------------------------------


def _qr_text(token_or_text: str) -> str:
    return token_or_text if _QR_TEXT.fullmatch(token_or_text) else qr_text_from_token(token_or_text)


def qr_code(token_or_text: str, *, boost_error: bool = True) -> Any:
    """The segno QR code (level M, or higher when it fits the same version)."""
    import segno

    return segno.make(_qr_text(token_or_text), error="m", micro=False, boost_error=boost_error)


def qr_version(token_or_text: str) -> int:
    """The QR code version the token needs at error correction M exactly."""
    return int(qr_code(token_or_text, boost_error=False).version)


def render_png(token_or_text: str, *, scale: int = 8, border: int = 4) -> bytes:
    """PNG bytes of the token's QR code (``scale`` pixels per module, quiet zone ``border``)."""
    import io

    buf = io.BytesIO()
    qr_code(token_or_text).save(buf, kind="png", scale=scale, border=border)
    return buf.getvalue()


def render_svg(token_or_text: str, *, scale: int = 4, border: int = 4) -> str:
    """SVG markup of the token's QR code (no XML declaration, ready to inline in a page)."""
    import io

    buf = io.BytesIO()
    qr_code(token_or_text).save(
        buf, kind="svg", scale=scale, border=border, xmldecl=False, svgns=True
    )
    return buf.getvalue().decode("utf-8")


#: Largest picture accepted by :func:`decode_qr_image`, in bytes.
MAX_IMAGE_BYTES = QR_PHOTO.max_bytes
#: Most pixels accepted: a phone photo of a phone screen (12 MP: 4032 x 3024) with room to spare.
#: A small PNG can claim 7,000 x 7,000 (49 MP, 2.3 s to decode) in 62 kB: refused from its header.
MAX_IMAGE_PIXELS = QR_PHOTO.max_pixels


def decode_qr_image(
    data: bytes, *, time_budget: float = 3.0, limits: ImageLimits = QR_PHOTO
) -> str:
    """The text of the QR code in a picture (a photo of a phone screen is fine).

    OpenCV's ``QRCodeDetector`` and ``QRCodeDetectorAruco`` are tried on the grey image, then on
    a few preprocessed versions (binarised locally and globally, sharpened, inverted for
    dark-mode screens, contrast-equalised, halved) until one decodes; a code that was located
    but not read is cropped and enlarged (small modules). The picture is first brought to at
    most 1600 px. No new attempt starts after ``time_budget`` seconds (a noisy picture can
    make one attempt take a second or more). The picture's header is checked against
    ``limits`` before any pixel is decoded (:data:`~ecard.image_limits.QR_PHOTO`: 15 MB,
    4096 px a side, 16.8 MP; JPEG, PNG, WebP or BMP). Raises ``unreadable_media``,
    ``media_too_large`` (bytes), ``image_too_large`` (side or pixels) or ``qr_not_found``.
    """
    import cv2
    import numpy as np

    if not data:
        raise UnreadableMediaError("The picture is empty.")
    width, height = check_image_header(data, limits)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    # the decoded size is the declared one (EXIF orientation may swap the axes)
    if image is None or image.shape[:2] not in ((height, width), (width, height)):
        raise UnreadableMediaError("The file is not a readable picture.")

    detector = cv2.QRCodeDetector()
    aruco = cv2.QRCodeDetectorAruco()  # finds finder patterns differently; rescues many photos
    h, w = image.shape[:2]
    side = max(h, w)
    if side > 2000:  # phone cameras: 4000 px photos; 1600 px keeps ~5 px per module
        f = 1600 / side
        image = cv2.resize(image, (int(w * f), int(h * f)), interpolation=cv2.INTER_AREA)
    elif side < 500:  # thumbnails and screenshots of small codes
        image = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)

    def threshold_variants(base: Any) -> Any:
        # local threshold: evens out glare and the screen's own gradient
        yield cv2.adaptiveThreshold(
            base, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, 51, 5
        )
        _, otsu = cv2.threshold(
            cv2.GaussianBlur(base, (5, 5), 0), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU
        )
        yield otsu
        blur = cv2.GaussianBlur(base, (0, 0), 2.0)
        yield cv2.addWeighted(base, 1.8, blur, -0.8, 0)  # unsharp mask against defocus

    def crop_variants(points: Any) -> Any:
        """Located but not read, usually small modules: enlarge just the code to ~1000 px."""
        pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        size = max(x1 - x0, y1 - y0)
        if size < 20:
            return
        m = 0.2 * size
        ih, iw = image.shape[:2]
        top, bottom = int(max(0, y0 - m)), int(min(ih, y1 + m))
        left, right = int(max(0, x0 - m)), int(min(iw, x1 + m))
        crop = image[top:bottom, left:right]
        f = 1000 / max(crop.shape[:2])
        up = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
        smooth = cv2.GaussianBlur(up, (0, 0), 1.0)
        adaptive = cv2.adaptiveThreshold(
            smooth, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, 41, 2
        )
        for candidate in (up, adaptive, 255 - up, 255 - adaptive):
            yield aruco, candidate
            yield detector, candidate

    found: list[Any] = []  # corner points of a code located but not read

    def attempts() -> Any:
        cropped = False
        inverted = 255 - image  # light modules on a dark screen (dark mode)
        for det, candidate in (
            (aruco, image),  # the cheapest attempt (~0.1 s) and often enough
            (detector, image),
            (aruco, inverted),
            (detector, inverted),
        ):
            yield det, candidate
            if found and not cropped:
                cropped = True
                yield from crop_variants(found[0])
        for candidate in (*threshold_variants(image), *threshold_variants(inverted)):
            yield detector, candidate
            if found and not cropped:
                cropped = True
                yield from crop_variants(found[0])
        yield detector, cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(image)
        yield detector, cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)

    deadline = time.monotonic() + time_budget
    for det, candidate in attempts():
        if time.monotonic() > deadline:
            break
        try:
            text, points, _ = det.detectAndDecode(candidate)
        except cv2.error:
            continue
        if text:
            return str(text)
        if points is not None and not found and candidate.shape == image.shape:
            found.append(points)
    raise QrNotFoundError()
