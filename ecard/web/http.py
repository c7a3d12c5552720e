"""Request helpers: bounded JSON bodies, HTTP Basic channel auth and Bearer tokens."""

from __future__ import annotations

import base64
import binascii
import json as jsonlib
from typing import Any

from flask import current_app, g, request

from ecard.channels import ChannelIdentity, Scope, authenticate
from ecard.errors import (
    AuthError,
    JsonTooDeepError,
    MalformedJSONError,
    RequestError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
)
from ecard.web.services import Services


def services() -> Services:
    svc: Services = current_app.extensions["ecard"]
    return svc


#: Largest JSON request body (bytes). Every JSON body of the API is a few fields (a token is at
#: most 8 kB); the multipart uploads have their own limits.
MAX_JSON_BYTES = 64 * 1024
#: Deepest nesting of a JSON request body (objects and arrays). Our bodies are flat objects.
MAX_JSON_DEPTH = 32


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` nests objects/arrays deeper than ``limit`` (iterative, no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


_UNPARSED = object()


def guard_json_body() -> None:
    """``before_request``: bound and parse a JSON body once (cached on the request).

    Too large is 413, too deep 400 ``json_too_deep``, both before authentication (they are
    refused whoever sends them). Bad JSON syntax is left for the route to answer (400
    ``malformed_json``), after its own credential checks. The parsed value is cached where
    ``request.get_json()`` finds it, so every reader sees the same bounded value.
    """
    if request.method in ("GET", "HEAD", "OPTIONS", "DELETE") or not request.is_json:
        return
    length = request.content_length
    if length is not None and length > MAX_JSON_BYTES:
        raise RequestTooLargeError(f"A JSON body is at most {MAX_JSON_BYTES} bytes.")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_JSON_BYTES:
        raise RequestTooLargeError(f"A JSON body is at most {MAX_JSON_BYTES} bytes.")
    if not raw:
        return
    try:
        value = jsonlib.loads(raw)
    except RecursionError:
        raise JsonTooDeepError() from None
    except (ValueError, UnicodeDecodeError):
        request.environ["ecard.json"] = _UNPARSED
        return
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise JsonTooDeepError()
    request.environ["ecard.json"] = value
    # werkzeug's get_json() cache (value for silent and for strict reads)
    request._cached_json = (value, value)


def json_body() -> dict[str, Any]:
    """The request's JSON object; 415 for another content type, 400 for bad JSON or a non-object."""
    if not request.is_json:
        raise UnsupportedMediaTypeError("Send the body as application/json.")
    if "ecard.json" not in request.environ:
        guard_json_body()
    body = request.environ.get("ecard.json", _UNPARSED)
    if body is _UNPARSED:
        raise MalformedJSONError()
    if not isinstance(body, dict):
        raise RequestError("The JSON body must be an object.")
    return body


def optional_json_body() -> dict[str, Any]:
    """Like :func:`json_body`, but an empty body (any content type) is an empty object."""
    if not request.get_data(cache=True):
        return {}
    return json_body()


def channel(scope: Scope) -> ChannelIdentity:
    """The channel authenticated by HTTP Basic, holding ``scope``; 401 / 403 otherwise.

    Memoised for the request (a route's guard and its view may both ask)."""
    known: ChannelIdentity | None = g.get("channel")
    if known is not None:
        known.require(scope)
        return known
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
