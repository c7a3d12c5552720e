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


class ImageTooLargeError(MediaTooLargeError):
    """A picture whose header declares more pixels, or a longer side, than its purpose needs
    (QR photo, camera frame, ID photo); refused before any pixel is decoded."""

    code = "image_too_large"
    default_message = "The picture has more pixels than this step accepts."


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
    default_message = "A face model file does not match its SHA-256 in the model manifest."


class ConfigError(EcardError):
    """A setting (environment variable) or instance file the service cannot work with: the
    operator's input, so the CLI exits 2 with the one-line message (``ecard serve`` included)."""

    code = "config_error"
    status = 500
    exit_code = 2
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


# --- service: web API, store, enrollment, cards (ecard/web, store, enrollment, cards) -----------


class RequestError(InputError):
    """An HTTP request that is malformed before any domain rule applies."""

    code = "bad_request"
    status = 400
    default_message = "The request is malformed."


class MalformedJSONError(RequestError):
    code = "malformed_json"
    default_message = "The request body is not valid JSON."


class JsonTooDeepError(RequestError):
    """A JSON body nested deeper than the service reads (refused before it is validated)."""

    code = "json_too_deep"
    default_message = "The JSON body is nested too deeply."


class MissingFieldError(RequestError):
    code = "missing_field"
    default_message = "A required field is missing."


class InvalidFieldError(RequestError):
    code = "invalid_field"
    status = 422
    default_message = "A field has an invalid value."


class UnsupportedMediaTypeError(RequestError):
    code = "unsupported_media_type"
    status = 415
    default_message = "The request has the wrong content type."


class RequestTooLargeError(RequestError):
    code = "request_too_large"
    status = 413
    default_message = "The request body is too large."


