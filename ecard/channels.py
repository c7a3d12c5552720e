"""Channels: API clients (city-service apps, hospital desks) with hashed client credentials.

A hospital is a channel with scope ``scan``. Secrets are 256-bit random strings, so a plain
SHA-256 is enough to store them (no slow hash needed); they are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ecard.errors import AlreadyExistsError, AuthError, ForbiddenError, InputError
from ecard.names import check_label
from ecard.store.models import Channel

if TYPE_CHECKING:
    from ecard.store import Store

Scope = Literal["enroll", "verify", "scan"]
SCOPES: tuple[Scope, ...] = ("enroll", "verify", "scan")


@dataclass(frozen=True)
class ChannelCredentials:
    """What ``ecard channels add`` prints once; the secret is not recoverable afterwards."""

    client_id: str
    client_secret: str


@dataclass(frozen=True)
class ChannelIdentity:
    """An authenticated channel."""

    id: int
    client_id: str
    name: str
    scopes: frozenset[str]

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise ForbiddenError(f"This client does not have the '{scope}' scope.")


def parse_scopes(value: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in value.split(",") if s.strip())
    unknown = scopes - set(SCOPES)
    if not scopes or unknown:
        raise InputError(
            f"Scopes must be a comma list of {', '.join(SCOPES)}"
            + (f"; unknown: {', '.join(sorted(unknown))}." if unknown else ".")
        )
    return scopes


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def add_channel(store: Store, name: str, scopes: str) -> ChannelCredentials:
    """Create a channel; returns its credentials (the secret is shown only this once)."""
    clean = check_label(name, what="channel name")
    parsed = parse_scopes(scopes)
    creds = ChannelCredentials("ch_" + secrets.token_hex(8), secrets.token_urlsafe(32))
    try:
        with store.write() as s:
            s.add(
                Channel(
                    client_id=creds.client_id,
                    name=clean,
                    secret_hash=_hash_secret(creds.client_secret),
                    scopes=",".join(sorted(parsed)),
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError:
        raise AlreadyExistsError(f"A channel named {clean!r} already exists.") from None
    return creds


def set_channel_secret(store: Store, name: str, scopes: str, secret: str) -> ChannelCredentials:
    """Create or update the named channel with a given secret (demo instances; idempotent)."""
    parsed = ",".join(sorted(parse_scopes(scopes)))
    with store.write() as s:
        row = s.scalars(select(Channel).where(Channel.name == name)).first()
        if row is None:
            row = Channel(
                client_id="ch_" + secrets.token_hex(8),
                name=name,
                secret_hash=_hash_secret(secret),
                scopes=parsed,
                created_at=datetime.now(UTC),
            )
            s.add(row)
        else:
            row.secret_hash = _hash_secret(secret)
            row.scopes = parsed
        s.flush()
        return ChannelCredentials(row.client_id, secret)


class AuthCache:
    """Recently verified credentials, kept ``ttl_s`` seconds in this process (hot API paths).

    Keyed by SHA-256 of ``client_id:secret``, so the cache holds no secret; a channel whose
    scopes change is seen with the new scopes after at most ``ttl_s`` seconds.
    """

    def __init__(self, ttl_s: float = 10.0, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, ChannelIdentity]] = {}

    @staticmethod
    def key(client_id: str, client_secret: str) -> str:
        return hashlib.sha256(f"{client_id}:{client_secret}".encode()).hexdigest()

    def get(self, key: str) -> ChannelIdentity | None:
        with self._lock:
            hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, ident: ChannelIdentity) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl_s, ident)


def authenticate(
    store: Store, client_id: str, client_secret: str, *, cache: AuthCache | None = None
) -> ChannelIdentity:
    """The channel whose credentials these are, or :class:`AuthError` (same answer for both).

    With ``cache``, a credential verified in the last few seconds is not looked up again.
    """
    key = AuthCache.key(client_id, client_secret) if cache is not None else ""
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    ident = _authenticate(store, client_id, client_secret)
    if cache is not None:
        cache.put(key, ident)
    return ident


def _authenticate(store: Store, client_id: str, client_secret: str) -> ChannelIdentity:
    with store.read() as s:
        row = s.scalars(select(Channel).where(Channel.client_id == client_id)).first()
    expected = row.secret_hash if row is not None else "0" * 64
    ok = hmac.compare_digest(_hash_secret(client_secret), expected)
    if row is None or not ok:
        raise AuthError("Unknown client or wrong secret.")
    return ChannelIdentity(row.id, row.client_id, row.name, frozenset(row.scopes.split(",")))
