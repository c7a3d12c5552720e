"""OfflineVerifier with a fake network (a dict of URL -> bytes) and a fake clock."""

from __future__ import annotations

import json

import pytest

from ecard.errors import FetchError, StatusListExpiredError, TokenError
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


def publish_status(
    net: Net, keystore: KeyStore, now: float, *, ttl: int = 300, **marks: int
) -> None:
    sl = StatusList(64)
    for idx, status in marks.items():
        sl.set(int(idx.lstrip("i")), status)
    token = issue_status_list_token(keystore, sl, uri=STATUS_URI, issuer=ISSUER, now=now, ttl=ttl)
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
    assert result.status_stale and result.to_dict()["status_stale"] is True
    clock.t += 86400  # past the list token's own exp: no longer usable
    with pytest.raises(StatusListExpiredError) as exc:
        v.verify(card)
    assert exc.value.code == "status_list_expired"
    assert isinstance(exc.value, FetchError)  # callers catching fetch failures still do


def test_a_suspension_is_seen_offline_within_an_hour(
    net: Net, clock: Clock, keystore: KeyStore, card: str
) -> None:
    """Finding 7: the list said ttl 60 s but lived a day, so a verifier cut off from the issuer
    kept a suspended card valid for up to 24 h. Now: at most exp (1 h) + leeway (30 s)."""
    publish_status(net, keystore, NOW, ttl=60)
    v = make(net, clock)
    assert v.verify(card).valid
    # the holder reports the loss; the verifier no longer reaches the issuer
    publish_status(net, keystore, NOW + 10, ttl=60, i3=CardStatus.SUSPENDED)
    net.down = True
    clock.t = NOW + 3600 + v.leeway - 1
    result = v.verify(card)
    assert result.valid and result.status_stale  # still the old list, and said so
    clock.t = NOW + 3600 + v.leeway
    with pytest.raises(StatusListExpiredError):
        v.verify(card)  # the suspended card is not judged valid any more
    # back online: the suspension shows at once
    net.down = False
    result = v.verify(card)
    assert result.status is CardStatus.SUSPENDED and not result.valid and not result.status_stale


def test_after_ttl_the_list_is_refetched_and_not_stale(
    net: Net, clock: Clock, keystore: KeyStore, card: str
) -> None:
    publish_status(net, keystore, NOW, ttl=60)
    v = make(net, clock)
    first = v.verify(card)
    assert not first.status_stale and first.to_dict()["status_stale"] is False
    publish_status(net, keystore, NOW + 30, ttl=60, i3=CardStatus.SUSPENDED)
    clock.t += 59
    assert v.verify(card).valid  # within ttl: the cached copy, no fetch
    assert net.log.count(STATUS_URI) == 1
    clock.t += 2
    result = v.verify(card)
    assert net.log.count(STATUS_URI) == 2
    assert result.status is CardStatus.SUSPENDED and not result.status_stale


def test_a_long_lived_list_is_capped_by_the_verifier(
    net: Net, clock: Clock, keystore: KeyStore, card: str
) -> None:
    """A list signed with a day's exp (an older issuer) is trusted for an hour at most."""
    from ecard.tokens.jws import sign_jws
    from ecard.tokens.status import STATUS_LIST_TYP

    claims = {
        "iss": ISSUER,
        "sub": STATUS_URI,
        "iat": NOW,
        "exp": NOW + 86_400,
        "ttl": 60,
        "status_list": StatusList(64).encode(),
    }
    net.pages[STATUS_URI] = sign_jws(claims, keystore.signing_key(), typ=STATUS_LIST_TYP).encode()
    v = make(net, clock)
    assert v.verify(card).valid
    net.down = True
    clock.t = NOW + 3000
    assert v.verify(card).status_stale
    clock.t = NOW + 3600 + v.leeway
    with pytest.raises(StatusListExpiredError):
        v.verify(card)


def test_an_expired_list_from_the_issuer_is_refused_with_its_own_code(
    net: Net, clock: Clock, keystore: KeyStore, card: str
) -> None:
    """A stale cache in front of the issuer serves yesterday's list: not a card error."""
    publish_status(net, keystore, NOW - 7200)
    with pytest.raises(StatusListExpiredError) as exc:
        make(net, clock).verify(card)
    assert exc.value.code == "status_list_expired"


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


def test_a_jwks_nested_thousands_deep_is_a_token_error(
    net: Net, clock: Clock, keystore: KeyStore, card: str
) -> None:
    """A hostile JWKS endpoint cannot crash the verifier with RecursionError."""
    publish_status(net, keystore, NOW)
    net.pages[JWKS_URL] = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(TokenError) as exc:
        make(net, clock).verify(card)
    assert exc.value.code == "token_malformed"
