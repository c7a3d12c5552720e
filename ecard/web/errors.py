"""One error handler: every failure becomes ``{"error": code, "message": ...}`` with its status.

``EcardError`` subclasses carry their own code and status; werkzeug's HTTP errors (404, 405,
413, 415, bad JSON, bad multipart) are mapped onto the same codes; anything unexpected is logged
and answered with a generic 500 body that reveals nothing (and counts as a bug).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from ecard.errors import (
    EcardError,
    MethodNotAllowedError,
    NotFoundError,
    RateLimitedError,
    RequestError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
)

log = logging.getLogger("ecard.web")

_HTTP_CODES: dict[int, type[EcardError]] = {
    400: RequestError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    413: RequestTooLargeError,
    415: UnsupportedMediaTypeError,
    429: RateLimitedError,
}


def error_response(exc: EcardError) -> Response:
    resp = jsonify(exc.to_dict())
    resp.status_code = exc.status
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int):  # PinWaitError: the per-card wait, in seconds
        resp.headers["Retry-After"] = str(retry_after)
    return resp


def _from_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    prebuilt = exc.response
    if isinstance(prebuilt, Response) and prebuilt.mimetype == "application/json":
        return prebuilt  # already our shape (the rate limiter's 429 with Retry-After)
    cls = _HTTP_CODES.get(status)
    if cls is not None:
        err = cls()
        resp = error_response(err)
    else:
        resp = jsonify({"error": f"http_{status}", "message": exc.name})
        resp.status_code = status
    for key, value in exc.get_headers():
        if key.lower() == "retry-after":
            resp.headers["Retry-After"] = value
        elif key.lower() == "allow":  # a 405 names the methods that are allowed
            resp.headers["Allow"] = value
    return resp


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(EcardError)
    def _ecard(exc: EcardError) -> Response:
        if exc.status >= 500:
            log.warning("service error %s: %s", exc.code, exc.message)
        return error_response(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return _from_http(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:  # a bug: log it, never show it
        log.exception("unhandled error")
        return error_response(EcardError("An internal error occurred."))
