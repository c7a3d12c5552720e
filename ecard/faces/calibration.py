"""Calibrating the match threshold on a labelled face folder (used by bench/calibrate_match.py).

Data layout: one folder per identity (``_``-prefixed folders such as ``_multi_face`` are skipped);
near-duplicates (the same photograph stored twice, flagged "same photo" in PROVENANCE.md) are
excluded from the genuine pairs. Two conditions are scored:

* ``full``: every unordered pair of photos at their loaded size (long side <= 1024 px);
* ``chip``: the ID side replaced by a simulated resident-ID chip photo (:func:`chip_photo`:
  a 102 x 126 head-and-shoulders crop, JPEG quality 75), the live side at full size, both
  orders of every pair.

The photo's labelled person is its largest detected face (PROVENANCE.md says so for the photos
with a background face), so calibration encodes the largest face rather than applying
:func:`~ecard.faces.match.select_subject`'s refusal.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecard.faces.images import load_photo
from ecard.faces.match import find_faces
from ecard.faces.models import Box, Encoding, FaceModels, Image

#: Size of the photo stored on a Chinese resident ID card's chip (width, height in px).
CHIP_SIZE = (102, 126)
#: Face box width as a share of the chip width (head-and-shoulders ID framing).
CHIP_FACE_SHARE = 0.55
#: Vertical position of the face box centre, as a share of the chip height.
CHIP_FACE_CENTRE_Y = 0.52
CHIP_JPEG_QUALITY = 75
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")

_FILE_NAME = re.compile(r"\b[a-z]{2,3}__[\w.\-]+?\.(?:jpe?g|png)\b", re.IGNORECASE)


@dataclass(frozen=True)
class FaceEntry:
    """One labelled photo: its identity, encodings at full size and as a chip photo."""

    name: str  # "<identity>/<file>"
    identity: str
    full: Encoding = field(repr=False)
    chip: Encoding | None = field(repr=False)
    faces: int  # faces found at full size
    chip_faces: int  # faces found in the chip photo
    #: the chip photo recompressed as JPEG 2000 at these compression ratios (robustness only)
    chip_jp2: dict[int, Encoding | None] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class PairScores:
    """Distances of the genuine and impostor pairs of one condition, with the pair names."""

    genuine: tuple[tuple[float, str, str], ...]
    impostor: tuple[tuple[float, str, str], ...]

    def fnmr(self, threshold: float) -> float:
        """Share of genuine pairs rejected (distance > threshold), 0..1."""
        return float(np.mean([d > threshold for d, _, _ in self.genuine]))

    def false_matches(self, threshold: float) -> int:
        """Number of impostor pairs accepted (distance <= threshold)."""
        return sum(d <= threshold for d, _, _ in self.impostor)


def photo_files(root: Path) -> list[Path]:
    """Labelled photos under ``root`` (one folder per identity, ``_*`` folders skipped)."""
    return sorted(
        p
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith("_")
        for p in d.iterdir()
        if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
    )


def near_duplicates(provenance: Path) -> list[set[str]]:
    """Groups of "<identity>/<file>" that PROVENANCE.md flags as the same photograph."""
    groups: list[set[str]] = []
    for line in provenance.read_text(encoding="utf-8").splitlines():
        cells = [c.strip().strip("`") for c in line.split("|")]
        if len(cells) < 4 or "/" not in cells[1] or "same photo" not in line.lower():
            continue
        if cells[1].startswith("_"):  # group photos are not part of any identity
            continue
        name = cells[1]
        identity = name.split("/")[0]
        notes = cells[-2]
        linked = {name} | {f"{identity}/{m}" for m in _FILE_NAME.findall(notes)}
        merged = [g for g in groups if g & linked]
        for g in merged:
            groups.remove(g)
            linked |= g
        groups.append(linked)
    return groups


def chip_photo(image: Image, box: Box) -> bytes:
    """A simulated ID-card chip photo (102 x 126 JPEG) framed around ``box`` of ``image``.

    The face box spans ``CHIP_FACE_SHARE`` of the width, centred horizontally, its centre at
    ``CHIP_FACE_CENTRE_Y`` of the height; the image is low-pass filtered before resampling (no
    aliasing) and edges are replicated where the crop leaves the photo.
    """
    import cv2
    from PIL import Image as PIL

    width, height = CHIP_SIZE
    crop_w = box.width / CHIP_FACE_SHARE
    crop_h = crop_w * height / width
    x0 = (box.left + box.right) / 2 - crop_w / 2
    y0 = (box.top + box.bottom) / 2 - crop_h * CHIP_FACE_CENTRE_Y
    scale = width / crop_w
    src = image
    if scale < 1 / 1.5:
        src = np.asarray(cv2.GaussianBlur(image, (0, 0), sigmaX=0.5 / scale), dtype=np.uint8)
    matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
    chip = cv2.warpAffine(
        src, matrix, CHIP_SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    buf = io.BytesIO()
    PIL.fromarray(np.asarray(chip, dtype=np.uint8)).save(buf, "JPEG", quality=CHIP_JPEG_QUALITY)
    return buf.getvalue()


def recompress_jp2(photo: bytes, ratio: int) -> bytes:
    """``photo`` re-encoded as JPEG 2000 at a compression ``ratio`` (30 gives ~1.3 kB at
    102 x 126: the size class of a real ID-card chip photo)."""
    from PIL import Image as PIL

    buf = io.BytesIO()
    PIL.open(io.BytesIO(photo)).convert("RGB").save(
        buf, "JPEG2000", quality_mode="rates", quality_layers=[ratio]
    )
    return buf.getvalue()


def _largest_encoding(image: Image, models: FaceModels) -> tuple[Encoding | None, int, Box | None]:
    work, boxes = find_faces(image, models)
    if not boxes:
        return None, 0, None
    scale = work.shape[0] / image.shape[0]
    return models.encode(work, boxes[0]), len(boxes), boxes[0].scaled(1 / scale)


def encode_entries(
    files: Sequence[Path], root: Path, models: FaceModels, *, jp2_ratios: Sequence[int] = ()
) -> Iterator[FaceEntry]:
    """Encode every labelled photo at full size and as a chip photo (largest face each);
    ``jp2_ratios`` adds the chip photo recompressed as JPEG 2000 at those ratios."""
    for path in files:
        image = load_photo(path)
        full, faces, box = _largest_encoding(image, models)
        if full is None or box is None:
            raise RuntimeError(f"no face in {path}: the calibration set must be all faces")
        chip_bytes = chip_photo(image, box)
        chip, chip_faces, _ = _largest_encoding(load_photo(chip_bytes), models)
        jp2 = {
            r: _largest_encoding(load_photo(recompress_jp2(chip_bytes, r)), models)[0]
            for r in jp2_ratios
        }
        name = path.relative_to(root).as_posix()
        yield FaceEntry(name, name.split("/")[0], full, chip, faces, chip_faces, jp2)


def score_pairs(
    entries: Sequence[FaceEntry],
    duplicates: Sequence[set[str]],
    *,
    chip: bool,
    jp2_ratio: int | None = None,
) -> PairScores:
    """Genuine and impostor distances; ``chip`` puts the chip photo on the ID side (its JPEG
    2000 version at ``jp2_ratio`` when given)."""
    genuine: list[tuple[float, str, str]] = []
    impostor: list[tuple[float, str, str]] = []
    pairs = itertools.permutations(entries, 2) if chip else itertools.combinations(entries, 2)
    for a, b in pairs:
        id_side: Encoding | None
        if not chip:
            id_side = a.full
        elif jp2_ratio is None:
            id_side = a.chip
        else:
            id_side = a.chip_jp2.get(jp2_ratio)
        # no face in the chip photo: infinite distance, a rejection when the pair is genuine
        distance = float("inf") if id_side is None else float(np.linalg.norm(id_side - b.full))
        if a.identity == b.identity:
            if not any(a.name in g and b.name in g for g in duplicates):
                genuine.append((distance, a.name, b.name))
        else:
            impostor.append((distance, a.name, b.name))
    return PairScores(tuple(sorted(genuine)), tuple(sorted(impostor)))


def zero_false_match_threshold(*conditions: PairScores, step: float = 0.01) -> float:
    """The largest multiple of ``step`` strictly below every impostor distance of every condition.

    Rounding down to a 0.01 grid leaves a small margin below the closest impostor rather than
    fitting the threshold to the last digit of one pair.
    """
    closest = min(c.impostor[0][0] for c in conditions)
    threshold = np.floor(closest / step) * step
    if threshold >= closest:
        threshold -= step
    return round(float(threshold), 6)
