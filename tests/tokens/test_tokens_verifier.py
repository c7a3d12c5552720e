"""OfflineVerifier with a fake network (a dict of URL -> bytes) and a fake clock."""

from __future__ import annotations

import json

import pytest

from ecard.errors import FetchError, TokenError
from ecard.tokens.cards import CardClaims, issue_card
from ecard.tokens.keys import KeyStore
from ecard.tokens.status import CardStatus, StatusList, issue_status_list_token
from ecard.tokens.verifier import OfflineVerifier, urllib_fetch

from .conftest import ISSUER, NOW, STATUS_URI

JWKS_URL = f"{ISSUER}/.well-known/jwks.json"


class Net:
    """What the issuer serves right now, and a log of every fetch."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self.log: list[str] = []
        self.down = False

    def fetch(self, url: str) -> bytes:
        self.log.append(url)
        if self.down or url not in self.pages:
            raise FetchError(f"Could not fetch {url}.")
        return self.pages[url]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def net(keystore: KeyStore) -> Net:
    n = Net()
    n.pages[JWKS_URL] = json.dumps(keystore.jwks()).encode()
    return n


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


def publish_status(net: Net, keystore: KeyStore, now: float, **marks: int) -> None:
    sl = StatusList(64)
    for idx, status in marks.items():
        sl.set(int(idx.lstrip("i")), status)
    token = issue_status_list_token(keystore, sl, uri=STATUS_URI, issuer=ISSUER, now=now, ttl=300)
    net.pages[STATUS_URI] = token.encode()


def make(net: Net, clock: Clock, **kw: float) -> OfflineVerifier:
    return OfflineVerifier(JWKS_URL, issuer=ISSUER, fetch=net.fetch, clock=clock, **kw)


def test_valid_card_with_status(net: Net, clock: Clock, keystore: KeyStore, card: str) -> None:
    publish_status(net, keystore, NOW)
    v = make(net, clock)
    result = v.verify(card)
    assert result.valid and result.status is CardStatus.VALID
    assert result.claims.name == "张三" and result.claims.card_no == "E310100123456"
    assert result.jwks_age == 0 and result.status_age == 0
    d = result.to_dict()
    assert d["status"] == "valid" and d["claims"]["card_no"] == "E310100123456"


def test_suspended_card_is_reported(net: Net, clock: Clock, keystore: KeyStore, card: str) -> None:
    publish_status(net, keystore, NOW, i3=CardStatus.SUSPENDED)
    result = make(net, clock).verify(card)
    assert result.status is CardStatus.SUSPENDED and not result.valid


def test_copies_are_cached_and_their_age_reported(
    net: Net, clock: Clock, keystore: KeyStore, card: str
) -> None:
    publish_status(net, keystore, NOW)
    v = make(net, clock)
    v.verify(card)
    clock.t += 120
    result = v.verify(card)
    assert net.log == [JWKS_URL, STATUS_URI]  # nothing fetched again
    assert result.jwks_age == 120 and result.status_age == 120
    # after the status list's ttl (300 s) it is fetched again and sees the suspension
    publish_status(net, keystore, clock.t, i3=CardStatus.SUSPENDED)
    clock.t += 200
    result = v.verify(card)
    assert net.log[-1] == STATUS_URI and result.status is CardStatus.SUSPENDED
    assert result.status_age == 0


def test_stale_status_copy_is_used_while_the_issuer_is_down(
    net: Net, clock: Clock, keystore: KeyStore, card: str
) -> None:
    publish_status(net, keystore, NOW)
    v = make(net, clock)
    v.verify(card)
    net.down = True
    clock.t += 1000
    result = v.verify(card)
    assert result.status is CardStatus.VALID and result.status_age == 1000
    clock.t += 86400  # past the list token's own exp: no longer usable
    with pytest.raises(FetchError):
        v.verify(card)


def test_unknown_kid_refetches_the_jwks_once(
    net: Net, clock: Clock, keystore: KeyStore, claims: CardClaims
) -> None:
    publish_status(net, keystore, NOW)
    v = make(net, clock)
    v.verify(issue_card(keystore, claims, issuer=ISSUER, now=NOW))
    # the issuer rotates; the JWKS it serves now has the new key
    clock.t += 3600
    keystore.rotate(now=clock.t)
    net.pages[JWKS_URL] = json.dumps(keystore.jwks()).encode()
    publish_status(net, keystore, clock.t)
    new_card = issue_card(keystore, claims, issuer=ISSUER, now=clock.t)
    result = v.verify(new_card)
    assert result.card.kid == keystore.signing_key().kid
    assert net.log.count(JWKS_URL) == 2 and result.jwks_age == 0


def test_forged_kids_cannot_hammer_the_issuer(
    net: Net, clock: Clock, keystore: KeyStore, card: str, attacker_key
) -> None:
    from .conftest import Forge

    publish_status(net, keystore, NOW)
    v = make(net, clock, min_refetch_interval=60)
    v.verify(card)
    other = KeyStore.open(keystore.folder.parent.parent / "other")
    forged = Forge(other).token()
    for _ in range(20):
        with pytest.raises(TokenError) as exc:
            v.verify(forged)
        assert exc.value.code == "token_unknown_key"
    assert net.log.count(JWKS_URL) == 1  # within the interval: no re-fetch at all
    clock.t += 61
    with pytest.raises(TokenError):
        v.verify(forged)
    with pytest.raises(TokenError):
        v.verify(forged)
    assert net.log.count(JWKS_URL) == 2  # one re-fetch per interval


def test_retired_key_disappears_after_refresh(
    net: Net, clock: Clock, keystore: KeyStore, card: str
) -> None:
    publish_status(net, keystore, NOW)
    v = make(net, clock, jwks_max_age=600)
    v.verify(card)
    old = keystore.signing_key().kid
    keystore.rotate(now=NOW)
    keystore.retire(old, now=NOW)
    net.pages[JWKS_URL] = json.dumps(keystore.jwks()).encode()
    publish_status(net, keystore, NOW)
    clock.t += 601  # the cached JWKS is now too old and is refreshed
    with pytest.raises(TokenError) as exc:
        v.verify(card)
    assert exc.value.code == "token_unknown_key"


def test_status_list_signed_by_someone_else_is_refused(
    net: Net, clock: Clock, keystore: KeyStore, card: str
) -> None:
    other = KeyStore.open(keystore.folder.parent.parent / "other")
    net.pages[STATUS_URI] = issue_status_list_token(
        other, StatusList(64), uri=STATUS_URI, issuer=ISSUER, now=NOW
    ).encode()
    with pytest.raises(TokenError) as exc:
        make(net, clock).verify(card)
    assert exc.value.code == "token_unknown_key"


def test_without_status(net: Net, clock: Clock, card: str) -> None:
    result = make(net, clock).verify(card, check_status=False)
    assert result.status is None and result.valid and net.log == [JWKS_URL]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://x"])
def test_default_fetcher_only_speaks_http(url: str) -> None:
    with pytest.raises(FetchError):
        urllib_fetch(url)
