"""The dlib models behind liveness and matching, loaded once per process and checked by SHA-256.

The files come from the ``face_recognition_models`` package (the same files ``face_recognition``
uses). ``manifest.json`` (package data, ``ecard/faces/data/``) lists each file with its SHA-256
and size; :meth:`FaceModels.load` refuses a file that is missing or altered with a typed
:class:`~ecard.errors.ModelError` instead of ``face_recognition``'s ``quit()``.
Nothing here loads at import time.

dlib types stop at this boundary: callers get numpy arrays and :class:`Box` values.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ecard.errors import ModelError, ModelIntegrityError, ModelMissingError

#: Repository root of a checkout (bench scripts find ../shared/data from it). Not used to find
#: any file the package needs: those ship as package data.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: Package data of ``ecard.faces`` (``data/manifest.json``, ``data/calibration.json``), found
#: through importlib.resources so that a wheel installed anywhere finds them.
DATA_DIR = Path(str(files("ecard.faces") / "data"))
MANIFEST_PATH = DATA_DIR / "manifest.json"

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
ENCODER = "dlib_face_recognition_resnet_model_v1.dat"

Image = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float64]
Encoding = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ModelFile:
    """One entry of the model manifest (``ecard/faces/data/manifest.json``)."""

    name: str
    file: str
    sha256: str
    size: int
    source: str
    licence: str
    required: bool


@dataclass(frozen=True)
class Box:
    """A face rectangle in pixels of the image it was found in (right and bottom exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    def scaled(self, factor: float) -> Box:
        """The same box in an image resized by ``factor`` (e.g. 2.0 maps a half-size box back)."""
        return Box(
            round(self.left * factor),
            round(self.top * factor),
            round(self.right * factor),
            round(self.bottom * factor),
        )


def read_manifest(path: Path = MANIFEST_PATH) -> list[ModelFile]:
    """The model files the project uses, as listed in the packaged ``manifest.json``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelMissingError(f"Cannot read the model manifest {path}: {exc}") from exc
    return [
        ModelFile(
            name=f["name"],
            file=f["file"],
            sha256=f["sha256"],
            size=int(f["size"]),
            source=f["source"],
            licence=f["licence"],
            required=bool(f.get("required", True)),
        )
        for f in data["files"]
    ]


def models_dir() -> Path:
    """Folder holding the .dat files, found without importing ``face_recognition_models``.

    ``ECARD_MODELS_DIR`` (:attr:`ecard.config.Settings.models_dir`) is passed as
    ``FaceModels(folder=...)`` by the app; this function never reads the environment.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise ModelMissingError(
            "The face_recognition_models package is not installed (run `make install`)."
        )
    return Path(spec.origin).parent / "models"


_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()


def verify_file(entry: ModelFile, folder: Path | None = None) -> Path:
    """Path of ``entry`` after checking its size and SHA-256 (hashed once per process per file)."""
    path = (folder or models_dir()) / entry.file
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelMissingError(f"Model file {entry.file} is missing from {path.parent}.") from exc
    if stat.st_size != entry.size:
        raise ModelIntegrityError(
            f"Model file {entry.file} has {stat.st_size} bytes, the manifest says {entry.size}."
        )
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _verified_lock:
        digest = _verified.get(key)
    if digest is None:
        sha = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha.update(chunk)
        digest = sha.hexdigest()
        with _verified_lock:
            _verified[key] = digest
    if digest != entry.sha256:
        raise ModelIntegrityError(
            f"Model file {entry.file} does not match its SHA-256 in the model manifest."
        )
    return path


class FaceModels:
    """dlib's HOG face detector, 68-point landmark predictor and ResNet face encoder.

    The constructor is cheap; :meth:`load` reads and checks the files (about 1 s, 130 MB) and is
    idempotent and thread-safe. Build one per process and share it (the web app keeps it in
    ``app.extensions``; :func:`shared_models` serves the CLI and tests).
    """

    def __init__(self, folder: Path | None = None, manifest: Path = MANIFEST_PATH) -> None:
        self._folder = folder
        self._manifest = manifest
        self._lock = threading.Lock()
        self._detector: Any = None
        self._predictor: Any = None
        self._encoder: Any = None

    @property
    def ready(self) -> bool:
        return self._encoder is not None

    def load(self) -> FaceModels:
        with self._lock:
            if self.ready:
                return self
            entries = {e.file: e for e in read_manifest(self._manifest)}
            folder = self._folder or models_dir()
            paths = {}
            for name in (LANDMARKS_68, ENCODER):
                if name not in entries:
                    raise ModelMissingError(f"The model manifest does not list {name}.")
                paths[name] = verify_file(entries[name], folder)
            try:
                import dlib  # heavy: only here, never at import time
            except ImportError as exc:
                raise ModelError("dlib is not installed (run `make install`).") from exc
            try:
                self._detector = dlib.get_frontal_face_detector()
                self._predictor = dlib.shape_predictor(str(paths[LANDMARKS_68]))
                self._encoder = dlib.face_recognition_model_v1(str(paths[ENCODER]))
            except RuntimeError as exc:
                raise ModelError(f"dlib could not load the models: {exc}") from exc
        return self

    def _require(self) -> None:
        if not self.ready:
            self.load()

    def detect(self, image: Image, upsample: int = 0) -> list[Box]:
        """Faces found by the HOG detector in a gray or RGB uint8 image, largest first.

        ``upsample`` doubles the image that many times before detecting: it finds faces down to
        about 40 px (upsample 1) instead of 80 px, at about 4x the cost.
        """
        self._require()
        rects = self._detector(np.ascontiguousarray(image), upsample)
        boxes = [
            Box(
                max(0, r.left()),
                max(0, r.top()),
                min(image.shape[1], r.right() + 1),
                min(image.shape[0], r.bottom() + 1),
            )
            for r in rects
        ]
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def landmarks(self, image: Image, box: Box) -> Points:
        """The 68 dlib landmarks (x, y) of the face in ``box``, as a (68, 2) float array."""
        self._require()
        import dlib

        shape = self._predictor(
            np.ascontiguousarray(image),
            dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1),
        )
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def encode(self, rgb: Image, box: Box, jitters: int = 0) -> Encoding:
        """The 128-d ResNet descriptor of the face in ``box`` of an RGB image.

        ``jitters`` > 0 averages that many randomly perturbed crops: slightly more stable, and
        ``jitters`` times slower. Distances between descriptors of one person are typically < 0.5.
        """
        self._require()
        import dlib

        img = np.ascontiguousarray(rgb)
        shape = self._predictor(
            img, dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
        )
        descriptor = self._encoder.compute_face_descriptor(img, shape, jitters)
        return np.array(descriptor, dtype=np.float64)


_shared: dict[Path | None, FaceModels] = {}
_shared_lock = threading.Lock()


def shared_models(folder: Path | None = None) -> FaceModels:
    """The process-wide loaded :class:`FaceModels` of ``folder`` (``ECARD_MODELS_DIR``,
    :attr:`ecard.config.Settings.models_dir`; ``None``: the package's), loaded on first call."""
    with _shared_lock:
        models = _shared.get(folder)
        if models is None:
            models = _shared[folder] = FaceModels(folder=folder)
    return models.load()
