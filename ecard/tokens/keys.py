"""Signing keys: P-256 key pairs in the instance folder, rotation, and the published JWKS.

Layout under ``<instance>/keys/`` (folder mode 0700):

- ``<kid>.pem`` — one PKCS#8 private key per key that may still sign or verify, mode 0600,
  created with ``O_EXCL`` so it is never world-readable, not even for a moment. Deleted when
  the key is retired.
- ``index.json`` — the key states: ``active`` (signs; exactly one), ``verify-only`` (an older
  key whose cards still verify), ``retired`` (refused). Each entry keeps its public JWK and the
  times of each transition. Written atomically (temp file + rename) under an ``flock``.

``kid`` is the RFC 7638 JWK thumbprint: base64url(SHA-256 of the canonical public JWK).

Private key material is never logged, printed or put into an exception message.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from jwt.exceptions import InvalidKeyError

from ecard.errors import KeyActiveError, KeyNotFoundError, KeyStoreError, TokenMalformedError

#: The only signing algorithm; pinned to every key (never read from a token header).
ALG = "ES256"
KeyState = Literal["active", "verify-only", "retired"]
KID_RE = re.compile(r"[A-Za-z0-9_-]{43}")

_ES256 = ECAlgorithm(ECAlgorithm.SHA256)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC public JWK: base64url(SHA-256(canonical JSON))."""
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public JWK of a P-256 key, with ``kid`` (thumbprint), ``alg`` and ``use``."""
    jwk = _ES256.to_jwk(public_key, as_dict=True)
    core = {"kty": jwk["kty"], "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]}
    return {**core, "kid": thumbprint(core), "alg": ALG, "use": "sig"}


@dataclass(frozen=True)
class VerifyKey:
    """A public key a verifier trusts, with its algorithm pinned."""

    kid: str
    public_key: ec.EllipticCurvePublicKey = field(repr=False)
    alg: str = ALG

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """PyJWT's ES256 check of a raw (r||s) signature over ``signing_input``."""
        return bool(_ES256.verify(signing_input, self.public_key, signature))


@dataclass(frozen=True)
class SigningKey:
    """The active private key. ``repr`` never shows the key."""

    kid: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    alg: str = ALG


