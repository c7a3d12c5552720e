"""The attack table of issue 3: every row is a token an attacker could send; every one is refused
with the stable code that says why. A genuine card passes the same verifier (first test)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from ecard.errors import TokenError
from ecard.tokens.cards import verify_card
from ecard.tokens.jws import MAX_TOKEN_CHARS
from ecard.tokens.keys import KeyStore
from ecard.tokens.qr import MemoryReplayGuard, issue_qr, verify_qr
from ecard.tokens.status import StatusList, issue_status_list_token

from .conftest import ISSUER, NOW, STATUS_URI, Forge, b64, b64json, card_claims, es256_sign

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass
class Ctx:
    forge: Forge
    keystore: KeyStore
    attacker: ec.EllipticCurvePrivateKey

    @property
    def kid(self) -> str:
        return self.forge.kid

    def header(self, **changes: Any) -> dict[str, Any]:
        h: dict[str, Any] = {"alg": "ES256", "kid": self.kid, "typ": "ecard+jwt"}
        h.update(changes)
        return {k: v for k, v in h.items() if v is not None}

    def unsigned(self, header: dict[str, Any], sig: str = "") -> str:
        return f"{b64json(header)}.{b64json(card_claims())}.{sig}"

    def replace_sig(self, raw_sig: bytes) -> str:
        head, body, _ = self.forge.token().split(".")
        return f"{head}.{body}.{b64(raw_sig)}"

    def attacker_jwk(self) -> dict[str, Any]:
        return ECAlgorithm(ECAlgorithm.SHA256).to_jwk(self.attacker.public_key(), as_dict=True)


def _hs256_with_public_key(ctx: Ctx, secret_form: str) -> str:
    """The classic key-confusion attack: HMAC keyed with our *public* key."""
    public = ctx.keystore.signing_key().private_key.public_key()
    if secret_form == "pem":
        secret = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        secret = json.dumps(ctx.keystore.jwks()["keys"][0]).encode()
    signing_input = f"{b64json(ctx.header(alg='HS256'))}.{b64json(card_claims())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _tampered_payload(ctx: Ctx) -> str:
    head, _, sig = ctx.forge.token().split(".")
    return f"{head}.{b64json(card_claims(name='李四'))}.{sig}"


def _tampered_signature(ctx: Ctx) -> str:
    head, body, sig = ctx.forge.token().split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[10] ^= 0x01
    return f"{head}.{body}.{b64(bytes(raw))}"


def _retired(ctx: Ctx) -> str:
    old = ctx.forge.token()
    old_kid = ctx.kid
    ctx.keystore.rotate(now=NOW)
    ctx.keystore.retire(old_kid, now=NOW)
    return old


def _qr_as_card(ctx: Ctx) -> str:
    return issue_qr(ctx.keystore, card_no="E310100123456", issuer=ISSUER, now=NOW).token


def _status_list_as_card(ctx: Ctx) -> str:
    return issue_status_list_token(
        ctx.keystore, StatusList(16), uri=STATUS_URI, issuer=ISSUER, now=NOW
    )


Row = tuple[str, Callable[[Ctx], str], str]

CARD_ATTACKS: list[Row] = [
    # alg none, any spelling, with and without a signature segment
    ("alg none", lambda c: c.unsigned(c.header(alg="none")), "token_bad_algorithm"),
    ("alg None", lambda c: c.unsigned(c.header(alg="None")), "token_bad_algorithm"),
    ("alg NONE", lambda c: c.unsigned(c.header(alg="NONE")), "token_bad_algorithm"),
    ("alg nOnE", lambda c: c.unsigned(c.header(alg="nOnE")), "token_bad_algorithm"),
    (
        "alg none + junk sig",
        lambda c: c.unsigned(c.header(alg="none"), "AAAA"),
        "token_bad_algorithm",
    ),
    ("alg missing", lambda c: c.unsigned(c.header(alg=None), "AAAA"), "token_bad_algorithm"),
    ("alg 'ES256 '", lambda c: c.forge.token(c.header(alg="ES256 ")), "token_bad_algorithm"),
    ("alg ES384 on our key", lambda c: c.forge.token(c.header(alg="ES384")), "token_bad_algorithm"),
    # key confusion
    (
        "HS256 keyed with our public PEM",
        lambda c: _hs256_with_public_key(c, "pem"),
        "token_bad_algorithm",
    ),
    ("HS256 keyed with our JWK", lambda c: _hs256_with_public_key(c, "jwk"), "token_bad_algorithm"),
    # kid games
    (
        "kid path traversal",
        lambda c: c.forge.token(c.header(kid="../../keys/index.json")),
        "token_unknown_key",
    ),
    ("kid /dev/null", lambda c: c.forge.token(c.header(kid="/dev/null")), "token_unknown_key"),
    (
        "kid SQL injection",
        lambda c: c.forge.token(c.header(kid="x' OR '1'='1' --")),
        "token_unknown_key",
    ),
    ("kid not a string", lambda c: c.forge.token(c.header(kid=1)), "token_unknown_key"),
    ("kid missing", lambda c: c.forge.token(c.header(kid=None)), "token_unknown_key"),
    (
        "unknown kid, attacker's key",
        lambda c: c.forge.token(
            c.header(kid=b64(hashlib.sha256(b"evil").digest())), key=c.attacker
        ),
        "token_unknown_key",
    ),
    ("our kid, attacker's key", lambda c: c.forge.token(key=c.attacker), "token_bad_signature"),
    # times and issuer
    (
        "expired",
        lambda c: c.forge.token(claims=card_claims(iat=NOW - 7200, exp=NOW - 61)),
        "token_expired",
    ),
    (
        "not yet valid (iat)",
        lambda c: c.forge.token(claims=card_claims(iat=NOW + 120)),
        "token_not_yet_valid",
    ),
    (
        "not yet valid (nbf)",
        lambda c: c.forge.token(claims=card_claims(nbf=NOW + 120)),
        "token_not_yet_valid",
    ),
    ("exp missing", lambda c: c.forge.token(claims=card_claims(exp=None)), "token_bad_claims"),
    ("iat missing", lambda c: c.forge.token(claims=card_claims(iat=None)), "token_bad_claims"),
    (
        "exp as string",
        lambda c: c.forge.token(claims=card_claims(exp=str(NOW + 3600))),
        "token_bad_claims",
    ),
    ("exp as boolean", lambda c: c.forge.token(claims=card_claims(exp=True)), "token_bad_claims"),
    (
        "wrong iss",
        lambda c: c.forge.token(claims=card_claims(iss="https://evil.example")),
        "token_bad_issuer",
    ),
    ("iss missing", lambda c: c.forge.token(claims=card_claims(iss=None)), "token_bad_claims"),
    (
        "exp as 1e309 (inf)",
        lambda c: c.forge.raw(
            json.dumps(c.header()), json.dumps(card_claims(exp=None))[:-1] + ',"exp":1e309}'
        ),
        "token_bad_claims",
    ),
    (
        "exp as a 400-digit integer",
        lambda c: c.forge.token(claims=card_claims(exp=10**400)),
        "token_bad_claims",
    ),
    # type confusion
    ("typ JWT", lambda c: c.forge.token(c.header(typ="JWT")), "token_wrong_type"),
    ("typ missing", lambda c: c.forge.token(c.header(typ=None)), "token_wrong_type"),
    ("typ upper case", lambda c: c.forge.token(c.header(typ="ECARD+JWT")), "token_wrong_type"),
    ("QR token as e-card", _qr_as_card, "token_wrong_type"),
    ("status list token as e-card", _status_list_as_card, "token_wrong_type"),
    # header parameters we never follow
    (
        "crit header",
        lambda c: c.forge.token(c.header(crit=["exp"], exp=1)),
        "token_forbidden_header",
    ),
    (
        "crit b64 (RFC 7797)",
        lambda c: c.forge.token(c.header(crit=["b64"], b64=False)),
        "token_forbidden_header",
    ),
    (
        "jku elsewhere",
        lambda c: c.forge.token(c.header(jku="https://evil.example/jwks.json")),
        "token_forbidden_header",
    ),
    (
        "x5u elsewhere",
        lambda c: c.forge.token(c.header(x5u="https://evil.example/cert.pem")),
        "token_forbidden_header",
    ),
    (
        "embedded jwk (attacker's key, signed by it)",
        lambda c: c.forge.token(c.header(kid=None, jwk=c.attacker_jwk()), key=c.attacker),
        "token_forbidden_header",
    ),
    ("x5c chain", lambda c: c.forge.token(c.header(x5c=["MIIB"])), "token_forbidden_header"),
    # integrity
    ("tampered payload", _tampered_payload, "token_bad_signature"),
    ("tampered signature", _tampered_signature, "token_bad_signature"),
    (
        "all-zero signature (CVE-2022-21449)",
        lambda c: c.replace_sig(bytes(64)),
        "token_bad_signature",
    ),
    (
        "r = s = curve order",
        lambda c: c.replace_sig(P256_ORDER.to_bytes(32, "big") * 2),
        "token_bad_signature",
    ),
    ("empty signature", lambda c: c.replace_sig(b""), "token_bad_signature"),
    ("DER-length signature", lambda c: c.replace_sig(bytes(72)), "token_bad_signature"),
    # duplicate members: signed by our own key, so only the parser can catch them
    (
        "duplicate claim (exp)",
        lambda c: c.forge.raw(
            json.dumps(c.header()),
            json.dumps(card_claims())[:-1] + f',"exp":{NOW + 10**8}}}',
        ),
        "token_duplicate_member",
    ),
    (
        "duplicate nested claim (idx)",
        lambda c: c.forge.raw(
            json.dumps(c.header()),
            json.dumps(card_claims(status=None))[:-1]
            + f',"status":{{"status_list":{{"idx":3,"idx":0,"uri":"{STATUS_URI}"}}}}}}',
        ),
        "token_duplicate_member",
    ),
    (
        "duplicate header alg",
        lambda c: c.forge.raw(
            f'{{"alg":"none","alg":"ES256","kid":"{c.kid}","typ":"ecard+jwt"}}',
            json.dumps(card_claims()),
        ),
        "token_duplicate_member",
    ),
    (
        "duplicate header kid",
        lambda c: c.forge.raw(
            f'{{"alg":"ES256","kid":"../x","kid":"{c.kid}","typ":"ecard+jwt"}}',
            json.dumps(card_claims()),
        ),
        "token_duplicate_member",
    ),
    # a key we retired
    ("signed by a retired key", _retired, "token_key_retired"),
    # shape
    ("two segments", lambda c: ".".join(c.forge.token().split(".")[:2]), "token_malformed"),
    ("JWE-like five segments", lambda c: c.forge.token() + ".a.b", "token_malformed"),
    ("padding in segment", lambda c: c.forge.token().replace(".", "=.", 1), "token_malformed"),
    ("non-ASCII", lambda c: c.forge.token() + "é", "token_malformed"),
    ("too long", lambda c: "e" * (MAX_TOKEN_CHARS + 1), "token_malformed"),
    (
        "header not JSON",
        lambda c: f"{b64(b'not json')}.{b64json(card_claims())}.AAAA",
        "token_malformed",
    ),
    (
        "header a JSON array",
        lambda c: f"{b64(b'[1]')}.{b64json(card_claims())}.AAAA",
        "token_malformed",
    ),
    (
        "claims with NaN",
        lambda c: c.forge.raw(json.dumps(c.header()), json.dumps(card_claims())[:-1] + ',"x":NaN}'),
        "token_malformed",
    ),
    ("empty string", lambda c: "", "token_malformed"),
]


@pytest.fixture
def ctx(forge: Forge, keystore: KeyStore, attacker_key: ec.EllipticCurvePrivateKey) -> Ctx:
    return Ctx(forge=forge, keystore=keystore, attacker=attacker_key)


def test_the_genuine_card_passes_the_same_verifier(ctx: Ctx) -> None:
    verified = verify_card(ctx.forge.token(), ctx.keystore, issuer=ISSUER, now=NOW)
    assert verified.card.name == "张三"


@pytest.mark.parametrize(
    ("build", "code"), [r[1:] for r in CARD_ATTACKS], ids=[r[0] for r in CARD_ATTACKS]
)
def test_attack_is_refused_as_an_ecard(ctx: Ctx, build: Callable[[Ctx], str], code: str) -> None:
    token = build(ctx)
    with pytest.raises(TokenError) as exc:
        verify_card(token, ctx.keystore, issuer=ISSUER, now=NOW)
    assert exc.value.code == code
    assert exc.value.status in (400, 401)


@pytest.mark.parametrize(
    ("build", "code"),
    [r[1:] for r in CARD_ATTACKS if r[2] != "token_key_retired"],
    ids=[r[0] for r in CARD_ATTACKS if r[2] != "token_key_retired"],
)
def test_attack_is_refused_given_only_the_jwks(
    ctx: Ctx, build: Callable[[Ctx], str], code: str
) -> None:
    """An integrator holding only our JWKS refuses the same tokens with the same codes."""
    token = build(ctx)
    with pytest.raises(TokenError) as exc:
        verify_card(token, ctx.keystore.jwks(), issuer=ISSUER, now=NOW)
    assert exc.value.code == code


def test_retired_key_is_unknown_to_a_jwks_holder(ctx: Ctx) -> None:
    old_kid = ctx.kid
    token = _retired(ctx)
    assert old_kid not in {k["kid"] for k in ctx.keystore.jwks()["keys"]}
    with pytest.raises(TokenError) as exc:
        verify_card(token, ctx.keystore.jwks(), issuer=ISSUER, now=NOW)
    assert exc.value.code == "token_unknown_key"


def test_ecard_presented_as_qr_is_refused(ctx: Ctx, card: str) -> None:
    guard = MemoryReplayGuard()
    with pytest.raises(TokenError) as exc:
        verify_qr(card, ctx.keystore, issuer=ISSUER, replay_guard=guard, now=NOW)
    assert exc.value.code == "token_wrong_type"
    assert len(guard) == 0  # nothing was spent


@pytest.mark.parametrize(
    ("header", "claims", "code"),
    [
        ({"alg": "none", "typ": "ecard-qr+jwt"}, {}, "token_bad_algorithm"),
        (
            {"alg": "ES256", "typ": "ecard-qr+jwt", "kid": "../../etc/passwd"},
            {},
            "token_unknown_key",
        ),
        (
            {"alg": "ES256", "typ": "ecard-qr+jwt", "jku": "https://evil.example"},
            {},
            "token_forbidden_header",
        ),
        (
            {"alg": "ES256", "typ": "ecard-qr+jwt"},
            {"exp": NOW + 3600},
            "token_bad_claims",
        ),  # > 60 s
        ({"alg": "ES256", "typ": "ecard-qr+jwt"}, {"exp": NOW - 30}, "token_expired"),
        (
            {"alg": "ES256", "typ": "ecard-qr+jwt"},
            {"iss": "https://evil.example"},
            "token_bad_issuer",
        ),
        ({"alg": "ES256", "typ": "ecard+jwt"}, {}, "token_wrong_type"),
    ],
)
def test_qr_attacks(ctx: Ctx, header: dict[str, Any], claims: dict[str, Any], code: str) -> None:
    body = {"iss": ISSUER, "sub": "E310100123456", "iat": NOW - 20, "exp": NOW + 40, "jti": "q1"}
    body.update(claims)
    signing_input = f"{b64json(header)}.{b64json(body)}"
    token = f"{signing_input}.{es256_sign(ctx.forge.key, signing_input)}"
    guard = MemoryReplayGuard()
    with pytest.raises(TokenError) as exc:
        verify_qr(token, ctx.keystore, issuer=ISSUER, replay_guard=guard, now=NOW)
    assert exc.value.code == code
    assert len(guard) == 0


def test_qr_signed_by_attacker_without_kid_is_refused(ctx: Ctx) -> None:
    header = {"alg": "ES256", "typ": "ecard-qr+jwt"}
    body = {"iss": ISSUER, "sub": "E310100123456", "iat": NOW, "exp": NOW + 60, "jti": "q2"}
    signing_input = f"{b64json(header)}.{b64json(body)}"
    token = f"{signing_input}.{es256_sign(ctx.attacker, signing_input)}"
    with pytest.raises(TokenError) as exc:
        verify_qr(token, ctx.keystore, issuer=ISSUER, replay_guard=None, now=NOW)
    assert exc.value.code == "token_bad_signature"


def test_leeway_is_capped(ctx: Ctx) -> None:
    with pytest.raises(ValueError, match="leeway"):
        verify_card(ctx.forge.token(), ctx.keystore, issuer=ISSUER, now=NOW, leeway=3600)


def test_error_messages_never_echo_the_token(ctx: Ctx) -> None:
    token = ctx.forge.token(ctx.header(jku="https://evil.example/" + "A" * 40))
    with pytest.raises(TokenError) as exc:
        verify_card(token, ctx.keystore, issuer=ISSUER, now=NOW)
    assert token not in str(exc.value) and "evil.example" not in exc.value.message


def test_forbidden_header_message_is_one_clean_line(ctx: Ctx) -> None:
    token = ctx.forge.token(ctx.header(**{"x\nSet-Cookie: a=b": 1, "jku": "https://e.example"}))
    with pytest.raises(TokenError) as exc:
        verify_card(token, ctx.keystore, issuer=ISSUER, now=NOW)
    assert exc.value.code == "token_forbidden_header"
    assert "\n" not in exc.value.message and "jku" in exc.value.message
