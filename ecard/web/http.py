"""Request helpers: JSON bodies, fields, HTTP Basic channel auth and Bearer tokens."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flask import current_app, g, request

from ecard.channels import ChannelIdentity, Scope, authenticate
from ecard.errors import (
    AuthError,
    InvalidFieldError,
    MalformedJSONError,
    MissingFieldError,
    RequestError,
    UnsupportedMediaTypeError,
)
from ecard.web.services import Services


def services() -> Services:
    svc: Services = current_app.extensions["ecard"]
    return svc


def json_body() -> dict[str, Any]:
    """The request's JSON object; 415 for another content type, 400 for bad JSON or a non-object."""
    if not request.is_json:
        raise UnsupportedMediaTypeError("Send the body as application/json.")
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError):
        raise MalformedJSONError() from None
    if not isinstance(body, dict):
        raise RequestError("The JSON body must be an object.")
    return body


def optional_json_body() -> dict[str, Any]:
    """Like :func:`json_body`, but an empty body (any content type) is an empty object."""
    if not request.get_data(cache=True):
        return {}
    return json_body()


def str_field(body: dict[str, Any], name: str, *, max_len: int = 4096) -> str:
    if name not in body or body[name] is None:
        raise MissingFieldError(f"The field '{name}' is required.")
    value = body[name]
    if not isinstance(value, str):
        raise InvalidFieldError(f"The field '{name}' must be a string.")
    if len(value) > max_len:
        raise InvalidFieldError(f"The field '{name}' is too long.")
    return value


def channel(scope: Scope) -> ChannelIdentity:
    """The channel authenticated by HTTP Basic, holding ``scope``; 401 / 403 otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise AuthError("Authenticate with HTTP Basic client_id:client_secret.")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError("The Basic credentials are not valid base64.") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id or not secret or len(decoded) > 512:
        raise AuthError("The Basic credentials must be client_id:client_secret.")
    svc = services()
    ident = authenticate(svc.store, client_id, secret, cache=svc.auth_cache)
    g.channel = ident
    ident.require(scope)
    return ident


def bearer() -> str:
    """The Bearer token of the request; 401 when absent."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    token = value.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 8192:
        raise AuthError("Send the token as Authorization: Bearer <token>.")
    return token
