"""Keys (files, modes, RFC 7638 kids, rotation, retirement) and the e-card round trip,
including interoperability: jwcrypto verifies our card given nothing but our JWKS."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jwcrypto import jwk as jc_jwk
from jwcrypto import jwt as jc_jwt

from ecard.errors import KeyActiveError, KeyNotFoundError, KeyStoreError, TokenError
from ecard.tokens.cards import CardClaims, issue_card, issuer_from_env, verify_card
from ecard.tokens.jws import parse_header
from ecard.tokens.keys import KeySet, KeyStore, thumbprint

from .conftest import ISSUER, NOW


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_creates_one_private_key_readable_only_by_us(instance: Path) -> None:
    store = KeyStore(instance)
    assert not store.ready
    kid = KeyStore.open(instance).signing_key().kid
    pems = list((instance / "keys").glob("*.pem"))
    assert [p.name for p in pems] == [f"{kid}.pem"]
    assert mode(pems[0]) == 0o600
    assert mode(instance / "keys") == 0o700
    assert b"PRIVATE KEY" in pems[0].read_bytes()
    # the index holds public material only
    index = (instance / "keys" / "index.json").read_text()
    assert "PRIVATE" not in index and '"d"' not in index


def test_open_twice_keeps_the_same_key(instance: Path) -> None:
    assert KeyStore.open(instance).signing_key().kid == KeyStore.open(instance).signing_key().kid


def test_kid_is_the_rfc7638_thumbprint(keystore: KeyStore) -> None:
    (jwk,) = keystore.jwks()["keys"]
    assert jwk["kid"] == jc_jwk.JWK(**jwk).thumbprint()
    assert jwk["alg"] == "ES256" and jwk["crv"] == "P-256" and "d" not in jwk


def test_repr_never_shows_the_private_key(keystore: KeyStore) -> None:
    assert "PRIVATE" not in repr(keystore.signing_key())
    assert "private_key" not in repr(keystore.signing_key())


def test_card_round_trip(keystore: KeyStore, claims: CardClaims, card: str) -> None:
    header = parse_header(card)
    assert header == {"alg": "ES256", "kid": keystore.signing_key().kid, "typ": "ecard+jwt"}
    verified = verify_card(card, keystore, issuer=ISSUER, now=NOW + 100)
    assert verified.card == claims
    assert verified.expires_at - verified.issued_at == 5 * 365 * 86400
    body = verified.to_dict()
    assert body["status"] == {"status_list": {"idx": 3, "uri": claims.status_uri}}
    assert body["sub"] == "c_7Yw2kQ9x" and len(body["jti"]) >= 22
    json.dumps(body)  # JSON-able for the API


def test_card_lifetime_and_datetime_clock(keystore: KeyStore, claims: CardClaims) -> None:
    issued = datetime(2027, 1, 1, tzinfo=UTC)
    token = issue_card(keystore, claims, issuer=ISSUER, now=issued, lifetime=timedelta(days=1))
    verify_card(token, keystore, issuer=ISSUER, now=issued + timedelta(hours=23))
    with pytest.raises(TokenError) as exc:
        verify_card(token, keystore, issuer=ISSUER, now=issued + timedelta(days=1, minutes=1))
    assert exc.value.code == "token_expired"
    # within the leeway (30 s default) it still verifies
    verify_card(token, keystore, issuer=ISSUER, now=issued + timedelta(days=1, seconds=20))


def test_interop_jwcrypto_verifies_our_card_with_only_the_jwks(
    keystore: KeyStore, card: str
) -> None:
    jwks = jc_jwk.JWKSet.from_json(json.dumps(keystore.jwks()))
    token = jc_jwt.JWT(jwt=card, key=jwks, algs=["ES256"], check_claims=False, expected_type="JWS")
    claims = json.loads(token.claims)
    assert claims["iss"] == ISSUER and claims["name"] == "张三"
    assert json.loads(token.header)["kid"] == keystore.signing_key().kid


def test_interop_jwcrypto_checks_our_claims_now(keystore: KeyStore, claims: CardClaims) -> None:
    """A card issued now passes jwcrypto's own claim checks (exp, iat, nbf, iss)."""
    token = issue_card(keystore, claims, issuer=ISSUER)  # wall clock
    jwks = jc_jwk.JWKSet.from_json(json.dumps(keystore.jwks()))
    checked = jc_jwt.JWT(
        jwt=token, key=jwks, algs=["ES256"], check_claims={"iss": ISSUER, "exp": None}
    )
    assert json.loads(checked.claims)["sub"] == claims.card_id


def test_interop_jwcrypto_rejects_a_tampered_card(keystore: KeyStore, card: str) -> None:
    from jwcrypto.jws import InvalidJWSSignature

    head, body, sig = card.split(".")
    tampered = f"{head}.{body[:-4]}AAAA.{sig}"
    key = jc_jwk.JWK(**keystore.jwks()["keys"][0])
    with pytest.raises(InvalidJWSSignature):
        jc_jwt.JWT(jwt=tampered, key=key, algs=["ES256"], check_claims=False)


