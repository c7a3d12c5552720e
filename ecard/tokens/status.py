"""IETF Token Status List (draft-ietf-oauth-status-list): 2 bits per card, and its signed token.

The list is a byte array; status ``i`` lives in byte ``i * bits // 8`` starting at bit
``(i * bits) % 8`` counted from the least significant bit (the draft's figure: statuses
1, 2, 0, 3 give the byte ``0xC9``). The bytes are ZLIB-compressed (RFC 1950, level 9) and
base64url-encoded as ``lst``: ``{"bits": 2, "lst": "..."}``.

The Status List Token is a JWS with ``typ`` ``statuslist+jwt`` and claims ``iss``, ``sub`` (the
list's URI: the ``uri`` in every card that points at it), ``iat``, ``exp``, ``ttl`` (seconds a
relying party may cache it) and ``status_list``.

``exp`` bounds how long a relying party that can no longer reach us may go on trusting a copy,
so it bounds how long a suspension can stay unseen offline: ``exp - iat`` is at most
:data:`MAX_LIST_LIFETIME` (1 hour, the default), and ``ttl`` is at most ``exp - iat``. An offline
verifier (:class:`ecard.tokens.verifier.OfflineVerifier`) refetches after ``ttl`` and refuses
a copy past ``exp`` (plus its clock leeway), so a suspension reaches it within ``ttl`` while
the issuer is reachable and within ``exp - iat`` + leeway (1 h 30 s by default) when it is not.

A card's status: 0 ``valid``, 1 ``invalid`` (revoked, final), 2 ``suspended`` (reported lost;
reversible). Expiry is judged from the card's ``exp``, never from the list.
"""

from __future__ import annotations

import base64
import binascii
import enum
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ecard.errors import StatusListError, TokenClaimsError, TokenMalformedError
from ecard.tokens.jws import Clock, b64url_decode, epoch, sign_jws, verify_jws
from ecard.tokens.keys import KeySet, KeyStore

STATUS_LIST_TYP = "statuslist+jwt"
#: Largest decompressed list we accept from anyone: 16 MiB (64 million 2-bit statuses).
MAX_LIST_BYTES = 16 * 1024 * 1024
#: Seconds a relying party may keep a status list before fetching it again (``ttl``).
DEFAULT_TTL = 300
#: Seconds from ``iat`` to ``exp`` of a Status List Token by default, and at most.
DEFAULT_LIST_LIFETIME = 3600
MAX_LIST_LIFETIME = 3600


class CardStatus(enum.IntEnum):
    VALID = 0
    INVALID = 1
    SUSPENDED = 2
    APPLICATION_SPECIFIC = 3

    @property
    def label(self) -> str:
        """``valid`` / ``invalid`` / ``suspended`` / ``application_specific`` (API strings)."""
        return self.name.lower()


class StatusList:
    """A status list of ``size`` entries of ``bits`` bits (1, 2, 4 or 8), all 0 at start.

    Mutable through :meth:`set` only; :meth:`encode` gives the draft's JSON form and
    :meth:`decode` reads it back (bounded, strict).
    """

    __slots__ = ("_bytes", "bits", "size")

    def __init__(self, size: int, bits: int = 2, data: bytes | None = None) -> None:
        if bits not in (1, 2, 4, 8):
            raise ValueError("bits must be 1, 2, 4 or 8")
        if size < 0:
            raise ValueError("size must be >= 0")
        nbytes = (size * bits + 7) // 8
        if data is not None and len(data) != nbytes:
            raise ValueError("data does not match size and bits")
        self.size = size
        self.bits = bits
        self._bytes = bytearray(data if data is not None else nbytes)

    @classmethod
    def from_statuses(
        cls, statuses: Mapping[int, int] | Iterable[int], *, size: int | None = None, bits: int = 2
    ) -> StatusList:
        """Build a list from ``{idx: status}`` or a sequence; ``size`` pads (herd privacy)."""
        items = (
            list(statuses.items()) if isinstance(statuses, Mapping) else list(enumerate(statuses))
        )
        needed = max((i for i, _ in items), default=-1) + 1
        out = cls(max(size or 0, needed), bits)
        for idx, status in items:
            out.set(idx, status)
        return out

    def _check(self, idx: int) -> None:
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < self.size:
            raise StatusListError(f"Index {idx!r} is outside the status list (size {self.size}).")

    def get(self, idx: int) -> int:
        """The status at ``idx`` (an int; wrap in :class:`CardStatus` for the names)."""
        self._check(idx)
        bit = idx * self.bits
        return (self._bytes[bit // 8] >> (bit % 8)) & ((1 << self.bits) - 1)

    def status(self, idx: int) -> CardStatus:
        value = self.get(idx)
        return CardStatus(value) if value <= 3 else CardStatus.APPLICATION_SPECIFIC

    def set(self, idx: int, status: int) -> None:
        self._check(idx)
        mask = (1 << self.bits) - 1
        if not 0 <= int(status) <= mask:
            raise ValueError(f"status must fit in {self.bits} bits")
        bit = idx * self.bits
        byte, shift = bit // 8, bit % 8
        self._bytes[byte] = (self._bytes[byte] & ~(mask << shift) & 0xFF) | (int(status) << shift)

    def to_bytes(self) -> bytes:
        return bytes(self._bytes)

    def encode(self) -> dict[str, Any]:
        """The draft's JSON Status List: ``{"bits": n, "lst": base64url(zlib(bytes))}``."""
        lst = base64.urlsafe_b64encode(zlib.compress(bytes(self._bytes), 9)).rstrip(b"=")
        return {"bits": self.bits, "lst": lst.decode("ascii")}

    @classmethod
    def decode(cls, obj: Mapping[str, Any]) -> StatusList:
        """Read a JSON Status List. ``size`` is the number of whole entries in the bytes."""
        if not isinstance(obj, Mapping):
            raise StatusListError("The status list is not an object.")
        bits, lst = obj.get("bits"), obj.get("lst")
        if isinstance(bits, bool) or bits not in (1, 2, 4, 8) or not isinstance(lst, str):
            raise StatusListError("The status list needs 'bits' (1, 2, 4, 8) and 'lst'.")
        try:
            compressed = b64url_decode(lst, "status list")
            z = zlib.decompressobj()
            raw = z.decompress(compressed, MAX_LIST_BYTES)
        except (zlib.error, binascii.Error, ValueError, TokenMalformedError):
            raise StatusListError("The status list 'lst' is not valid.") from None
        if z.unconsumed_tail or not z.eof:
            raise StatusListError("The status list is too large or truncated.")
        return cls(len(raw) * 8 // bits, bits, raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StatusList) and (self.bits, self.size, self._bytes) == (
            other.bits,
            other.size,
            other._bytes,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StatusList(size={self.size}, bits={self.bits})"


@dataclass(frozen=True)
class VerifiedStatusList:
    uri: str
    issued_at: int
    expires_at: int | None
    ttl: int | None
    statuses: StatusList


def issue_status_list_token(
    keystore: KeyStore,
    status_list: StatusList,
    *,
    uri: str,
    issuer: str,
    now: Clock = None,
    ttl: int = DEFAULT_TTL,
    lifetime: int = DEFAULT_LIST_LIFETIME,
) -> str:
    """Sign the Status List Token served at ``uri`` (``typ`` ``statuslist+jwt``).

    ``ttl`` (seconds a relying party may cache the list) and ``lifetime`` (``exp - iat``, in
    seconds) must satisfy ``1 <= ttl <= lifetime <= MAX_LIST_LIFETIME`` (1 hour): ``lifetime``
    is the longest a verifier that cannot reach us keeps trusting this list, i.e. the longest
    a suspension stays unseen offline. Raises :class:`ValueError` otherwise.
    """
    if isinstance(ttl, bool) or isinstance(lifetime, bool):
        raise ValueError("ttl and lifetime are whole seconds")
    if not 1 <= lifetime <= MAX_LIST_LIFETIME:
        raise ValueError(f"lifetime must be 1..{MAX_LIST_LIFETIME} seconds, not {lifetime}")
    if not 1 <= ttl <= lifetime:
        raise ValueError(f"ttl must be 1..lifetime ({lifetime}) seconds, not {ttl}")
    iat = int(epoch(now))
    body = {
        "iss": issuer,
        "sub": uri,
        "iat": iat,
        "exp": iat + lifetime,
        "ttl": ttl,
        "status_list": status_list.encode(),
    }
    return sign_jws(body, keystore.signing_key(), typ=STATUS_LIST_TYP)


def verify_status_list_token(
    token: object,
    keys: KeyStore | KeySet | Mapping[str, Any],
    *,
    uri: str,
    issuer: str,
    now: Clock = None,
    leeway: float = 30.0,
) -> VerifiedStatusList:
    """Verify a Status List Token: our key, ``typ``, ``iss``, times, and ``sub`` == ``uri``."""
    verified = verify_jws(token, keys, typ=STATUS_LIST_TYP, issuer=issuer, now=now, leeway=leeway)
    c = verified.claims
    if c.get("sub") != uri:
        raise TokenClaimsError("The status list token is for another URI.")
    ttl = c.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0):
        raise TokenClaimsError("The status list token's 'ttl' is not a whole number.")
    exp = c.get("exp")
    return VerifiedStatusList(
        uri=uri,
        issued_at=int(c["iat"]),
        expires_at=int(exp) if exp is not None else None,
        ttl=ttl,
        statuses=StatusList.decode(c.get("status_list")),  # type: ignore[arg-type]
    )
