"""The OpenAPI 3.1 document of the API, served at ``/openapi.json`` (a test checks it against
the app's routes and runs schemathesis on it)."""

from __future__ import annotations

from typing import Any

from ecard import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    names = {
        400: "Malformed request (bad JSON, missing field)",
        401: "Missing or wrong credentials",
        403: "Credentials without the needed scope, or a wrong PIN",
        404: "Unknown id",
        409: "Wrong state for this step",
        410: "The enrollment (or the capture) has expired",
        413: "Too large",
        415: "Wrong content type",
        422: "A field has an invalid value",
        423: "Locked after too many failures",
        429: "Rate limited",
        503: "Not ready (models or keys unavailable)",
    }
    return {str(c): {"description": names[c], **_json(_ref("Error"))} for c in codes}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


S = {"type": "string"}
I = {"type": "integer"}  # noqa: E741
B = {"type": "boolean"}
DT = {"type": "string", "format": "date-time"}
NS = {"type": ["string", "null"]}
Security = list[dict[str, list[str]]]
BASIC: Security = [{"basic": []}]
BEARER_ENROLL: Security = [{"enrollment": []}]
BEARER_CARD: Security = [{"card": []}]
JSON_ERRS = (400, 415, 429)

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": S, "message": S}, ["error", "message"]),
    "Authorize": _obj(
        {
            "id_number": {
                **S,
                "pattern": "^[0-9]{17}[0-9Xx]$",
                "description": "GB 11643 resident ID number (check digit verified)",
                "example": "11010519491231002X",
            },
            "name": {**S, "minLength": 1, "maxLength": 100, "example": "张三"},
        },
        ["id_number", "name"],
    ),
    "Authorized": _obj(
        {"enrollment_id": S, "enrollment_token": S, "enroll_url": S, "expires_at": DT},
        ["enrollment_id", "enrollment_token", "enroll_url", "expires_at"],
    ),
    "Enrollment": _obj(
        {
            "enrollment_id": S,
            "state": {
                "type": "string",
                "enum": [
                    "authorized",
                    "consented",
                    "capturing",
                    "challenged",
                    "verified",
                    "issued",
                    "expired",
                    "failed",
                    "locked",
                ],
            },
            "citizen": _obj({"name": S, "id_number": S}, ["name", "id_number"]),
            "agreement": _obj(
                {
                    "version": S,
                    "text": S,
                    "texts": {
                        "type": "object",
                        "description": "the same agreement by language tag (en, zh-CN)",
                        "additionalProperties": S,
                    },
                },
                ["version", "text", "texts"],
            ),
            "consent": {"type": ["object", "null"]},
            "challenge": {"type": ["object", "null"]},
            "capture": {
                "type": ["object", "null"],
                "description": "the running live capture (state capturing): when it expires",
                "properties": {"expires_at": DT},
            },
            "attempts_left": I,
            "reason": NS,
            "card_no": NS,
            "created_at": DT,
            "expires_at": DT,
            "timeline": {
                "type": "array",
                "items": _obj(
                    {"step": S, "outcome": S, "actor": S, "at": DT},
                    ["step", "outcome", "actor", "at"],
                ),
            },
        },
        ["enrollment_id", "state", "citizen", "agreement", "attempts_left", "timeline"],
    ),
    "Consent": _obj({"agree": B, "agreement_version": S}, ["agree"]),
    "Consented": _obj(
        {"state": S, "agreement_version": S, "reason": NS}, ["state", "agreement_version"]
    ),
    "Challenge": _obj(
        {
            "nonce": S,
            "blinks": I,
            "cues_ms": {"type": "array", "items": I},
            "expires_at": DT,
        },
        ["nonce", "blinks", "cues_ms", "expires_at"],
    ),
    "LivenessUpload": {
        "type": "object",
        "description": (
            "Either one `video` file, or `frames` JPEG parts in order. Frame times: "
            "`timestamps_ms` (a JSON list of non-decreasing integers, one per frame), else an "
            "even rate from `fps` (default 15). Limits: body 20 MB, 300 frames, 20 s, 1920 px "
            "a side (413/422 before analysis)."
        ),
        "properties": {
            "nonce": S,
            "video": {"type": "string", "format": "binary"},
            "frames": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "timestamps_ms": S,
            "fps": {"type": "number"},
        },
        "required": ["nonce"],
    },
    "LivenessResult": _obj(
        {
            "live": B,
            "blinks": I,
            "match": B,
            "state": S,
            "reason": NS,
            "attempts_left": I,
        },
        ["live", "blinks", "match", "state", "reason", "attempts_left"],
    ),
    "CaptureStarted": _obj(
        {
            "capture_id": S,
            "expires_at": DT,
            "batch_ms": {**I, "description": "send a batch about this often (ms)"},
            "max_batch_frames": {**I, "description": "most frames in one batch"},
            "fps": {**I, "description": "frames per second to record"},
            "max_side": {**I, "description": "downscale frames to at most this many px a side"},
            "max_ms": {**I, "description": "longest capture (ms of client time)"},
            "attempts_left": I,
        },
        [
            "capture_id",
            "expires_at",
            "batch_ms",
            "max_batch_frames",
            "fps",
            "max_side",
            "max_ms",
            "attempts_left",
        ],
    ),
    "CaptureBatch": {
        "type": "object",
        "description": (
            "One batch of the live capture: `seq` 0, 1, 2 ... (the next expected; a repeated "
            "or skipped one is 409 `batch_repeated` / `batch_out_of_order`), `timestamps_ms` "
            "(a JSON list: ms since the capture's first frame, one per frame, strictly "
            "increasing also across batches; else 422 `bad_timestamps`) and `frames` (JPEG "
            "parts in order; too many in the batch or the capture is 413 `too_many_frames`). "
            "Timing is judged by the server: a batch far behind real time is 422 "
            "`frames_too_late`, one stamped ahead of the time elapsed since the first batch "
            "422 `frames_from_future`. A refused batch changes nothing: send it again "
            "correctly, or send the next frames under the same `seq`."
        ),
        "properties": {
            "seq": {"type": "string", "pattern": "^[0-9]{1,9}$"},
            "timestamps_ms": S,
            "frames": {"type": "array", "items": {"type": "string", "format": "binary"}},
        },
        "required": ["seq", "timestamps_ms", "frames"],
    },
    "CaptureAnswer": _obj(
        {
            "cue": {**B, "description": "true: the person should act now (blink)"},
            "action": {"type": ["string", "null"], "enum": ["blink", None]},
            "done": {**B, "description": "true: stop recording and call finish"},
            "face": {"type": "string", "enum": ["ok", "none", "multiple"]},
            "seq": I,
            "cues_total": I,
            "cues_shown": I,
        },
        ["cue", "action", "done", "face", "seq", "cues_total", "cues_shown"],
    ),
    "CaptureVerdict": _obj(
        {
            "live": B,
            "blinks": I,
            "match": B,
            "state": S,
            "reason": NS,
            "attempts_left": I,
            "cues": _obj({"asked": I, "answered": I}, ["asked", "answered"]),
        },
        ["live", "blinks", "match", "state", "reason", "attempts_left", "cues"],
    ),
    "Pin": _obj({"pin": {"type": "string", "pattern": "^[0-9]{6}$", "example": "480613"}}, ["pin"]),
    "Issued": _obj({"card": S, "card_no": S}, ["card", "card_no"]),
    "Token": _obj({"token": S}, ["token"]),
    "VerifyResult": _obj(
        {"valid": B, "status": S, "claims": {"type": "object"}, "error": S, "message": S},
        ["valid"],
    ),
    "Qr": _obj(
        {"qr_token": S, "expires_at": DT, "expires_in": I, "qr_png": S},
        ["qr_token", "expires_at", "qr_png"],
    ),
    "ScanRequest": _obj({"qr_token": S}, ["qr_token"]),
    "ScanResult": _obj(
        {
            "valid": B,
            "card_no": S,
            "name": S,
            "id_number_masked": S,
            "status": S,
            "expires_in": I,
            "error": S,
            "message": S,
        },
        ["valid"],
    ),
    "Confirm": _obj({"card_no": S, "pin": S}, ["card_no", "pin"]),
    "Confirmed": _obj({"confirmed": B, "card_no": S, "name": S, "status": S}, ["confirmed"]),
    "Login": _obj({"card_no": S, "pin": S}, ["card_no", "pin"]),
    "CardSummary": _obj(
        {
            "card_no": S,
            "status": S,
            "name": S,
            "id_number_masked": S,
            "issued_at": DT,
            "expires_at": DT,
        },
        ["card_no", "status"],
    ),
    "CardStatus": _obj({"card_no": S, "status": S}, ["card_no", "status"]),
    "LoginResult": _obj(
        {
            "card": S,
            "card_no": S,
            "status": S,
            "name": S,
            "id_number_masked": S,
            "issued_at": DT,
            "expires_at": DT,
        },
        ["card", "card_no", "status"],
    ),
}


