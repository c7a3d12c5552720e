"""OfflineVerifier: what an integrator needs to verify e-cards without calling ecard per card.

It keeps a copy of the issuer's JWKS and of each status list it has seen:

- the JWKS is fetched on first use, refreshed after ``jwks_max_age`` seconds, and re-fetched
  once when a card names an unknown ``kid`` (a key rotation) — but never more often than every
  ``min_refetch_interval`` seconds, so a flood of forged kids cannot turn it into a DoS on the
  issuer;
- a status list token is fetched from the card's ``status.status_list.uri`` and kept for its
  ``ttl`` (bounded by ``status_max_age``); it is verified with the same JWKS (``typ``
  ``statuslist+jwt``, ``iss``, ``sub`` == the uri). After ``ttl`` it is fetched again. When
  that refresh fails, the old copy is still used — with ``status_stale`` set on the result —
  but only until its ``exp`` (and never longer than ``status_max_lifetime`` after its ``iat``,
  whatever ``exp`` says), plus ``leeway``; after that the card's status cannot be told and
  :meth:`OfflineVerifier.verify` raises ``status_list_expired``
  (:class:`~ecard.errors.StatusListExpiredError`). A suspension therefore reaches this
  verifier within ``ttl`` while the issuer answers, and within ``exp - iat`` + ``leeway``
  (1 h 30 s with our issuer's defaults) when it does not.

Network is a parameter: ``fetch(url) -> bytes`` (default: urllib, 5 s timeout, 1 MiB cap) so
tests and air-gapped deployments pass their own. Time is a parameter too (``clock``).

    verifier = OfflineVerifier("https://ecard.example/.well-known/jwks.json",
                               issuer="https://ecard.example")
    result = verifier.verify(card_token)       # raises TokenError subclasses on a bad card
    result.valid, result.status.label, result.claims.name, result.status_age, result.jwks_age
    result.status_stale    # True: the list is past its ttl and could not be refreshed
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecard.errors import (
    FetchError,
    StatusListError,
    StatusListExpiredError,
    TokenExpiredError,
    TokenMalformedError,
    TokenUnknownKeyError,
)
from ecard.tokens.cards import DEFAULT_LEEWAY, CardClaims, VerifiedCard, verify_card
from ecard.tokens.jws import parse_header
from ecard.tokens.keys import KeySet
from ecard.tokens.status import (
    MAX_LIST_LIFETIME,
    CardStatus,
    VerifiedStatusList,
    verify_status_list_token,
)

Fetch = Callable[[str], bytes]
#: Largest JWKS or status list response accepted, in bytes.
MAX_FETCH_BYTES = 1024 * 1024


def urllib_fetch(url: str, *, timeout: float = 5.0) -> bytes:
    """GET ``url`` (http or https only) and return at most :data:`MAX_FETCH_BYTES` bytes."""
    if not url.startswith(("https://", "http://")):
        raise FetchError("Only http(s) URLs can be fetched.")
    req = urllib.request.Request(
        url, headers={"Accept": "application/statuslist+jwt, application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read(MAX_FETCH_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FetchError(f"Could not fetch {url}.") from exc
    if len(body) > MAX_FETCH_BYTES:
        raise FetchError(f"The response from {url} is too large.")
    return bytes(body)


@dataclass(frozen=True)
class OfflineResult:
    """A verified card and what our cached copies say about it.

    ``status`` is None when ``check_status=False``. Ages are seconds since the copy was
    fetched; ``status_age`` is None without a status. ``status_stale`` is True when the status
    comes from a copy past its ``ttl`` that could not be refreshed (still within its ``exp``):
    a suspension made since may not show yet; tell the person checking the card.
    """

    card: VerifiedCard
    status: CardStatus | None
    status_age: float | None
    jwks_age: float
    status_stale: bool = False

    @property
    def claims(self) -> CardClaims:
        """The holder's card claims (card number, name, masked ID number, status reference)."""
        return self.card.card

    @property
    def valid(self) -> bool:
        """True when the card verified and its status (if checked) is ``valid``."""
        return self.status in (None, CardStatus.VALID)

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "status": self.status.label if self.status is not None else None,
            "status_age": None if self.status_age is None else round(self.status_age, 1),
            "status_stale": self.status_stale,
            "jwks_age": round(self.jwks_age, 1),
            "kid": self.card.kid,
            "claims": self.card.to_dict(),
        }


@dataclass
class _StatusCopy:
    verified: VerifiedStatusList
    fetched_at: float


