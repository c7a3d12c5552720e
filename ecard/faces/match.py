"""ID-photo matching: a :class:`FaceTemplate` from the registry photo, a :class:`MatchResult` out.

Method (details, data and error rates in docs/matching.md):

* the ID photo is decoded upright (EXIF applied) and downscaled to at most 1024 px
  (:func:`ecard.faces.images.load_photo`); a small photo (long side under 200 px, e.g. the
  102 x 126 chip photo of a resident ID card) is first upscaled 2x bicubically so that its
  ~55 px face clears the HOG detector's ~80 px minimum without dlib's slower pyramid upsample;
* exactly one face: no face is :class:`~ecard.errors.NoFaceError`; a second face at least
  ``DOMINANT_RATIO`` (60 %) as wide as the largest is :class:`~ecard.errors.MultipleFacesError`;
  smaller faces (people in the background of a news photo) are ignored and the largest is used;
* the face is encoded by dlib's ResNet (68-point alignment, 150 x 150 chip, padding 0.25): the
  same encoder and settings the liveness part uses for its live samples;
* live encodings are compared by Euclidean distance and combined by the *median*: one bad frame
  neither makes nor breaks a match, and unlike the minimum it does not give an impostor the best
  of N tries, so the single-pair calibration stays valid;
* the threshold is calibrated on ../shared/data/faces by ``python -m bench.calibrate_match`` and
  read from ``calibration.json`` (package data, ``ecard/faces/data/``, key ``"match"``): never
  guessed.

Templates and encodings are biometric data: they are never logged (``repr`` hides them).
"""

from __future__ import annotations

import json
import os
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ecard.errors import (
    ModelMissingError,
    MultipleFacesError,
    NoFaceError,
    TemplateError,
    UnreadableMediaError,
)
from ecard.faces.images import PhotoSource, load_photo
from ecard.faces.models import DATA_DIR, Box, Encoding, FaceModels, Image

#: The calibration (package data), written by ``bench/calibrate_match.py`` and
#: ``bench/calibrate_identity.py``. Not configurable: the threshold belongs to the code and
#: models it was measured with.
CALIBRATION_PATH = DATA_DIR / "calibration.json"
#: Photos whose long side is below this (px) are upscaled before detection.
SMALL_PHOTO_SIDE = 200
#: Upscale factor for small photos (bicubic).
SMALL_PHOTO_UPSCALE = 2
#: A second face at least this fraction of the largest face's width makes the photo ambiguous.
DOMINANT_RATIO = 0.6
#: dlib's 128-d descriptor.
ENCODING_SIZE = 128

_MAGIC = b"ECFT"
_VERSION = 1
_HEADER = struct.Struct("<4sBB")  # magic, version, encoder id (1 = dlib ResNet v1)
_ENCODER_ID = 1
_TEMPLATE_BYTES = _HEADER.size + ENCODING_SIZE * 4


def _as_encoding(value: npt.ArrayLike) -> Encoding:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (ENCODING_SIZE,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"a face encoding is {ENCODING_SIZE} finite numbers")
    return arr


@dataclass(frozen=True, eq=False)
class FaceTemplate:
    """The 128-d encoding of an ID photo, computed once at registration.

    ``to_bytes()`` gives 518 bytes (magic ``ECFT``, version, encoder id, 128 little-endian
    float32): float32 changes distances by under 1e-6. Equality is identity: compare templates
    with :meth:`distance`. The encoding is biometric data: it is hidden from ``repr``.
    """

    encoding: Encoding = field(repr=False)

    def __post_init__(self) -> None:
        enc = _as_encoding(self.encoding).copy()
        enc.flags.writeable = False
        object.__setattr__(self, "encoding", enc)

    def to_bytes(self) -> bytes:
        """Compact, versioned serialisation for the store."""
        return _HEADER.pack(_MAGIC, _VERSION, _ENCODER_ID) + self.encoding.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> FaceTemplate:
        """Read :meth:`to_bytes` output; :class:`~ecard.errors.TemplateError` if it is not one."""
        data = bytes(data)
        if len(data) != _TEMPLATE_BYTES:
            raise TemplateError(f"A face template has {_TEMPLATE_BYTES} bytes, not {len(data)}.")
        magic, version, encoder = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise TemplateError("The data is not an ecard face template.")
        if version != _VERSION or encoder != _ENCODER_ID:
            raise TemplateError(
                f"Face template version {version} (encoder {encoder}) is not supported; "
                "register the ID photo again."
            )
        values = np.frombuffer(data, dtype="<f4", offset=_HEADER.size).astype(np.float64)
        try:
            return cls(values)
        except ValueError as exc:
            raise TemplateError("The face template holds invalid numbers.") from exc

    def distance(self, encoding: npt.ArrayLike) -> float:
        """Euclidean distance to one 128-d encoding (0 = identical; same person usually < 0.5)."""
        return float(np.linalg.norm(self.encoding - _as_encoding(encoding)))


@dataclass(frozen=True)
class MatchResult:
    """The answer of :func:`match_template`: ``match`` is ``distance <= threshold``.

    ``distance`` is the median distance over the ``samples`` live encodings compared.
    """

    match: bool
    distance: float
    threshold: float
    samples: int = 1

    def to_dict(self) -> dict[str, object]:
        return {
            "match": self.match,
            "distance": round(self.distance, 4),
            "threshold": self.threshold,
            "samples": self.samples,
        }


@dataclass(frozen=True)
class MatchCalibration:
    """The calibrated decision threshold and where it came from."""

    threshold: float
    method: str
    path: Path


_calibration_cache: dict[tuple[str, int], MatchCalibration] = {}
_calibration_lock = threading.Lock()


