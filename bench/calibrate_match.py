"""Calibrate the ID-photo match threshold on ../shared/data/faces; write the package data file
ecard/faces/data/calibration.json.

Run: ``.venv/bin/python -m bench.calibrate_match [--faces DIR] [--dry-run]`` (about a minute).
Method in docs/matching.md and ecard/faces/calibration.py. Prints a table of FNMR and false
matches per threshold, full size and with the ID side as a 102 x 126 chip photo, and the cost of
``template_from_photo`` on the chip photos. Only the ``"match"`` key of the JSON file is
rewritten; other keys (other parts' calibrations) are kept.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from ecard.errors import EcardError
from ecard.faces.calibration import (
    CHIP_FACE_CENTRE_Y,
    CHIP_FACE_SHARE,
    CHIP_JPEG_QUALITY,
    CHIP_SIZE,
    PairScores,
    chip_photo,
    encode_entries,
    near_duplicates,
    photo_files,
    score_pairs,
    zero_false_match_threshold,
)
from ecard.faces.images import load_photo
from ecard.faces.match import (
    CALIBRATION_PATH,
    DOMINANT_RATIO,
    SMALL_PHOTO_SIDE,
    SMALL_PHOTO_UPSCALE,
    find_faces,
    template_from_photo,
)
from ecard.faces.models import PROJECT_ROOT, shared_models

DEFAULT_FACES = PROJECT_ROOT.parent / "shared" / "data" / "faces"
#: JPEG 2000 compression ratios of the chip photo scored for robustness (not for the threshold):
#: 12 is ~3 kB, 30 is ~1.3 kB (the size of a real chip photo) at 102 x 126.
JP2_RATIOS = (12, 20, 30)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    names = ("dlib-bin", "numpy", "pillow", "opencv-python-headless", "face_recognition_models")
    for dist in names:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def _summary(scores: PairScores, threshold: float) -> dict[str, object]:
    gen = np.array([d for d, _, _ in scores.genuine])
    imp = np.array([d for d, _, _ in scores.impostor])
    finite = gen[np.isfinite(gen)]
    return {
        "genuine_pairs": len(gen),
        "impostor_pairs": len(imp),
        "false_matches": scores.false_matches(threshold),
        "fmr": scores.false_matches(threshold) / len(imp),
        "false_non_matches": int(np.sum(gen > threshold)),
        "fnmr": round(scores.fnmr(threshold), 5),
        "max_genuine_distance": round(float(finite.max()), 4),
        "min_impostor_distance": round(float(imp.min()), 4),
        "genuine_distance_percentiles": {
            str(p): round(float(np.percentile(finite, p)), 4) for p in (50, 90, 95, 99)
        },
        "impostor_distance_percentiles": {
            str(p): round(float(np.percentile(imp, p)), 4) for p in (0.1, 1, 5, 50)
        },
        "closest_impostor_pairs": [[round(d, 4), a, b] for d, a, b in scores.impostor[:5]],
        "farthest_genuine_pairs": [[round(d, 4), a, b] for d, a, b in scores.genuine[-5:]],
        "fm_at_dlib_0_6": scores.false_matches(0.6),
        "fnmr_at_dlib_0_6": round(scores.fnmr(0.6), 5),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--out", type=Path, default=CALIBRATION_PATH)
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the file")
    args = parser.parse_args(argv)

    root: Path = args.faces
    if not root.is_dir():
        print(f"no face data at {root}", file=sys.stderr)
        return 2
    models = shared_models()
    files = photo_files(root)
    duplicates = near_duplicates(root / "PROVENANCE.md")
    t0 = time.perf_counter()
    entries = list(encode_entries(files, root, models, jp2_ratios=JP2_RATIOS))
    encode_s = time.perf_counter() - t0
    full = score_pairs(entries, duplicates, chip=False)
    chip = score_pairs(entries, duplicates, chip=True)
    threshold = zero_false_match_threshold(full, chip)

    # Cost of registering a 102 x 126 chip photo (decode + upscale + detect + encode).
    chips = []
    for path in files[:: max(1, len(files) // 30)]:
        image = load_photo(path)
        work, boxes = find_faces(image, models)
        scale = work.shape[0] / image.shape[0]
        chips.append(chip_photo(image, boxes[0].scaled(1 / scale)))
    costs = []
    for data in chips:
        start = time.process_time()
        with contextlib.suppress(EcardError):  # a refused chip (two faces) still costs time
            template_from_photo(data, models=models)
        costs.append(time.process_time() - start)
    chip_ms = statistics.median(costs) * 1000

    print(f"{len(entries)} photos, {len(duplicates)} near-duplicate groups excluded from genuine")
    print(
        f"encoded in {encode_s:.1f} s; template_from_photo on a 102x126 chip: "
        f"median {chip_ms:.1f} ms CPU over {len(costs)} chips"
    )
    print(f"{'threshold':>9} | {'full FNMR':>9} {'FM':>4} | {'102x126 FNMR':>12} {'FM':>4}")
    grid = sorted({*np.round(np.arange(0.50, 0.605, 0.01), 2).tolist(), threshold})
    for t in grid:
        mark = "  <- calibrated" if t == threshold else ""
        print(
            f"{t:9.3f} | {full.fnmr(t) * 100:8.2f}% {full.false_matches(t):4d} | "
            f"{chip.fnmr(t) * 100:11.2f}% {chip.false_matches(t):4d}{mark}"
        )
    for label, scores in (("full", full), ("102x126", chip)):
        print(
            f"{label}: {len(scores.genuine)} genuine, {len(scores.impostor)} impostor pairs; "
            f"max genuine {max(d for d, _, _ in scores.genuine if np.isfinite(d)):.4f}, "
            f"min impostor {scores.impostor[0][0]:.4f}"
        )

    robustness = {}
    for ratio in JP2_RATIOS:
        jp2 = score_pairs(entries, duplicates, chip=True, jp2_ratio=ratio)
        robustness[f"chip_102x126_jpeg2000_ratio_{ratio}"] = {
            "fnmr": round(jp2.fnmr(threshold), 5),
            "false_matches": jp2.false_matches(threshold),
            "impostor_pairs": len(jp2.impostor),
            "min_impostor_distance": round(jp2.impostor[0][0], 4),
        }
        print(
            f"102x126 as JPEG 2000 ratio {ratio}: FNMR {jp2.fnmr(threshold) * 100:.2f}%, "
            f"false matches {jp2.false_matches(threshold)} of {len(jp2.impostor)} "
            f"at {threshold} (min impostor {jp2.impostor[0][0]:.4f})"
        )

    section = {
        "threshold": threshold,
        "metric": "euclidean distance between dlib ResNet v1 128-d encodings; match if <=",
        "method": (
            "largest multiple of 0.01 strictly below the smallest impostor distance over both "
            "conditions (zero false matches on the calibration data); live encodings are "
            "combined by the median distance"
        ),
        "pipeline": {
            "photo": "EXIF applied, long side <= 1024 px",
            "small_photo": f"long side < {SMALL_PHOTO_SIDE} px upscaled x{SMALL_PHOTO_UPSCALE} "
            "bicubic before detection",
            "detector": "dlib HOG, upsample 0, then 1 if no face",
            "face": "largest (labelled person); template_from_photo refuses a second face "
            f">= {DOMINANT_RATIO} of its width",
            "encoder": "dlib_face_recognition_resnet_model_v1, 68-point alignment, "
            "padding 0.25, no jitter",
        },
        "data": {
            "faces": "../shared/data/faces (see its PROVENANCE.md); _multi_face excluded",
            "photos": len(entries),
            "identities": len({e.identity for e in entries}),
            "near_duplicates_excluded": sorted(sorted(g) for g in duplicates),
            "chip_photo": {
                "size": list(CHIP_SIZE),
                "face_share_of_width": CHIP_FACE_SHARE,
                "face_centre_y": CHIP_FACE_CENTRE_Y,
                "jpeg_quality": CHIP_JPEG_QUALITY,
                "pairs": "ID side = chip of photo A, live side = photo B at full size, both orders",
            },
        },
        "full_size": _summary(full, threshold),
        "chip_102x126": _summary(chip, threshold),
        "robustness_not_used_for_threshold": robustness,
        "template_from_photo_102x126_median_ms_cpu": round(chip_ms, 1),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": _versions(),
        "command": ".venv/bin/python -m bench.calibrate_match",
    }
    if args.dry_run:
        print(json.dumps(section, indent=2)[:2000])
        return 0
    out: Path = args.out
    data = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    data["match"] = section
    out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out} (match threshold {threshold})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
