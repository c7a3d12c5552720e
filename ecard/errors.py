"""The one exception tree of ecard.

Every error has a stable machine-readable ``code`` (part of the public contract: the API answers
``{"error": code, "message": ...}``), an HTTP ``status`` and a CLI ``exit_code`` (2 for bad
input, 1 for anything else). Foreign exceptions (OpenCV, dlib, PyJWT, SQLAlchemy) are translated
into these where they enter our code; nothing else should reach a user.

Messages are plain sentences meant for the person who sent the input. They never contain
tokens, PINs, secrets, frames or face encodings.
"""

from __future__ import annotations

from typing import ClassVar


class EcardError(Exception):
    """Base of every error ecard raises on purpose."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    default_message: ClassVar[str] = "Something went wrong."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


# --- bad input (CLI exit 2, HTTP 4xx) ---------------------------------------------------------


class InputError(EcardError):
    """The caller sent something we cannot use. Never a server fault."""

    code = "bad_input"
    status = 400
    exit_code = 2
    default_message = "The input is not valid."


class MediaError(InputError):
    """A photo, video or frame sequence that cannot be decoded or used."""

    code = "bad_media"
    status = 422
    default_message = "The file is not a readable image or video."


class EmptyMediaError(MediaError):
    code = "empty_media"
    default_message = "The file is empty."


class UnreadableMediaError(MediaError):
    code = "unreadable_media"
    default_message = "The file is not a readable image or video."


class MediaTooLargeError(MediaError):
    code = "media_too_large"
    status = 413
    default_message = "The file is too large."


class TooFewFramesError(MediaError):
    code = "too_few_frames"
    default_message = "The clip has too few frames to analyse."


class FaceError(InputError):
    """The picture is readable but does not show exactly one usable face."""

    code = "face_error"
    status = 422
    default_message = "No usable face was found."


class NoFaceError(FaceError):
    code = "no_face"
    default_message = "No face was found in the picture."


class MultipleFacesError(FaceError):
    code = "multiple_faces"
    default_message = "More than one face was found; the picture must show exactly one person."


class SeriesError(InputError):
    """An eye-aspect-ratio series that cannot be parsed."""

    code = "bad_series"
    status = 422
    default_message = "The EAR series is not valid."


# --- models and configuration (CLI exit 1, HTTP 503/500) -------------------------------------


class ModelError(EcardError):
    """A model file is missing, altered, or cannot be loaded."""

    code = "model_unavailable"
    status = 503
    default_message = "A face model file is missing or could not be loaded."


class ModelMissingError(ModelError):
    code = "model_missing"
    default_message = "A face model file is missing."


class ModelIntegrityError(ModelError):
    code = "model_altered"
    default_message = "A face model file does not match its SHA-256 in models/manifest.json."


class ConfigError(EcardError):
    code = "config_error"
    status = 500
    default_message = "The service is misconfigured."


# --- ID-photo matching (ecard/faces/images.py, ecard/faces/match.py) -------------------------


class ImageTooSmallError(MediaError):
    code = "image_too_small"
    default_message = "The picture is too small to show a face."


class TemplateError(EcardError):
    """A stored face template that cannot be read (wrong version, corrupt bytes): a data fault
    on our side, not the citizen's input, so HTTP 500 / exit 1."""

    code = "bad_template"
    default_message = "The stored face template is not valid."
