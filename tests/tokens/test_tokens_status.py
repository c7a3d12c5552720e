"""Token Status List: the draft's own examples, round trips, bounds, and the signed list token."""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

import pytest

from ecard.errors import StatusListError, TokenError
from ecard.tokens.keys import KeyStore
from ecard.tokens.status import (
    CardStatus,
    StatusList,
    issue_status_list_token,
    verify_status_list_token,
)

from .conftest import ISSUER, NOW, STATUS_URI


def test_draft_example_one_bit() -> None:
    """draft-ietf-oauth-status-list, "Status List in JSON format": 16 statuses of 1 bit."""
    invalid = [0, 3, 4, 5, 7, 8, 9, 13, 15]
    sl = StatusList.from_statuses(dict.fromkeys(invalid, 1), size=16, bits=1)
    assert sl.to_bytes() == bytes([0xB9, 0xA3])
    assert sl.encode() == {"bits": 1, "lst": "eNrbuRgAAhcBXQ"}
    back = StatusList.decode({"bits": 1, "lst": "eNrbuRgAAhcBXQ"})
    assert [back.get(i) for i in range(16)] == [int(i in invalid) for i in range(16)]


def test_draft_example_two_bits() -> None:
    """The draft's 2-bit example: 12 statuses -> bytes C9 44 F9 -> lst eNo76fITAAPfAgc."""
    statuses = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]
    sl = StatusList.from_statuses(statuses)
    assert sl.to_bytes() == bytes([0xC9, 0x44, 0xF9])
    assert sl.encode() == {"bits": 2, "lst": "eNo76fITAAPfAgc"}
    back = StatusList.decode({"bits": 2, "lst": "eNo76fITAAPfAgc"})
    assert [back.get(i) for i in range(12)] == statuses
    assert back.status(1) is CardStatus.SUSPENDED and back.status(0) is CardStatus.INVALID


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_round_trip_large_list(bits: int) -> None:
    sl = StatusList(100_000, bits)
    marks = {7: 1, 99_999: (1 << bits) - 1, 50_000: 1, 3: 1}
    for idx, status in marks.items():
        sl.set(idx, status)
    sl.set(3, 0)  # set back to valid
    back = StatusList.decode(sl.encode())
    assert back == sl
    assert back.get(7) == 1 and back.get(3) == 0 and back.get(99_999) == (1 << bits) - 1
    assert back.get(8) == 0


def test_a_mostly_valid_list_compresses_well() -> None:
    sl = StatusList(1_000_000)
    for i in range(0, 1_000_000, 997):
        sl.set(i, CardStatus.SUSPENDED)
    assert len(sl.encode()["lst"]) < 20_000  # 250 kB raw


@pytest.mark.parametrize("idx", [-1, 16, True, "3"])
def test_index_outside_the_list(idx: object) -> None:
    with pytest.raises(StatusListError):
        StatusList(16).get(idx)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "obj",
    [
        {"bits": 3, "lst": "eNo76fITAAPfAgc"},
        {"bits": True, "lst": "eNo76fITAAPfAgc"},
        {"bits": 2},
        {"bits": 2, "lst": "not+base64url/"},
        {"bits": 2, "lst": "AAAA"},  # not zlib
        {"bits": 2, "lst": base64.urlsafe_b64encode(zlib.compress(b"x" * 10)[:-3]).decode()},
        [],
    ],
)
def test_bad_lists_are_refused(obj: object) -> None:
    with pytest.raises(StatusListError):
        StatusList.decode(obj)  # type: ignore[arg-type]


def test_decompression_bomb_is_refused() -> None:
    bomb = base64.urlsafe_b64encode(zlib.compress(bytes(40 * 1024 * 1024), 9)).rstrip(b"=")
    with pytest.raises(StatusListError, match="too large"):
        StatusList.decode({"bits": 2, "lst": bomb.decode()})


def test_status_list_token_round_trip(keystore: KeyStore) -> None:
    sl = StatusList(1024)
    sl.set(3, CardStatus.SUSPENDED)
    token = issue_status_list_token(keystore, sl, uri=STATUS_URI, issuer=ISSUER, now=NOW, ttl=300)
    v = verify_status_list_token(token, keystore.jwks(), uri=STATUS_URI, issuer=ISSUER, now=NOW)
    assert v.statuses.status(3) is CardStatus.SUSPENDED
    assert v.ttl == 300 and v.issued_at == NOW and v.expires_at == NOW + 3600
    assert v.statuses.size == 1024