def _op(
    summary: str,
    ok: tuple[int, str],
    errors: tuple[int, ...],
    *,
    body: str | None = None,
    security: list[dict[str, list[str]]] | None = None,
    multipart: str | None = None,
    tag: str,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {str(ok[0]): {"description": "OK", **_json(_ref(ok[1]))}, **_errors(*errors)},
    }
    if body is not None:
        op["requestBody"] = {"required": True, **_json(_ref(body))}
    if multipart is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": _ref(multipart)}},
        }
    op["security"] = security if security is not None else []
    return op


EID = {
    "name": "enrollment_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 64},
}
CID = {
    "name": "capture_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 64},
}


def build_document() -> dict[str, Any]:
    """The whole document (a fresh dict each call)."""
    enroll_errs = (*JSON_ERRS, 401, 404, 409, 410, 422, 423)
    paths: dict[str, Any] = {
        "/api/v1/enrollments": {
            "post": _op(
                "Start an enrollment (channel, scope enroll)",
                (201, "Authorized"),
                (*JSON_ERRS, 401, 403, 404, 422),
                body="Authorize",
                security=BASIC,
                tag="enroll",
            )
        },
        "/api/v1/enrollments/{enrollment_id}": {
            "parameters": [EID],
            "get": _op(
                "Masked personal info, agreement, state and the timeline of steps",
                (200, "Enrollment"),
                (401, 403, 404, 429),
                security=[*BEARER_ENROLL, *BASIC],
                tag="enroll",
            ),
        },
        "/api/v1/enrollments/{enrollment_id}/consent": {
            "parameters": [EID],
            "post": _op(
                "Accept (or decline: the enrollment ends) the agreement; version and time recorded",
                (200, "Consented"),
                enroll_errs,
                body="Consent",
                security=BEARER_ENROLL,
                tag="enroll",
            ),
        },
        "/api/v1/enrollments/{enrollment_id}/challenge": {
            "parameters": [EID],
            "post": _op(
                "A fresh single-use one-shot challenge (with ECARD_LIVENESS_CHALLENGE=N: N "
                "blinks anywhere); with the random challenge 409 live_capture_required",
                (200, "Challenge"),
                enroll_errs,
                security=BEARER_ENROLL,
                tag="enroll",
            ),
        },
        "/api/v1/enrollments/{enrollment_id}/liveness": {
            "parameters": [EID],
            "post": _op(
                "Upload the clip: blink liveness and ID-photo match (3 attempts); with the "
                "random challenge 409 live_capture_required (use the capture endpoints)",
                (200, "LivenessResult"),
                (*enroll_errs, 413, 503),
                multipart="LivenessUpload",
                security=BEARER_ENROLL,
                tag="enroll",
            ),
        },
        "/api/v1/enrollments/{enrollment_id}/capture": {
            "parameters": [EID],
            "post": _op(
                "Start a live capture: uses one of the 3 attempts; the challenge stays secret "
                "(409 capture_running while another runs)",
                (201, "CaptureStarted"),
                enroll_errs,
                security=BEARER_ENROLL,
                tag="capture",
            ),
        },
        "/api/v1/enrollments/{enrollment_id}/capture/{capture_id}/frames": {
            "parameters": [EID, CID],
            "post": _op(
                "Send one batch of frames; the answer reveals a cue when it is due",
                (200, "CaptureAnswer"),
                (*enroll_errs, 413, 503),
                multipart="CaptureBatch",
                security=BEARER_ENROLL,
                tag="capture",
            ),
        },
        "/api/v1/enrollments/{enrollment_id}/capture/{capture_id}/finish": {
            "parameters": [EID, CID],
            "post": _op(
                "End the capture: the verdict (liveness, cues, ID-photo match) at once",
                (200, "CaptureVerdict"),
                (*enroll_errs, 503),
                security=BEARER_ENROLL,
                tag="capture",
            ),
        },
        "/api/v1/enrollments/{enrollment_id}/pin": {
            "parameters": [EID],
            "post": _op(
                "Set the 6-digit PIN and issue the e-card",
                (201, "Issued"),
                (*enroll_errs, 503),
                body="Pin",
                security=BEARER_ENROLL,
                tag="enroll",
            ),
        },
        "/api/v1/cards/verify": {
            "post": _op(
                "Verify an e-card online, status included (channel, scope verify)",
                (200, "VerifyResult"),
                (*JSON_ERRS, 401, 403, 422),
                body="Token",
                security=BASIC,
                tag="cards",
            )
        },
        "/api/v1/cards/qr": {
            "post": _op(
                "A single-use QR token (60 s) for the holder (Bearer card + PIN)",
                (201, "Qr"),
                (*JSON_ERRS, 401, 403, 404, 409, 422, 423),
                body="Pin",
                security=BEARER_CARD,
                tag="cards",
            )
        },
        "/api/v1/cards/suspend": {
            "post": _op(
                "Report loss: suspend the card (Bearer card + PIN)",
                (200, "CardStatus"),
                (*JSON_ERRS, 401, 403, 404, 409, 422, 423),
                body="Pin",
                security=BEARER_CARD,
                tag="cards",
            )
        },
        "/api/v1/cards/login": {
            "post": _op(
                "Get the e-card back with card number + PIN",
                (200, "LoginResult"),
                (*JSON_ERRS, 403, 404, 409, 422, 423),
                body="Login",
                tag="cards",
            )
        },
        "/api/v1/cards/me": {
            "get": _op(
                "The holder's card and its current status (Bearer card)",
                (200, "CardSummary"),
                (400, 401, 429),
                security=BEARER_CARD,
                tag="cards",
            )
        },
        "/api/v1/scan": {
            "post": {
                **_op(
                    "Scan a QR code (hospital, scope scan); single use",
                    (200, "ScanResult"),
                    (*JSON_ERRS, 401, 403, 413, 422),
                    security=BASIC,
                    tag="hospital",
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("ScanRequest")},
                        "multipart/form-data": {
                            "schema": _obj(
                                {"image": {"type": "string", "format": "binary"}}, ["image"]
                            )
                        },
                    },
                },
            }
        },
        "/api/v1/scan/confirm": {
            "post": _op(
                "Settlement: check the holder's PIN (hospital, scope scan; 6 tries)",
                (200, "Confirmed"),
                (*JSON_ERRS, 401, 403, 404, 422, 423),
                body="Confirm",
                security=BASIC,
                tag="hospital",
            )
        },
        "/api/v1/status-lists/{list_id}": {
            "parameters": [
                {"name": "list_id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "get": {
                "summary": "The signed Token Status List (application/statuslist+jwt)",
                "tags": ["well-known"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/statuslist+jwt": {"schema": S}},
                    },
                    **_errors(404, 429, 503),
                },
            },
        },
        "/.well-known/jwks.json": {
            "get": {
                "summary": "The public signing keys (JWKS)",
                "tags": ["well-known"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "OK",
                        **_json(_obj({"keys": {"type": "array"}}, ["keys"])),
                    },
                    **_errors(429, 503),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "The process answers",
                "tags": ["health"],
                "security": [],
                "responses": {"200": {"description": "OK", **_json(_obj({"status": S}))}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Models loaded, keys present, database reachable",
                "tags": ["health"],
                "security": [],
                "responses": {
                    "200": {"description": "Ready", **_json(_obj({"status": S}))},
                    "503": {"description": "Not ready", **_json(_ref("Error"))},
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (no personal data)",
                "tags": ["health"],
                "security": [],
                "responses": {
                    "200": {"description": "OK", "content": {"text/plain": {"schema": S}}}
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "tags": ["health"],
                "security": [],
                "responses": {
                    "200": {"description": "OK", **_json({"type": "object"})},
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ecard",
            "version": __version__,
            "description": (
                "Electronic social security cards issued after blink liveness and ID-photo "
                'matching. Every error is `{"error": code, "message": text}`.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic", "description": "client_id:secret"},
                "enrollment": {"type": "http", "scheme": "bearer", "description": "enrollment"},
                "card": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }
