"""The hardened compact-JWS verifier (and signer) every ecard token type goes through.

PyJWT does the cryptography (ES256 signing, and the signature check with the key's pinned
algorithm); this module decides what is even looked at. In order, a token is refused when:

1. it is not ASCII, is longer than :data:`MAX_TOKEN_CHARS`, or is not three strict base64url
   segments (``token_malformed``);
2. its header is not one JSON object, or repeats a member (``token_duplicate_member``);
3. its header carries anything but ``alg``, ``kid``, ``typ`` — ``jku``, ``x5u``, ``jwk``,
   ``x5c``, ``crit``, ``b64``... (``token_forbidden_header``);
4. ``typ`` is missing or not the expected one (``token_wrong_type``): a QR token is never an
   e-card, nor the reverse;
5. ``kid`` is not the RFC 7638 shape or not in our own key set (``token_unknown_key``), or
   names a retired key (``token_key_retired``). Nothing is ever fetched from a header;
6. ``alg`` differs from the algorithm pinned to that key — ``none`` in any spelling, ``HS256``
   keyed with our public key... (``token_bad_algorithm``);
7. the signature does not verify (``token_bad_signature``), all-zero signatures included;
8. the claims are not one JSON object without repeated members, or lack ``iss``/``iat``/``exp``
   of the right types (``token_bad_claims``), name another issuer (``token_bad_issuer``), are
   expired (``token_expired``) or not yet valid by ``iat``/``nbf`` (``token_not_yet_valid``).

Times are Unix seconds; ``now`` is a parameter (default: the wall clock). Leeway is at most
:data:`MAX_LEEWAY` seconds.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import jwt
from jwt.exceptions import PyJWTError

from ecard.errors import (
    KeyStoreError,
    TokenAlgorithmError,
    TokenBadSignatureError,
    TokenClaimsError,
    TokenDuplicateMemberError,
    TokenExpiredError,
    TokenForbiddenHeaderError,
    TokenIssuerError,
    TokenKeyRetiredError,
    TokenMalformedError,
    TokenNotYetValidError,
    TokenUnknownKeyError,
    TokenWrongTypeError,
)
from ecard.tokens.keys import KID_RE, KeySet, KeyStore, SigningKey

#: Longest token we even start to parse (an e-card is about 700 characters).
MAX_TOKEN_CHARS = 8192
#: Largest clock leeway a caller may ask for, in seconds.
MAX_LEEWAY = 60.0
#: Header members we accept; every other one is refused.
ALLOWED_HEADER = frozenset({"alg", "kid", "typ"})

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_PARAM_NAME = re.compile(r"[A-Za-z0-9#_-]{1,16}")
_MAX_NUMERIC_DATE = 1e11  # year 5138: beyond any real exp, below float trouble
_JWS = jwt.PyJWS()

Clock = float | int | datetime | None


def epoch(now: Clock) -> float:
    """``now`` as Unix seconds: None is the wall clock; a datetime must be timezone-aware."""
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.timestamp()
    return float(now)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise TokenDuplicateMemberError()
        out[k] = v
    return out


def strict_json_object(raw: bytes, what: str) -> dict[str, Any]:
    """Parse one JSON object, refusing repeated member names (at any depth) and NaN/Infinity."""
    try:
        value = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_unique_pairs, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise TokenMalformedError(f"The token {what} is not valid JSON.") from None
    if not isinstance(value, dict):
        raise TokenMalformedError(f"The token {what} is not a JSON object.")
    return value


def b64url_decode(segment: str, what: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2)."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise TokenMalformedError(f"The token {what} is not base64url.")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenMalformedError(f"The token {what} is not base64url.") from None


def split_token(token: object) -> tuple[str, str, str]:
    if not isinstance(token, str) or not token:
        raise TokenMalformedError("The token must be a non-empty string.")
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise TokenMalformedError("The token is too long or not ASCII.")
    parts = token.split(".")
    # An empty signature is let through here so that `alg: none` is named for what it is.
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise TokenMalformedError("The token must be three dot-separated segments.")
    return parts[0], parts[1], parts[2]


def parse_header(token: str) -> dict[str, Any]:
    """The strict, checked-for-shape header of a token (not yet trusted)."""
    header_b64, _, _ = split_token(token)
    return strict_json_object(b64url_decode(header_b64, "header"), "header")


@dataclass(frozen=True)
class VerifiedJws:
    """A token whose signature, type, issuer and times all checked out."""

    kid: str
    header: Mapping[str, Any] = field(repr=False)
    claims: Mapping[str, Any] = field(repr=False)


def as_key_set(keys: KeyStore | KeySet | Mapping[str, Any]) -> KeySet:
    """Accept a KeyStore, an already parsed KeySet (fastest), or a JWKS mapping."""
    if isinstance(keys, KeySet):
        return keys
    if isinstance(keys, KeyStore):
        return keys.key_set()
    return KeySet.from_jwks(keys)


def verify_jws(
    token: object,
    keys: KeyStore | KeySet | Mapping[str, Any],
    *,
    typ: str,
    issuer: str,
    now: Clock = None,
    leeway: float = 30.0,
    require_kid: bool = True,
    max_lifetime: float | None = None,
) -> VerifiedJws:
    """Verify a compact JWS of type ``typ`` from ``issuer``; see the module doc for the rules.

    ``require_kid=False`` lets a token without ``kid`` be tried against each of our keys (the QR
    token leaves it out to fit a small QR code); a ``kid`` that is present is always resolved
    strictly. ``max_lifetime`` (seconds) refuses tokens whose ``exp - iat`` is longer.
    """
    if not 0 <= leeway <= MAX_LEEWAY:
        raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY:g} seconds")
    key_set = as_key_set(keys)
    header_b64, payload_b64, sig_b64 = split_token(token)
    header = strict_json_object(b64url_decode(header_b64, "header"), "header")

    extra = header.keys() - ALLOWED_HEADER
    if extra:
        # Name well-formed parameters only: an attacker's member name could carry a newline.
        shown = sorted(n for n in extra if _PARAM_NAME.fullmatch(n))[:4] or ["parameters"]
        raise TokenForbiddenHeaderError(
            f"The token header carries {', '.join(shown)}, which we never accept."
        )
    if header.get("typ") != typ:
        raise TokenWrongTypeError(f"The token is not of type {typ}.")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenAlgorithmError("The token header has no algorithm.")

    kid = header.get("kid")
    if kid is None:
        if require_kid:
            raise TokenUnknownKeyError("The token header has no kid.")
        candidates = key_set.keys()
    else:
        if not isinstance(kid, str) or not KID_RE.fullmatch(kid):
            raise TokenUnknownKeyError("The token's kid is not one of our key ids.")
        key = key_set.get(kid)
        if key is None:
            if key_set.is_retired(kid):
                raise TokenKeyRetiredError()
            raise TokenUnknownKeyError()
        candidates = (key,)
    if not candidates:
        raise TokenUnknownKeyError("No key is available to verify the token.")
    # The algorithm is pinned to the key; the header may only repeat it.
    if any(alg != k.alg for k in candidates):
        raise TokenAlgorithmError(f"The token's algorithm is not {candidates[0].alg}.")

    signature = b64url_decode(sig_b64, "signature")
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    for candidate in candidates:
        if candidate.verify(signing_input, signature):
            verified_kid = candidate.kid
            break
    else:
        raise TokenBadSignatureError()

    claims = strict_json_object(b64url_decode(payload_b64, "payload"), "claims")
    check_claims(claims, issuer=issuer, now=epoch(now), leeway=leeway, max_lifetime=max_lifetime)
    return VerifiedJws(
        kid=verified_kid, header=MappingProxyType(header), claims=MappingProxyType(claims)
    )


def _numeric_date(claims: Mapping[str, Any], name: str, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise TokenClaimsError(f"The token has no '{name}' claim.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenClaimsError(f"The token's '{name}' claim is not a number.")
    # 1e309 parses as inf and 10**400 does not fit a float: neither is a time.
    if not -_MAX_NUMERIC_DATE < value < _MAX_NUMERIC_DATE:
        raise TokenClaimsError(f"The token's '{name}' claim is out of range.")
    return float(value)


def check_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    now: float,
    leeway: float,
    max_lifetime: float | None = None,
) -> None:
    """The registered-claim checks: ``iss`` equal, ``iat``/``exp`` required, ``nbf`` honoured."""
    iss = claims.get("iss")
    if not isinstance(iss, str):
        raise TokenClaimsError("The token has no 'iss' claim.")
    iat = _numeric_date(claims, "iat", True)
    exp = _numeric_date(claims, "exp", True)
    nbf = _numeric_date(claims, "nbf", False)
    assert iat is not None and exp is not None  # required above
    if iss != issuer:
        raise TokenIssuerError()
    if exp <= now - leeway:
        raise TokenExpiredError()
    if iat > now + leeway or (nbf is not None and nbf > now + leeway):
        raise TokenNotYetValidError()
    if exp <= iat:
        raise TokenClaimsError("The token expires before it was issued.")
    if max_lifetime is not None and exp - iat > max_lifetime:
        raise TokenClaimsError(f"The token lives longer than {max_lifetime:g} seconds.")
    jti = claims.get("jti")
    if jti is not None and not isinstance(jti, str):
        raise TokenClaimsError("The token's 'jti' claim is not a string.")


def sign_jws(
    claims: Mapping[str, Any],
    signing_key: SigningKey,
    *,
    typ: str,
    include_kid: bool = True,
) -> str:
    """Sign ``claims`` with PyJWT (ES256). Claims are compact UTF-8 JSON (no ``\\u`` escapes)."""
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers: dict[str, Any] = {"typ": typ}
    if include_kid:
        headers["kid"] = signing_key.kid
    try:
        return _JWS.encode(
            payload, signing_key.private_key, algorithm=signing_key.alg, headers=headers
        )
    except PyJWTError as exc:  # never expected with our own keys
        raise KeyStoreError("The token could not be signed.") from exc
