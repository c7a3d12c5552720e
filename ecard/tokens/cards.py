"""The e-card: an ES256 compact JWS with ``typ`` ``ecard+jwt`` (see CONTRACT.md, The e-card token).

Header ``{"alg": "ES256", "kid": <RFC 7638 thumbprint>, "typ": "ecard+jwt"}``; claims ``iss``,
``sub`` (the card id, never the ID number), ``iat``, ``exp``, ``jti``, ``card_no``, ``name``,
``id_number_masked`` and ``status: {"status_list": {"idx", "uri"}}`` (IETF Token Status List).
Any JOSE library verifies it with nothing but the published JWKS.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ecard.errors import TokenClaimsError
from ecard.tokens.jws import Clock, epoch, sign_jws, verify_jws
from ecard.tokens.keys import KeySet, KeyStore

CARD_TYP = "ecard+jwt"
#: Default card lifetime: five years, like a physical social security card's validity.
DEFAULT_CARD_LIFETIME = timedelta(days=5 * 365)
#: Default clock leeway when verifying, in seconds (at most 60).
DEFAULT_LEEWAY = 30.0
#: Issuer when nothing is configured: the URL `make serve` listens on.
DEFAULT_ISSUER = "http://127.0.0.1:8000"


def issuer_from_env(env: Mapping[str, str] | None = None) -> str:
    """The ``iss`` of this deployment: ``ECARD_ISSUER``, else ``ECARD_PUBLIC_URL``, else the
    address ``ecard serve`` listens on (``ECARD_BIND``, default :data:`DEFAULT_ISSUER`).
    Issuing and verifying must use the same value.

    A shortcut for ``load_settings(env).card_issuer`` (:mod:`ecard.config` is the one reader
    of the environment); code that already holds a ``Settings`` uses ``card_issuer``.
    """
    from ecard.config import load_settings

    return load_settings(env).card_issuer


@dataclass(frozen=True)
class CardClaims:
    """What an e-card says about its holder. ``card_id`` becomes ``sub``."""

    card_id: str
    card_no: str
    name: str
    id_number_masked: str
    status_idx: int
    status_uri: str

    def __post_init__(self) -> None:
        for name in ("card_id", "card_no", "name", "id_number_masked", "status_uri"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"CardClaims.{name} must be a non-empty string")
        if isinstance(self.status_idx, bool) or not isinstance(self.status_idx, int):
            raise ValueError("CardClaims.status_idx must be an integer")
        if self.status_idx < 0:
            raise ValueError("CardClaims.status_idx must be >= 0")

    def to_claims(self) -> dict[str, Any]:
        return {
            "sub": self.card_id,
            "card_no": self.card_no,
            "name": self.name,
            "id_number_masked": self.id_number_masked,
            "status": {"status_list": {"idx": self.status_idx, "uri": self.status_uri}},
        }

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> CardClaims:
        """Read the card claims of a verified token; wrong shapes are ``token_bad_claims``."""
        status = claims.get("status")
        ref = status.get("status_list") if isinstance(status, Mapping) else None
        if not isinstance(ref, Mapping):
            raise TokenClaimsError("The card has no status list reference.")
        try:
            return cls(
                card_id=claims.get("sub"),  # type: ignore[arg-type]
                card_no=claims.get("card_no"),  # type: ignore[arg-type]
                name=claims.get("name"),  # type: ignore[arg-type]
                id_number_masked=claims.get("id_number_masked"),  # type: ignore[arg-type]
                status_idx=ref.get("idx"),  # type: ignore[arg-type]
                status_uri=ref.get("uri"),  # type: ignore[arg-type]
            )
        except ValueError as exc:
            raise TokenClaimsError(f"The card claims are incomplete: {exc}.") from None


@dataclass(frozen=True)
class VerifiedCard:
    """A verified e-card. ``claims`` is the whole claim set (JSON-able) for API answers."""

    card: CardClaims
    kid: str
    issuer: str
    jti: str
    issued_at: int
    expires_at: int
    claims: Mapping[str, Any] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The claims as a plain dict (what ``POST /api/v1/cards/verify`` answers)."""
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.claims.items()}


def issue_card(
    keystore: KeyStore,
    claims: CardClaims,
    *,
    issuer: str,
    now: Clock = None,
    lifetime: timedelta = DEFAULT_CARD_LIFETIME,
    jti: str | None = None,
) -> str:
    """Sign an e-card with the active key; returns the compact JWS.

    ``jti`` defaults to 128 random bits (base64url). ``lifetime`` must be positive.
    """
    if lifetime.total_seconds() <= 0:
        raise ValueError("lifetime must be positive")
    iat = int(epoch(now))
    body = {
        "iss": issuer,
        **claims.to_claims(),
        "iat": iat,
        "exp": iat + int(lifetime.total_seconds()),
        "jti": jti or secrets.token_urlsafe(16),
    }
    return sign_jws(body, keystore.signing_key(), typ=CARD_TYP)


def verify_card(
    token: object,
    keys: KeyStore | KeySet | Mapping[str, Any],
    *,
    issuer: str,
    now: Clock = None,
    leeway: float = DEFAULT_LEEWAY,
) -> VerifiedCard:
    """Verify an e-card against our keys (a KeyStore, a parsed KeySet, or a JWKS mapping).

    Raises a :class:`~ecard.errors.TokenError` subclass whose ``code`` says why. Status (valid /
    suspended / invalid) is not part of this check: read it from the status list
    (:mod:`ecard.tokens.status`) or use :class:`ecard.tokens.verifier.OfflineVerifier`.
    """
    verified = verify_jws(token, keys, typ=CARD_TYP, issuer=issuer, now=now, leeway=leeway)
    c = verified.claims
    jti = c.get("jti")
    if not isinstance(jti, str) or not jti:
        raise TokenClaimsError("The card has no 'jti' claim.")
    return VerifiedCard(
        card=CardClaims.from_claims(c),
        kid=verified.kid,
        issuer=issuer,
        jti=jti,
        issued_at=int(c["iat"]),
        expires_at=int(c["exp"]),
        claims=c,
    )
