"""Fixtures for the token tests: a real KeyStore in a temporary instance folder, a fixed clock,
an attacker's own P-256 key, and a forger that builds tokens byte by byte."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from ecard.tokens.cards import CardClaims, issue_card
from ecard.tokens.keys import KeyStore

ISSUER = "https://ecard.example.gov.cn"
NOW = 1_800_000_000  # a fixed "now" (2027-01-15) so every time check is exact
STATUS_URI = f"{ISSUER}/api/v1/status-lists/1"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64json(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def es256_sign(private_key: ec.EllipticCurvePrivateKey, signing_input: str) -> str:
    return b64(ECAlgorithm(ECAlgorithm.SHA256).sign(signing_input.encode("ascii"), private_key))


@dataclass
class Forge:
    """Build tokens from raw header/payload text, signed with any key (or none)."""

    keystore: KeyStore

    @property
    def kid(self) -> str:
        return self.keystore.signing_key().kid

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        return self.keystore.signing_key().private_key

    def raw(self, header: str, payload: str, key: ec.EllipticCurvePrivateKey | None = None) -> str:
        """``header`` and ``payload`` are JSON text (so duplicates can be written)."""
        signing_input = f"{b64(header.encode())}.{b64(payload.encode())}"
        return f"{signing_input}.{es256_sign(key or self.key, signing_input)}"

    def token(
        self,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> str:
        h = {"alg": "ES256", "kid": self.kid, "typ": "ecard+jwt"} if header is None else header
        c = card_claims() if claims is None else claims
        signing_input = f"{b64json(h)}.{b64json(c)}"
        return f"{signing_input}.{es256_sign(key or self.key, signing_input)}"


def card_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "c_7Yw2kQ9x",
        "card_no": "E310100123456",
        "name": "张三",
        "id_number_masked": "3101**********1234",
        "status": {"status_list": {"idx": 3, "uri": STATUS_URI}},
        "iat": NOW - 10,
        "exp": NOW + 3600,
        "jti": "j_0123456789",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def keystore(instance: Path) -> KeyStore:
    return KeyStore.open(instance)


@pytest.fixture
def forge(keystore: KeyStore) -> Forge:
    return Forge(keystore)


@pytest.fixture(scope="session")
def attacker_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def claims() -> CardClaims:
    return CardClaims(
        card_id="c_7Yw2kQ9x",
        card_no="E310100123456",
        name="张三",
        id_number_masked="3101**********1234",
        status_idx=3,
        status_uri=STATUS_URI,
    )


@pytest.fixture
def card(keystore: KeyStore, claims: CardClaims) -> str:
    return issue_card(keystore, claims, issuer=ISSUER, now=NOW)


IssueFn = Callable[..., str]
