"""Token speed: `python -m bench.bench_tokens` (or `make bench`).

- verification rate of ``verify_card`` (the hardened verifier: strict parse, header rules,
  pinned-key lookup, claims) against a bare ``jwt.decode`` of the same token with the same
  public key, in the same process, interleaved batches, medians (target: >= 90 %);
- sign rate of ``issue_card`` against a bare ``jwt.encode`` with the same key;
- QR token: characters, QR version at level M, PNG size; render time;
- QR decode time per picture: a clean PNG and a simulated phone photo of a screen.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jwt

from ecard.tokens.cards import CardClaims, issue_card, verify_card
from ecard.tokens.keys import KeyStore
from ecard.tokens.qr import decode_qr_image, issue_qr, qr_version, render_png

ISSUER = "https://ecard.shanghai.gov.cn"


def _per_op(fn: Callable[[], Any], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def _paired(
    ours: Callable[[], Any], base: Callable[[], Any], n: int, rounds: int
) -> tuple[float, float]:
    """Median seconds per op of ``ours`` and ``base``, measured in alternating batches."""
    a, b = [], []
    for _ in range(rounds):
        b.append(_per_op(base, n))
        a.append(_per_op(ours, n))
    return statistics.median(a), statistics.median(b)


def _photo_of_screen(png: bytes) -> bytes:
    """The QR code shown on a screen, photographed tilted, blurred, noisy, JPEG-compressed."""
    import cv2
    import numpy as np

    code = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    screen = np.full((900, 600), 235, np.uint8)
    screen[230:670, 80:520] = cv2.resize(code, (440, 440), interpolation=cv2.INTER_NEAREST)
    src = np.float32([[0, 0], [600, 0], [600, 900], [0, 900]])
    dst = np.float32([[520, 170], [1010, 230], [960, 930], [470, 880]])
    photo = cv2.warpPerspective(
        screen, cv2.getPerspectiveTransform(src, dst), (1440, 1080), borderValue=40
    ).astype(np.float32)
    photo = cv2.GaussianBlur(photo * 0.75 + 20, (0, 0), 1.6)
    photo += np.random.default_rng(7).normal(0, 6, photo.shape)
    pixels = np.clip(photo, 0, 255).astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return bytes(jpeg.tobytes())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        keystore = KeyStore.open(tmp)
        claims = CardClaims(
            card_id="c_7Yw2kQ9xP3", card_no="E310100123456", name="张三",
            id_number_masked="3101**********1234", status_idx=42,
            status_uri=f"{ISSUER}/api/v1/status-lists/1",
        )  # fmt: skip
        token = issue_card(keystore, claims, issuer=ISSUER)
        key_set = keystore.key_set()  # parsed once, as the service and OfflineVerifier do
        public_key = keystore.signing_key().private_key.public_key()
        private_key = keystore.signing_key().private_key

        def ours() -> Any:
            return verify_card(token, key_set, issuer=ISSUER)

        def bare() -> Any:
            return jwt.decode(token, public_key, algorithms=["ES256"], issuer=ISSUER)

        ours()
        bare()
        t_ours, t_bare = _paired(ours, bare, n=300, rounds=9)
        print(f"token length: {len(token)} characters")
        print(
            f"verify: verify_card {1 / t_ours:,.0f}/s ({t_ours * 1e6:.0f} us), "
            f"bare jwt.decode {1 / t_bare:,.0f}/s ({t_bare * 1e6:.0f} us); "
            f"ratio {t_bare / t_ours:.1%} of bare"
        )

        # the same through the KeyStore (one stat() per call to see rotations by other workers)
        t_store, t_bare2 = _paired(
            lambda: verify_card(token, keystore, issuer=ISSUER), bare, n=300, rounds=5
        )
        print(f"verify via KeyStore: {1 / t_store:,.0f}/s; ratio {t_bare2 / t_store:.1%} of bare")

        payload = dict(jwt.decode(token, public_key, algorithms=["ES256"], issuer=ISSUER))
        headers = {"kid": keystore.signing_key().kid, "typ": "ecard+jwt"}
        t_sign, t_enc = _paired(
            lambda: issue_card(keystore, claims, issuer=ISSUER),
            lambda: jwt.encode(payload, private_key, algorithm="ES256", headers=headers),
            n=300,
            rounds=5,
        )
        print(
            f"sign: issue_card {1 / t_sign:,.0f}/s, bare jwt.encode {1 / t_enc:,.0f}/s; "
            f"ratio {t_enc / t_sign:.1%}"
        )

        qr = issue_qr(keystore, card_no="E" + "9" * 19, issuer=ISSUER)
        t_render = statistics.median(_per_op(lambda: render_png(qr.token), 20) for _ in range(5))
        png = render_png(qr.token)
        print(
            f"QR: token {len(qr.token)} chars, QR text {len(qr.text)} chars (alphanumeric), "
            f"version {qr_version(qr.text)} at M; PNG {len(png)} bytes at scale 8; "
            f"render {t_render * 1e3:.1f} ms"
        )
        photo = _photo_of_screen(render_png(qr.token, scale=6))
        for name, data in (("clean PNG", png), ("phone photo of a screen", photo)):
            assert decode_qr_image(data) == qr.text
            times = [_per_op(lambda d=data: decode_qr_image(d), 3) for _ in range(5)]
            print(f"QR decode ({name}): {statistics.median(times) * 1e3:.0f} ms per picture")


if __name__ == "__main__":
    main()
