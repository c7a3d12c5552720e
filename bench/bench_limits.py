"""Picture limits (issue 11, finding 6): refusing a decompression-bomb PNG from its header
against decoding it, in the same run.

    .venv/bin/python -m bench.bench_limits

The picture is what an attacker sends: a flat-colour 7,000 x 7,000 PNG of ~62 kB (it passes any
byte limit). "header" is :func:`ecard.image_limits.check_image_header` with the QR-photo limits
(the refusal the scan route answers 413 with); the baselines are what the routes did before:
OpenCV's ``imdecode`` (the QR path) and Pillow's full decode (the photo path). Medians of 7.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable


def _bomb(side: int = 7000) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (side, side), 200).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _median_cpu_ms(fn: Callable[[], object], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    import cv2
    import numpy as np
    from PIL import Image

    from ecard.errors import ImageTooLargeError
    from ecard.image_limits import QR_PHOTO, check_image_header

    data = _bomb()

    def header() -> None:
        try:
            check_image_header(data, QR_PHOTO)
        except ImageTooLargeError:
            return
        raise AssertionError("the bomb was not refused")

    def opencv() -> None:
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)

    def pillow() -> None:
        with Image.open(io.BytesIO(data)) as im:
            im.load()

    Image.MAX_IMAGE_PIXELS = None  # the baseline decodes it whole (this bench process only)
    h = _median_cpu_ms(header, runs=51)
    o = _median_cpu_ms(opencv)
    p = _median_cpu_ms(pillow)
    print(f"7000 x 7000 PNG, {len(data):,} bytes; median CPU ms")
    print(f"  header check (refused, 413): {h:.3f} ms")
    print(f"  OpenCV imdecode (old QR path): {o:.1f} ms = {o / max(h, 1e-6):,.0f}x the header")
    print(f"  Pillow decode (old photo path): {p:.1f} ms = {p / max(h, 1e-6):,.0f}x the header")


if __name__ == "__main__":
    main()