class NotFoundError(InputError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class MethodNotAllowedError(InputError):
    code = "method_not_allowed"
    status = 405
    default_message = "This method is not allowed here."


class AuthError(InputError):
    """Missing or wrong credentials (HTTP Basic for channels, Bearer for citizens)."""

    code = "unauthorized"
    status = 401
    default_message = "Missing or wrong credentials."


class ForbiddenError(InputError):
    """Valid credentials without the scope the operation needs."""

    code = "forbidden"
    status = 403
    default_message = "These credentials may not do this."


class InvalidNameError(InputError):
    """A name with control, bidi or invisible characters, or none of a name's letters."""

    code = "invalid_name"
    status = 422
    default_message = "The name contains characters a name cannot have."


class InvalidIdNumberError(InputError):
    code = "invalid_id_number"
    status = 422
    default_message = "The ID number is not a valid 18-character resident ID number."


class CitizenNotFoundError(NotFoundError):
    code = "citizen_not_found"
    default_message = "No citizen with this ID number and name is in the registry."


class AlreadyExistsError(InputError):
    code = "already_exists"
    status = 409
    default_message = "This already exists."


class StateError(InputError):
    """A step asked for in the wrong state of the enrollment or card."""

    code = "wrong_state"
    status = 409
    default_message = "This step is not possible in the current state."


class EnrollmentExpiredError(StateError):
    code = "enrollment_expired"
    status = 410
    default_message = "The enrollment has expired; ask the service for a new link."


class EnrollmentLockedError(StateError):
    code = "enrollment_locked"
    status = 423
    default_message = "Too many failed attempts; this enrollment is locked."


class ConsentRequiredError(InputError):
    code = "consent_required"
    status = 422
    default_message = "The agreement must be accepted to continue."


class NonceError(InputError):
    code = "bad_nonce"
    status = 409
    default_message = "The challenge is unknown, used or expired; ask for a new challenge."


class CardConflictError(StateError):
    code = "card_exists"
    default_message = "A card is already being issued for this citizen."


class CardStateError(StateError):
    code = "card_not_active"
    default_message = "The card is not active."


class PinLockedError(InputError):
    """100 consecutive wrong PINs (NIST SP 800-63B 5.2.2): a new PIN after a face check."""

    code = "pin_locked"
    status = 423
    default_message = (
        "Too many wrong PINs; set a new PIN after a face check (reporting a loss still works)."
    )


class PinWaitError(InputError):
    """Wrong PINs are rate limited per card: wait ``retry_after`` seconds (sent as Retry-After)."""

    code = "pin_wait"
    status = 429
    default_message = "Too many wrong PINs; try again later."

    def __init__(self, message: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ScanRequiredError(InputError):
    """A desk confirmation without a recent scan of that card by that hospital. Unknown cards,
    cards of another hospital's scan and expired or used scans get this same answer."""

    code = "scan_required"
    status = 409
    default_message = "Scan the patient's QR code first; a scan is valid for 3 minutes."


class EnrollmentEndedError(InputError):
    """The enrollment token after its enrollment ended (card issued, failed, locked, expired)."""

    code = "enrollment_ended"
    status = 410
    default_message = "This enrollment has ended; its link no longer opens it."


class WrongPinError(AuthError):
    code = "wrong_pin"
    status = 403
    default_message = "The PIN is wrong."


class RateLimitedError(InputError):
    code = "rate_limited"
    status = 429
    default_message = "Too many requests; slow down."


class NotReadyError(EcardError):
    code = "not_ready"
    status = 503
    default_message = "The service is not ready."


# --- tokens: e-card and QR tokens, keys, status list, PIN policy (ecard/tokens) ---------------


class TokenError(InputError):
    """A token that must not be accepted. The code says why; the message never echoes the token."""

    code = "token_invalid"
    status = 401
    default_message = "The token is not valid."


class TokenMalformedError(TokenError):
    code = "token_malformed"
    status = 400
    default_message = "The token is not a well-formed compact JWS."


class TokenDuplicateMemberError(TokenMalformedError):
    code = "token_duplicate_member"
    default_message = "The token repeats a member name in its header or claims."


class TokenForbiddenHeaderError(TokenError):
    code = "token_forbidden_header"
    default_message = "The token header carries a parameter we never accept."


class TokenAlgorithmError(TokenError):
    code = "token_bad_algorithm"
    default_message = "The token's algorithm is not the one pinned to its key."


class TokenWrongTypeError(TokenError):
    code = "token_wrong_type"
    default_message = "The token is not of the expected type."


class TokenUnknownKeyError(TokenError):
    code = "token_unknown_key"
    default_message = "The token was not signed by a key of this issuer."


class TokenKeyRetiredError(TokenUnknownKeyError):
    code = "token_key_retired"
    default_message = "The token was signed by a key that has been retired."


class TokenBadSignatureError(TokenError):
    code = "token_bad_signature"
    default_message = "The token's signature does not verify."


class TokenClaimsError(TokenError):
    code = "token_bad_claims"
    default_message = "The token lacks a required claim or has one of the wrong type."


class TokenIssuerError(TokenError):
    code = "token_bad_issuer"
    default_message = "The token was issued by someone else."


class TokenExpiredError(TokenError):
    code = "token_expired"
    default_message = "The token has expired."


class TokenNotYetValidError(TokenError):
    code = "token_not_yet_valid"
    default_message = "The token is not valid yet."


class TokenSupersededError(TokenError):
    """A card token older than the card's current one (``/cards/login`` issued a new one)."""

    code = "token_superseded"
    default_message = "A newer token was issued for this card; use that one or log in again."


class TokenReplayedError(TokenError):
    """A single-use token (the QR presentation token) presented a second time."""

    code = "replayed"
    status = 409
    default_message = "This QR code has already been used; ask for a fresh one."


class QrNotFoundError(MediaError):
    code = "qr_not_found"
    default_message = "No readable QR code was found in the picture."


class StatusListError(InputError):
    """A status list (or status list token) that cannot be decoded, or an index outside it."""

    code = "bad_status_list"
    status = 422
    default_message = "The status list is not valid."


class KeyNotFoundError(InputError):
    code = "key_not_found"
    status = 404
    default_message = "No signing key with this kid."


class KeyActiveError(InputError):
    code = "key_active"
    status = 409
    default_message = "The active signing key cannot be retired; rotate first."


class KeyStoreError(ConfigError):
    code = "key_store_error"
    default_message = "The signing keys could not be read or written."


class FetchError(EcardError):
    """The offline verifier could not fetch the JWKS or a status list."""

    code = "fetch_failed"
    status = 502
    default_message = "The JWKS or status list could not be fetched."


class StatusListExpiredError(FetchError):
    """The offline verifier holds no status list that is still within its ``exp`` (and could not
    fetch one): the card's status cannot be told, so the card is not judged valid."""

    code = "status_list_expired"
    status = 503
    default_message = "The status list has expired and no fresh one could be fetched."


class PinPolicyError(InputError):
    """A PIN refused by the policy; each subclass names the rule. The PIN is never echoed."""

    code = "pin_rejected"
    status = 422
    default_message = "This PIN is not allowed."


class PinFormatError(PinPolicyError):
    code = "pin_format"
    default_message = "The PIN must be exactly 6 digits (0-9)."


class PinRepeatedError(PinPolicyError):
    code = "pin_repeated"
    default_message = "The PIN must not be one digit, or a short group of digits, repeated."


class PinSequenceError(PinPolicyError):
    code = "pin_sequence"
    default_message = "The PIN must not be a run of consecutive digits, going up or down."


class PinBirthDateError(PinPolicyError):
    code = "pin_birth_date"
    default_message = "The PIN must not contain your date of birth."


class PinIdNumberError(PinPolicyError):
    code = "pin_id_number"
    default_message = "The PIN must not be part of your ID number."


class PinCommonError(PinPolicyError):
    code = "pin_common"
    default_message = "This PIN is among the most common ones; choose a less guessable PIN."


# --- pages: the hospital desk's session (ecard/web/pages.py) -----------------------------------


class CsrfError(InputError):
    """A desk form or fetch without the session's CSRF token."""

    code = "csrf_failed"
    status = 403
    default_message = "The page is out of date; reload it and try again."


class DeskSessionError(InputError):
    """A desk route called without a live desk session."""

    code = "desk_session"
    status = 401
    default_message = "The desk session has ended; log in again."


# --- the live capture protocol (ecard/capture.py, ecard/web/capture.py) -----------------------


class LiveCaptureRequiredError(StateError):
    """The one-shot ``/challenge`` + ``/liveness`` upload asked for under the random challenge."""

    code = "live_capture_required"
    default_message = (
        "This service reveals the blink cues live: start a capture with "
        "POST /api/v1/enrollments/{id}/capture, send the frames in batches to "
        ".../capture/{capture_id}/frames and end with .../capture/{capture_id}/finish."
    )


class CaptureRunningError(StateError):
    code = "capture_running"
    default_message = "A capture is already running for this enrollment; finish it or wait."


class CaptureFinishedError(StateError):
    code = "capture_finished"
    default_message = "This capture has already finished."


class CaptureExpiredError(StateError):
    code = "capture_expired"
    status = 410
    default_message = "This capture has expired; start a new one."


class BatchOrderError(StateError):
    """A batch whose ``seq`` is not the next one expected (the capture goes on)."""

    code = "batch_out_of_order"
    default_message = "This batch is not the next one; send the batch the server expects."


class BatchRepeatedError(BatchOrderError):
    code = "batch_repeated"
    default_message = "This batch was already received; send the next one."


class TooManyFramesError(MediaTooLargeError):
    code = "too_many_frames"
    default_message = "Too many frames for one batch or one capture."


class CaptureTooLongError(MediaTooLargeError):
    code = "capture_too_long"
    default_message = "The capture is longer than the service accepts; finish it."


class TimestampError(MediaError):
    """Client frame times that do not fit the protocol (the batch is refused, nothing lost)."""

    code = "bad_timestamps"
    default_message = (
        "timestamps_ms must list one integer per frame, strictly increasing, continuing the "
        "previous batch."
    )


class FramesFromFutureError(TimestampError):
    code = "frames_from_future"
    default_message = "The frames are stamped later than the time elapsed since the first batch."


class FramesTooLateError(TimestampError):
    code = "frames_too_late"
    default_message = "The frames arrived too long after they were taken; send newer frames."