def test_rotation_old_cards_verify_until_retired(keystore: KeyStore, claims: CardClaims) -> None:
    old_kid = keystore.signing_key().kid
    old_card = issue_card(keystore, claims, issuer=ISSUER, now=NOW)
    new_kid = keystore.rotate(now=NOW)
    assert new_kid != old_kid and keystore.signing_key().kid == new_kid
    new_card = issue_card(keystore, claims, issuer=ISSUER, now=NOW)
    assert parse_header(new_card)["kid"] == new_kid
    assert {k["kid"] for k in keystore.jwks()["keys"]} == {old_kid, new_kid}
    for token in (old_card, new_card):
        verify_card(token, keystore, issuer=ISSUER, now=NOW)
        verify_card(token, keystore.jwks(), issuer=ISSUER, now=NOW)
    states = {e.kid: e.state for e in keystore.entries()}
    assert states == {old_kid: "verify-only", new_kid: "active"}

    keystore.retire(old_kid, now=NOW)
    assert {k["kid"] for k in keystore.jwks()["keys"]} == {new_kid}
    assert not (keystore.folder / f"{old_kid}.pem").exists()
    with pytest.raises(TokenError) as exc:
        verify_card(old_card, keystore, issuer=ISSUER, now=NOW)
    assert exc.value.code == "token_key_retired"
    verify_card(new_card, keystore, issuer=ISSUER, now=NOW)


def test_active_key_cannot_be_retired(keystore: KeyStore) -> None:
    with pytest.raises(KeyActiveError):
        keystore.retire(keystore.signing_key().kid)
    with pytest.raises(KeyNotFoundError):
        keystore.retire("A" * 43)


def test_a_rotation_elsewhere_is_seen_without_restart(
    instance: Path, keystore: KeyStore, claims: CardClaims
) -> None:
    """Another process (gunicorn worker, `ecard keys rotate`) rotates: we pick it up."""
    other = KeyStore.open(instance)
    new_kid = other.rotate()
    assert keystore.signing_key().kid == new_kid
    card = issue_card(other, claims, issuer=ISSUER, now=NOW)
    verify_card(card, keystore, issuer=ISSUER, now=NOW)


def test_damaged_index_is_a_clear_error(instance: Path, keystore: KeyStore) -> None:
    (instance / "keys" / "index.json").write_text("{not json")
    with pytest.raises(KeyStoreError):
        KeyStore(instance).load()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda k: k.update(kid="A" * 43), "thumbprint"),
        (lambda k: k.update(d="AAAA"), "private"),
        (lambda k: k.update(x="A" * 43) or k.update(kid=thumbprint(k)), "P-256"),
        (lambda k: k.pop("y"), "lacks"),
    ],
)
def test_jwks_parsing_refuses_bad_keys(keystore: KeyStore, mutate, message: str) -> None:
    jwks = keystore.jwks()
    mutate(jwks["keys"][0])
    with pytest.raises(TokenError, match=message):
        KeySet.from_jwks(jwks)


def test_jwks_parsing_skips_foreign_key_types(keystore: KeyStore) -> None:
    jwks = keystore.jwks()
    jwks["keys"].append({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"})
    jwks["keys"].append({**jwks["keys"][0], "alg": "ES384"})
    assert len(KeySet.from_jwks(jwks)) == 1


@pytest.mark.parametrize(
    ("env", "issuer"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"ECARD_PUBLIC_URL": "https://ecard.example/"}, "https://ecard.example"),
        (
            {"ECARD_ISSUER": "https://id.example", "ECARD_PUBLIC_URL": "https://x"},
            "https://id.example",
        ),
    ],
)
def test_issuer_from_env(env: dict[str, str], issuer: str) -> None:
    assert issuer_from_env(env) == issuer


@pytest.mark.parametrize(
    "bad",
    [
        {"card_id": ""},
        {"status_idx": -1},
        {"status_idx": True},
        {"name": None},
    ],
)
def test_card_claims_validate(claims: CardClaims, bad: dict[str, object]) -> None:
    from dataclasses import asdict

    with pytest.raises(ValueError):
        CardClaims(**{**asdict(claims), **bad})  # type: ignore[arg-type]


def test_first_run_races_make_exactly_one_key(instance: Path) -> None:
    """Gunicorn workers starting together on a fresh instance: one key, not one each."""
    import threading

    barrier = threading.Barrier(8)
    kids: list[str] = []

    def start() -> None:
        barrier.wait()
        kids.append(KeyStore.open(instance).signing_key().kid)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(kids)) == 1 and len(kids) == 8
    assert len(list((instance / "keys").glob("*.pem"))) == 1
    assert [e.state for e in KeyStore(instance).load().entries()] == ["active"]


def test_loose_permissions_are_closed_on_load(instance: Path, keystore: KeyStore) -> None:
    pem = instance / "keys" / f"{keystore.signing_key().kid}.pem"
    pem.chmod(0o644)
    KeyStore(instance).load()
    assert mode(pem) == 0o600
