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
) -> tuple[float, float, float]:
    """Median seconds per op of ``ours`` and ``base``, measured in alternating batches, and the
    median of the per-round ratios base/ours (adjacent batches see the same machine load)."""
    a, b, r = [], [], []
    for i in range(rounds):
        if i % 2:  # alternate which goes first
            tb, ta = _per_op(base, n), _per_op(ours, n)
        else:
            ta, tb = _per_op(ours, n), _per_op(base, n)
        a.append(ta)
        b.append(tb)
        r.append(tb / ta)
    return statistics.median(a), statistics.median(b), statistics.median(r)


def _photo_of_screen(
    png: bytes,
    *,
    angle: float = 7.0,
    module_px: float = 5.2,
    blur: float = 1.6,
    noise: float = 6.0,
    quality: int = 70,
    dark: bool = False,
    seed: int = 7,
) -> bytes:
    """The QR code shown on a phone screen (a bright panel, or dark mode) and photographed:
    rotated by ``angle`` degrees, tilted in perspective, ``module_px`` pixels per module, lower
    contrast, Gaussian defocus ``blur`` (sigma, px), sensor ``noise`` (sigma), JPEG ``quality``.
    """
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    code = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    modules = code.shape[0] / 8  # render_png(scale=8)
    if dark:
        code = 255 - code
    side = int(modules * module_px)
    code = cv2.resize(code, (side, side), interpolation=cv2.INTER_NEAREST)
    sh, sw = int(side * 2.0), int(side * 1.3)
    screen = np.full((sh, sw), 25 if dark else 235, np.uint8)
    y0, x0 = (sh - side) // 2, (sw - side) // 2
    screen[y0 : y0 + side, x0 : x0 + side] = code
    rot = cv2.getRotationMatrix2D((sw / 2, sh / 2), angle, 1.0)
    c, s = abs(rot[0, 0]), abs(rot[0, 1])
    nw, nh = int(sh * s + sw * c), int(sh * c + sw * s)
    rot[0, 2] += nw / 2 - sw / 2
    rot[1, 2] += nh / 2 - sh / 2
    turned = cv2.warpAffine(screen, rot, (nw, nh), borderValue=40)
    t = 0.08 * side
    src = np.float32([[0, 0], [nw, 0], [nw, nh], [0, nh]])
    dst = np.float32([[t, 0], [nw - t, t / 2], [nw, nh], [0, nh - t / 2]])
    turned = cv2.warpPerspective(
        turned, cv2.getPerspectiveTransform(src, dst), (nw, nh), borderValue=40
    )
    big_h, big_w = 1080, 1440
    if nh > big_h or nw > big_w:
        f = min(big_h / nh, big_w / nw) * 0.95
        turned = cv2.resize(turned, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    h, w = turned.shape
    photo = np.full((big_h, big_w), 40, np.uint8)
    oy, ox = (big_h - h) // 2, (big_w - w) // 2
    photo[oy : oy + h, ox : ox + w] = turned
    out = cv2.GaussianBlur(photo.astype(np.float32) * 0.8 + 20, (0, 0), blur)
    out += rng.normal(0, noise, out.shape)
    pixels = np.clip(out, 0, 255).astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return bytes(jpeg.tobytes())


def _decode_calibration(png: bytes, expected: str, n: int = 24) -> None:
    """Decode rate over ``n`` random phone photos (fixed seed), and which conditions fail."""
    import numpy as np

    from ecard.errors import QrNotFoundError

    rng = np.random.default_rng(0)
    times, ok, failed = [], 0, []
    for i in range(n):
        params = {
            "angle": float(rng.uniform(-30, 30)),
            "module_px": float(rng.uniform(3, 8)),
            "blur": float(rng.uniform(0.5, 2.0)),
            "noise": float(rng.uniform(2, 10)),
            "quality": int(rng.integers(55, 90)),
            "dark": i % 4 == 3,
            "seed": i,
        }
        photo = _photo_of_screen(png, **params)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        try:
            good = decode_qr_image(photo) == expected
        except QrNotFoundError:
            good = False
        times.append(time.perf_counter() - t0)
        ok += good
        if not good:
            failed.append(
                f"{params['module_px']:.1f} px/module, blur {params['blur']:.1f}, "
                f"noise {params['noise']:.0f}"
            )
    print(
        f"QR decode over {n} random phone photos (angle +-30 deg, 3-8 px/module, blur 0.5-2, "
        f"noise 2-10, JPEG 55-90, 1 in 4 dark mode): {ok}/{n} read, median "
        f"{statistics.median(times) * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms"
    )
    for f in failed:
        print(f"  not read: {f}")


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
        t_ours, t_bare, ratio = _paired(ours, bare, n=200, rounds=15)
        print(f"token length: {len(token)} characters")
        print(
            f"verify: verify_card {1 / t_ours:,.0f}/s ({t_ours * 1e6:.0f} us), "
            f"bare jwt.decode {1 / t_bare:,.0f}/s ({t_bare * 1e6:.0f} us); "
            f"rate {ratio:.1%} of bare (median of 15 paired rounds)"
        )

        # the same through the KeyStore (one stat() per call to see rotations by other workers)
        t_store, _, ratio = _paired(
            lambda: verify_card(token, keystore, issuer=ISSUER), bare, n=200, rounds=9
        )
        print(f"verify via KeyStore: {1 / t_store:,.0f}/s; rate {ratio:.1%} of bare")

        payload = dict(jwt.decode(token, public_key, algorithms=["ES256"], issuer=ISSUER))
        headers = {"kid": keystore.signing_key().kid, "typ": "ecard+jwt"}
        t_sign, t_enc, ratio = _paired(
            lambda: issue_card(keystore, claims, issuer=ISSUER),
            lambda: jwt.encode(payload, private_key, algorithm="ES256", headers=headers),
            n=300,
            rounds=5,
        )
        print(
            f"sign: issue_card {1 / t_sign:,.0f}/s, bare jwt.encode {1 / t_enc:,.0f}/s; "
            f"rate {ratio:.1%} of bare"
        )

        qr = issue_qr(keystore, card_no="E" + "9" * 19, issuer=ISSUER)
        t_render = statistics.median(_per_op(lambda: render_png(qr.token), 20) for _ in range(5))
        png = render_png(qr.token)
        print(
            f"QR: token {len(qr.token)} chars, QR text {len(qr.text)} chars (alphanumeric), "
            f"version {qr_version(qr.text)} at M; PNG {len(png)} bytes at scale 8; "
            f"render {t_render * 1e3:.1f} ms"
        )
        photo = _photo_of_screen(png)
        for name, data in (("clean PNG", png), ("phone photo of a screen", photo)):
            assert decode_qr_image(data) == qr.text
            times = [_per_op(lambda d=data: decode_qr_image(d), 3) for _ in range(5)]
            print(f"QR decode ({name}): {statistics.median(times) * 1e3:.0f} ms per picture")
        _decode_calibration(png, qr.text)


if __name__ == "__main__":
    main()