def load_calibration(path: Path | None = None) -> MatchCalibration:
    """The ``"match"`` section of ``calibration.json`` (re-read when the file changes).

    Raises :class:`~ecard.errors.ModelMissingError` when the file or the section is missing or
    invalid: matching refuses to run on a guessed threshold.
    """
    path = path or CALIBRATION_PATH
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError as exc:
        raise ModelMissingError(
            f"{path} is missing: run `python -m bench.calibrate_match` to calibrate matching."
        ) from exc
    with _calibration_lock:
        cached = _calibration_cache.get(key)
    if cached is not None:
        return cached
    try:
        section = json.loads(path.read_text(encoding="utf-8"))["match"]
        threshold = float(section["threshold"])
        method = str(section.get("method", ""))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelMissingError(f'{path} has no valid "match" calibration: {exc}') from exc
    if not 0.0 < threshold < 2.0:
        raise ModelMissingError(f"{path}: match threshold {threshold} is out of range.")
    result = MatchCalibration(threshold=threshold, method=method, path=path)
    with _calibration_lock:
        _calibration_cache[key] = result
    return result


def working_image(image: Image) -> tuple[Image, float]:
    """The image detection and encoding run on, and its scale relative to ``image``.

    Small photos (long side < ``SMALL_PHOTO_SIDE``) are upscaled ``SMALL_PHOTO_UPSCALE`` times
    (bicubic): cheaper than dlib's pyramid upsample and it gives the landmark fit more pixels.
    """
    if max(image.shape[:2]) >= SMALL_PHOTO_SIDE:
        return image, 1.0
    import cv2

    factor = SMALL_PHOTO_UPSCALE
    big = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(big, dtype=np.uint8), float(factor)


def find_faces(image: Image, models: FaceModels) -> tuple[Image, list[Box]]:
    """Faces in an RGB photo, largest first, with the working image their boxes refer to.

    Detection runs at upsample 0 first and at upsample 1 (faces down to ~40 px) only when that
    finds nothing.
    """
    work, _ = working_image(image)
    boxes = models.detect(work, 0) or models.detect(work, 1)
    return work, boxes


def select_subject(boxes: Sequence[Box]) -> Box:
    """The one face a photo is about.

    No face: :class:`~ecard.errors.NoFaceError`. Several faces where the second is at least
    ``DOMINANT_RATIO`` of the largest's width: :class:`~ecard.errors.MultipleFacesError`
    (two people side by side, or a face close behind). Smaller faces are background and ignored.
    """
    if not boxes:
        raise NoFaceError()
    ordered = sorted(boxes, key=lambda b: b.area, reverse=True)
    if len(ordered) > 1 and ordered[1].width >= DOMINANT_RATIO * ordered[0].width:
        raise MultipleFacesError()
    return ordered[0]


def encode_photo(image: Image, *, models: FaceModels, jitters: int = 0) -> Encoding:
    """The encoding of the one face in an RGB photo (see :func:`select_subject`)."""
    work, boxes = find_faces(image, models)
    return models.encode(work, select_subject(boxes), jitters=jitters)


def template_from_photo(source: PhotoSource, *, models: FaceModels) -> FaceTemplate:
    """The template of an ID photo given as file bytes or a path (JPEG, PNG, ... EXIF applied).

    Raises :class:`~ecard.errors.MediaError` subclasses for files that are empty, not images,
    truncated, too large or too small; :class:`~ecard.errors.NoFaceError` and
    :class:`~ecard.errors.MultipleFacesError` when the photo does not show exactly one face.
    A 102 x 126 chip photo costs about 100 ms of CPU, nearly all of it dlib's ResNet pass.
    """
    image = load_photo(source)
    return FaceTemplate(encode_photo(image, models=models))


def encodings_from_media(source: str | os.PathLike[str], *, models: FaceModels) -> list[Encoding]:
    """Live-side encodings of a file: one for a photo, the liveness samples for a clip.

    A still image gives the encoding of its one face (:func:`encode_photo`). Anything else (a
    video, or a folder of frames) goes through :func:`ecard.liveness.analyze_video`, whose
    ``samples`` are a few sharp, frontal, eyes-open frames. Raises the same typed errors as
    those functions; :class:`~ecard.errors.NoFaceError` when a clip yields no sample.
    """
    from ecard.faces.images import is_photo

    if not Path(source).exists():
        raise UnreadableMediaError(f"{os.fspath(source)} does not exist.")
    if is_photo(source):
        return [encode_photo(load_photo(source), models=models)]
    from ecard.liveness import analyze_video

    result = analyze_video(source, models=models)
    encodings = [s.encoding for s in result.samples]
    if not encodings:
        raise NoFaceError("No usable face was found in the clip.")
    return encodings


def match_template(
    template: FaceTemplate,
    encodings: Iterable[npt.ArrayLike],
    threshold: float | None = None,
) -> MatchResult:
    """Compare the live face encodings (a few good frames of one clip) with an ID template.

    ``distance`` is the median of the per-encoding distances; ``match`` is ``distance <=
    threshold``. ``threshold`` defaults to the calibrated one (:func:`load_calibration`); a
    larger value accepts more impostors. Raises :class:`~ecard.errors.NoFaceError` when no
    encoding is given.
    """
    distances = [template.distance(e) for e in encodings]
    if not distances:
        raise NoFaceError("No live face sample to compare with the ID photo.")
    limit = load_calibration().threshold if threshold is None else float(threshold)
    distance = float(np.median(distances))
    return MatchResult(
        match=distance <= limit, distance=distance, threshold=limit, samples=len(distances)
    )