def test_status_list_token_for_another_uri_is_refused(keystore: KeyStore) -> None:
    token = issue_status_list_token(keystore, StatusList(8), uri=STATUS_URI, issuer=ISSUER, now=NOW)
    with pytest.raises(TokenError) as exc:
        verify_status_list_token(token, keystore, uri=STATUS_URI + "0", issuer=ISSUER, now=NOW)
    assert exc.value.code == "token_bad_claims"


def test_card_is_not_a_status_list_token(keystore: KeyStore, card: str) -> None:
    with pytest.raises(TokenError) as exc:
        verify_status_list_token(card, keystore, uri=STATUS_URI, issuer=ISSUER, now=NOW)
    assert exc.value.code == "token_wrong_type"


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_status_list_matches_a_plain_list_model(bits: int) -> None:
    """Random sets against a plain Python list, then an encode/decode round trip."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    size = 61  # not a multiple of 8: the last byte is partly padding

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, (1 << bits) - 1))))
    def check(ops: list[tuple[int, int]]) -> None:
        model = [0] * size
        sl = StatusList(size, bits)
        for idx, status in ops:
            sl.set(idx, status)
            model[idx] = status
        assert [sl.get(i) for i in range(size)] == model
        back = StatusList.decode(sl.encode())
        assert [back.get(i) for i in range(size)] == model

    check()


# --- finding 7: the list's exp bounds how long a suspension stays unseen offline ------------


def test_status_list_token_lives_an_hour_by_default_and_never_longer(keystore: KeyStore) -> None:
    from ecard.tokens.status import MAX_LIST_LIFETIME

    assert MAX_LIST_LIFETIME == 3600
    token = issue_status_list_token(keystore, StatusList(8), uri=STATUS_URI, issuer=ISSUER, now=NOW)
    v = verify_status_list_token(token, keystore, uri=STATUS_URI, issuer=ISSUER, now=NOW)
    assert v.expires_at is not None and v.expires_at - v.issued_at == 3600  # was 86400
    short = issue_status_list_token(
        keystore, StatusList(8), uri=STATUS_URI, issuer=ISSUER, now=NOW, ttl=60, lifetime=600
    )
    v = verify_status_list_token(short, keystore, uri=STATUS_URI, issuer=ISSUER, now=NOW)
    assert (v.ttl, v.expires_at) == (60, NOW + 600)


@pytest.mark.parametrize(
    ("ttl", "lifetime"),
    [(60, 86_400), (60, 3601), (60, 0), (0, 3600), (601, 600), (True, 3600)],
)
def test_status_list_token_refuses_a_lifetime_over_an_hour_or_a_ttl_past_it(
    keystore: KeyStore, ttl: int, lifetime: int
) -> None:
    with pytest.raises(ValueError):
        issue_status_list_token(
            keystore,
            StatusList(8),
            uri=STATUS_URI,
            issuer=ISSUER,
            now=NOW,
            ttl=ttl,
            lifetime=lifetime,
        )


@pytest.mark.parametrize(
    ("env", "exp_s", "ttl_s"),
    [
        ({}, 3600, 60),
        ({"ECARD_STATUS_LIST_EXP_S": "300", "ECARD_STATUS_LIST_TTL_S": "30"}, 300, 30),
    ],
)
def test_served_status_list_expires_within_an_hour(
    tmp_path: Path, env: dict[str, str], exp_s: int, ttl_s: int
) -> None:
    """What ``GET /api/v1/status-lists/1`` serves: ``exp - iat`` <= 1 h, ``ttl`` <= that, as
    configured (ECARD_STATUS_LIST_EXP_S / _TTL_S)."""
    import json

    from ecard.store.models import StatusListRow
    from ecard.tokens.jws import b64url_decode
    from ecard.web import create_app

    app = create_app(
        {
            "ECARD_INSTANCE": str(tmp_path),
            "LOAD_MODELS": "0",
            "ECARD_RATELIMIT_ENABLED": "0",
            **env,
        }
    )
    with app.extensions["ecard"].store.write() as s:
        if s.get(StatusListRow, 1) is None:
            s.add(StatusListRow(id=1, size=1024, next_idx=0))
    resp = app.test_client().get("/api/v1/status-lists/1")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    claims = json.loads(b64url_decode(resp.get_data(as_text=True).split(".")[1], "claims"))
    assert claims["exp"] - claims["iat"] == exp_s
    assert claims["ttl"] == ttl_s