class OfflineVerifier:
    """Verify e-cards against a cached JWKS and cached status lists. Thread-safe."""

    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str,
        fetch: Fetch = urllib_fetch,
        status_fetch: Fetch | None = None,
        clock: Callable[[], float] = time.time,
        leeway: float = DEFAULT_LEEWAY,
        min_refetch_interval: float = 60.0,
        jwks_max_age: float = 24 * 3600.0,
        status_max_age: float = 3600.0,
        status_max_lifetime: float = float(MAX_LIST_LIFETIME),
    ) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self._fetch = fetch
        self._status_fetch = status_fetch or fetch
        self._clock = clock
        self.leeway = leeway
        self.min_refetch_interval = min_refetch_interval
        self.jwks_max_age = jwks_max_age
        self.status_max_age = status_max_age
        #: a status list copy is never trusted longer than this after its ``iat`` (seconds),
        #: even when its ``exp`` is later: the bound holds against an issuer signing long lists
        self.status_max_lifetime = status_max_lifetime
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._jwks_fetched_at: float | None = None
        self._statuses: dict[str, _StatusCopy] = {}

    # --- JWKS ---------------------------------------------------------------------------------

    def _load_jwks(self) -> KeySet:
        raw = self._fetch(self.jwks_url)
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested thousands of levels deep
            raise TokenMalformedError("The JWKS is not JSON.") from None
        keys = KeySet.from_jwks(doc)
        self._keys, self._jwks_fetched_at = keys, self._clock()
        return keys

    def keys(self, *, refresh: bool = False) -> KeySet:
        """The cached key set, fetched when missing, too old, or on ``refresh`` (rate-limited)."""
        with self._lock:
            now = self._clock()
            age = None if self._jwks_fetched_at is None else now - self._jwks_fetched_at
            if self._keys is None:
                return self._load_jwks()
            assert age is not None
            stale = age > self.jwks_max_age
            if (refresh or stale) and age >= self.min_refetch_interval:
                try:
                    return self._load_jwks()
                except FetchError:
                    if not refresh and age <= 2 * self.jwks_max_age:
                        return self._keys  # keep serving a slightly stale copy
                    raise
            return self._keys

    @property
    def jwks_age(self) -> float | None:
        """Seconds since the JWKS copy was fetched (None before the first fetch)."""
        fetched = self._jwks_fetched_at
        return None if fetched is None else self._clock() - fetched

    # --- status lists -------------------------------------------------------------------------

    def status_of(self, card: VerifiedCard) -> tuple[CardStatus, float]:
        """The card's status from the (cached) status list, and the copy's age in seconds."""
        status, age, _ = self._status_of(card)
        return status, age

    def _status_of(self, card: VerifiedCard) -> tuple[CardStatus, float, bool]:
        """Status, the copy's age in seconds, and whether the copy is stale (past its ttl)."""
        uri = card.card.status_uri
        now = self._clock()
        copy = self._statuses.get(uri)
        stale = False
        if copy is None or now - copy.fetched_at > self._status_fresh_for(copy):
            try:
                copy = self._load_status(uri)
            except (FetchError, StatusListError, TokenMalformedError) as exc:
                if copy is None:
                    raise
                if now >= self._usable_until(copy):
                    raise StatusListExpiredError(
                        "The status list expired and a fresh one could not be fetched "
                        f"({exc.code}); the card's status cannot be told."
                    ) from exc
                stale = True
        assert copy is not None
        status = copy.verified.statuses.status(card.card.status_idx)
        return status, now - copy.fetched_at, stale

    def _status_fresh_for(self, copy: _StatusCopy) -> float:
        """Seconds a copy is used without refetching: its ``ttl`` (bounded), and never past
        the moment it stops being usable."""
        ttl = copy.verified.ttl
        fresh = min(self.status_max_age, float(ttl)) if ttl is not None else self.status_max_age
        return min(fresh, self._usable_until(copy) - copy.fetched_at)

    def _usable_until(self, copy: _StatusCopy) -> float:
        """The time after which a copy is refused: ``exp`` (capped at ``iat`` +
        ``status_max_lifetime``) plus the clock leeway, as for every token."""
        v = copy.verified
        cap = v.issued_at + self.status_max_lifetime
        exp = cap if v.expires_at is None else min(float(v.expires_at), cap)
        return exp + self.leeway

    def _load_status(self, uri: str) -> _StatusCopy:
        token = self._status_fetch(uri).decode("ascii", "replace").strip()
        keys = self.keys()
        now = self._clock()
        try:
            verified = verify_status_list_token(
                token, keys, uri=uri, issuer=self.issuer, now=now, leeway=self.leeway
            )
        except TokenExpiredError:
            raise StatusListExpiredError(
                "The issuer served a status list that has already expired."
            ) from None
        copy = _StatusCopy(verified=verified, fetched_at=now)
        if now >= self._usable_until(copy):  # an exp within leeway but past our own cap
            raise StatusListExpiredError("The issuer served a status list that is too old.")
        with self._lock:
            self._statuses[uri] = copy
        return copy

    def status_age(self, uri: str) -> float | None:
        copy = self._statuses.get(uri)
        return None if copy is None else self._clock() - copy.fetched_at

    # --- cards --------------------------------------------------------------------------------

    def verify(self, token: str, *, check_status: bool = True) -> OfflineResult:
        """Verify ``token`` as an e-card of ``issuer``; with ``check_status`` read its status.

        An unknown ``kid`` triggers one JWKS re-fetch (at most every ``min_refetch_interval``
        seconds); a kid still unknown after it is refused (``token_unknown_key``).
        """
        keys = self.keys()
        header = parse_header(token)
        kid = header.get("kid")
        if isinstance(kid, str) and keys.get(kid) is None:
            try:
                keys = self.keys(refresh=True)
            except FetchError:
                raise TokenUnknownKeyError() from None
            if keys.get(kid) is None:
                raise TokenUnknownKeyError()
        card = verify_card(token, keys, issuer=self.issuer, now=self._clock(), leeway=self.leeway)
        status: CardStatus | None = None
        status_age: float | None = None
        stale = False
        if check_status:
            status, status_age, stale = self._status_of(card)
        return OfflineResult(
            card=card,
            status=status,
            status_age=status_age,
            jwks_age=self.jwks_age or 0.0,
            status_stale=stale,
        )