class KeySet:
    """The public keys a verifier trusts, parsed once (no JWKS parsing per verification).

    ``retired`` lists kids known to be retired so their tokens are refused with a clear code.
    Immutable after construction.
    """

    __slots__ = ("_jwks", "_keys", "_retired")

    def __init__(self, keys: Iterable[VerifyKey], retired: Iterable[str] = ()) -> None:
        self._keys: Mapping[str, VerifyKey] = MappingProxyType({k.kid: k for k in keys})
        self._retired = frozenset(retired)
        self._jwks: dict[str, Any] | None = None

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> KeySet:
        """Parse a JWKS (``{"keys": [...]}``): only P-256 ES256 signature keys are accepted.

        Each key's ``kid`` must be its RFC 7638 thumbprint; private members (``d``) are refused.
        Raises :class:`TokenMalformedError` on anything else (a JWKS is untrusted input).
        """
        raw = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(raw, list):
            raise TokenMalformedError("The JWKS has no 'keys' list.")
        keys = []
        for jwk in raw:
            if not isinstance(jwk, Mapping):
                raise TokenMalformedError("A JWKS entry is not an object.")
            if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
                continue  # a key type we do not use: never trusted, never an error
            if jwk.get("alg", ALG) != ALG or jwk.get("use", "sig") != "sig":
                continue
            if "d" in jwk:
                raise TokenMalformedError("The JWKS contains a private key.")
            if not all(isinstance(jwk.get(m), str) for m in ("x", "y", "kid")):
                raise TokenMalformedError("A JWKS entry lacks x, y or kid.")
            if jwk["kid"] != thumbprint(jwk):
                raise TokenMalformedError("A JWKS entry's kid is not its RFC 7638 thumbprint.")
            try:
                public_key = _ES256.from_jwk(dict(jwk))
            except (InvalidKeyError, ValueError, KeyError, TypeError) as exc:
                raise TokenMalformedError("A JWKS entry is not a valid P-256 key.") from exc
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                raise TokenMalformedError("A JWKS entry is not a public key.")
            keys.append(VerifyKey(kid=jwk["kid"], public_key=public_key))
        return cls(keys)

    def get(self, kid: str) -> VerifyKey | None:
        return self._keys.get(kid)

    def is_retired(self, kid: str) -> bool:
        return kid in self._retired

    def keys(self) -> tuple[VerifyKey, ...]:
        return tuple(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[VerifyKey]:
        return iter(self._keys.values())

    def jwks(self) -> dict[str, Any]:
        """The JWKS document of these keys (cached; a fresh copy each call)."""
        if self._jwks is None:
            self._jwks = {"keys": [public_jwk(k.public_key) for k in self._keys.values()]}
        return json.loads(json.dumps(self._jwks))  # callers may not mutate our copy


@dataclass(frozen=True)
class KeyEntry:
    """One key's state as recorded in ``index.json`` (times in Unix seconds)."""

    kid: str
    state: KeyState
    created_at: int
    jwk: Mapping[str, str] = field(repr=False)
    verify_only_since: int | None = None
    retired_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "state": self.state,
            "created_at": self.created_at,
            "verify_only_since": self.verify_only_since,
            "retired_at": self.retired_at,
            "jwk": dict(self.jwk),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KeyEntry:
        state = d["state"]
        if state not in ("active", "verify-only", "retired"):
            raise KeyStoreError("keys/index.json has an unknown key state.")
        return cls(
            kid=str(d["kid"]),
            state=state,
            created_at=int(d["created_at"]),
            jwk=MappingProxyType(dict(d["jwk"])),
            verify_only_since=d.get("verify_only_since"),
            retired_at=d.get("retired_at"),
        )


class KeyStore:
    """P-256 signing keys kept in ``<instance>/keys``: rotation, retirement and the JWKS.

    Cheap constructor; :meth:`load` reads the folder (``ready`` turns True). Several processes
    may share one folder: changes are made under an exclusive ``flock`` and every reader
    re-reads ``index.json`` when its modification time changes, so a rotation in one worker
    (or by ``ecard keys rotate``) is seen by the others without a restart.

    Use :meth:`open` for the common "load, and create the first key on first run".
    """

    def __init__(self, instance: Path | str) -> None:
        self.folder = Path(instance) / "keys"
        self._index_str = str(self.folder / "index.json")
        self.ready = False
        self._lock = threading.Lock()
        self._entries: tuple[KeyEntry, ...] = ()
        self._signing: SigningKey | None = None
        self._key_set = KeySet(())
        self._stamp: tuple[int, int] | None = None

    @classmethod
    def open(cls, instance: Path | str) -> KeyStore:
        """Load the keys of ``instance``, creating the first signing key on first run."""
        store = cls(instance)
        store.load()
        store.ensure_key()
        return store

    # --- reading ----------------------------------------------------------------------------

    @property
    def _index(self) -> Path:
        return self.folder / "index.json"

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._index_str)  # a plain str: this runs on every sign/verify
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def load(self) -> KeyStore:
        """Read ``index.json`` and the active private key. A missing folder is an empty store."""
        with self._lock:
            self._read()
        self.ready = True
        return self

    def _read(self) -> None:
        stamp = self._stat()
        entries: tuple[KeyEntry, ...] = ()
        if stamp is not None:
            try:
                doc = json.loads(self._index.read_text(encoding="utf-8"))
                entries = tuple(KeyEntry.from_dict(d) for d in doc["keys"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise KeyStoreError("keys/index.json cannot be read.") from exc
        signing = None
        active = [e for e in entries if e.state == "active"]
        if len(active) > 1:
            raise KeyStoreError("keys/index.json lists more than one active key.")
        if active:
            signing = SigningKey(kid=active[0].kid, private_key=self._load_private(active[0].kid))
        verifying = [
            VerifyKey(kid=e.kid, public_key=_public_from_jwk(e.jwk))
            for e in entries
            if e.state != "retired"
        ]
        # The active key first: verifiers without a kid (QR tokens) try it first.
        verifying.sort(key=lambda k: 0 if signing is not None and k.kid == signing.kid else 1)
        self._entries = entries
        self._signing = signing
        self._key_set = KeySet(verifying, retired=[e.kid for e in entries if e.state == "retired"])
        self._stamp = stamp

    def _load_private(self, kid: str) -> ec.EllipticCurvePrivateKey:
        path = self.folder / f"{kid}.pem"
        try:
            if path.stat().st_mode & 0o077:  # copied in with a loose umask: close it again
                os.chmod(path, 0o600)
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise KeyStoreError("The active signing key file cannot be read.") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise KeyStoreError("The active signing key is not a P-256 key.")
        if public_jwk(key.public_key())["kid"] != kid:
            raise KeyStoreError("The active signing key file does not match its kid.")
        return key

    def _refresh(self) -> None:
        if not self.ready:
            self.load()
        elif self._stat() != self._stamp:
            with self._lock:
                self._read()

    def entries(self) -> tuple[KeyEntry, ...]:
        """Every key ever made here (active, verify-only, retired), oldest first."""
        self._refresh()
        return self._entries

    def signing_key(self) -> SigningKey:
        """The active key. Raises :class:`KeyStoreError` when there is none (call ensure_key)."""
        self._refresh()
        if self._signing is None:
            raise KeyStoreError("There is no active signing key; run `ecard keys rotate`.")
        return self._signing

    def key_set(self) -> KeySet:
        """Every key that may still verify (active + verify-only), retired kids remembered."""
        self._refresh()
        return self._key_set

    def public_keys(self) -> tuple[VerifyKey, ...]:
        return self.key_set().keys()

    def jwks(self) -> dict[str, Any]:
        """The JWKS to publish at ``/.well-known/jwks.json``: every key that may still verify."""
        return self.key_set().jwks()

    # --- changing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.folder, 0o700)
            fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeyStoreError(f"The key folder {self.folder} cannot be written.") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._lock:
                self._read()  # the truth is on disk: another process may have changed it
                yield
                self._read()
        finally:
            os.close(fd)
        self.ready = True

    def _write_index(self, entries: Iterable[KeyEntry]) -> None:
        doc = {"keys": [e.to_dict() for e in entries]}
        fd, tmp = tempfile.mkstemp(prefix=".index-", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._index)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _new_key(self, now: int) -> KeyEntry:
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = public_jwk(private.public_key())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = self.folder / f"{jwk['kid']}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        return KeyEntry(kid=jwk["kid"], state="active", created_at=now, jwk=MappingProxyType(jwk))

    def ensure_key(self, *, now: float | None = None) -> str:
        """Create the first signing key if there is no active key; returns the active kid."""
        self._refresh()
        if self._signing is not None:
            return self._signing.kid
        with self._exclusive():
            if self._signing is None:
                entry = self._new_key(_now(now))
                self._write_index((*self._entries, entry))
        return self.signing_key().kid

    def rotate(self, *, now: float | None = None) -> str:
        """Make a new active key; the previous one becomes verify-only. Returns the new kid."""
        t = _now(now)
        with self._exclusive():
            entry = self._new_key(t)
            demoted = tuple(
                _replace(e, state="verify-only", verify_only_since=t) if e.state == "active" else e
                for e in self._entries
            )
            self._write_index((*demoted, entry))
        return entry.kid

    def retire(self, kid: str, *, now: float | None = None) -> None:
        """Retire a verify-only key: it leaves the JWKS, its tokens are refused, and its
        private key file is deleted. The active key cannot be retired (rotate first)."""
        t = _now(now)
        with self._exclusive():
            entry = next((e for e in self._entries if e.kid == kid), None)
            if entry is None:
                raise KeyNotFoundError()
            if entry.state == "active":
                raise KeyActiveError()
            if entry.state == "retired":
                return
            self._write_index(
                _replace(e, state="retired", retired_at=t) if e.kid == kid else e
                for e in self._entries
            )
            with contextlib.suppress(FileNotFoundError):
                (self.folder / f"{kid}.pem").unlink()


def _replace(entry: KeyEntry, **changes: Any) -> KeyEntry:
    return replace(entry, **changes)


def _public_from_jwk(jwk: Mapping[str, str]) -> ec.EllipticCurvePublicKey:
    key = _ES256.from_jwk(dict(jwk))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise KeyStoreError("keys/index.json holds a key that is not a public P-256 key.")
    return key


def _now(now: float | None) -> int:
    return int(time.time() if now is None else now)
