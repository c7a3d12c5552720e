"""The card's domain functions (ecard/cards/): the claims and status URI of a card, the status
values of the status list, the card timeline, and the compiled status query held by its store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import update
from svc_helpers import bearer, issue_card

from ecard.cards import Cards
from ecard.cards import lifecycle as lifecycle_module
from ecard.cards.signing import card_claims, sign_card, status_list_uri
from ecard.cards.status import CardStatus, status_list
from ecard.cards.timeline import card_timeline
from ecard.errors import CardStateError
from ecard.store import Store, open_store
from ecard.store.audit import record
from ecard.store.models import CARD_STATUSES, Card


def _cards(store: Store) -> Cards:
    from ecard.store.audit import DbAttemptCounter
    from ecard.tokens.pin import PinGuard

    return Cards(store, PinGuard(DbAttemptCounter(store)), None)  # type: ignore[arg-type]


def test_status_values_are_one_mapping_to_the_ietf_list() -> None:
    from ecard.tokens.status import CardStatus as ListStatus

    assert tuple(CardStatus) == CARD_STATUSES
    assert {s: ListStatus(s.list_value) for s in CardStatus} == {
        CardStatus.ACTIVE: ListStatus.VALID,
        CardStatus.REVOKED: ListStatus.INVALID,
        CardStatus.SUSPENDED: ListStatus.SUSPENDED,
    }
    lst = status_list(8, {1: "suspended", 2: "revoked", 5: "active"})
    assert lst.size == 8
    assert [lst.status(i) for i in range(4)] == [
        ListStatus.VALID,
        ListStatus.SUSPENDED,
        ListStatus.INVALID,
        ListStatus.VALID,
    ]
    with pytest.raises(ValueError):
        status_list(4, {0: "lost"})  # not a status the store knows


def test_the_card_and_its_list_name_the_same_uri(client: Any, store: Store, creds: Any) -> None:
    card = issue_card(client, store, creds)
    claims = jwt.decode(card["card"], options={"verify_signature": False})
    ref = claims["status"]["status_list"]
    info = _cards(store).by_number(card["card_no"])
    assert ref == {"idx": info.status_idx, "uri": status_list_uri(claims["iss"], info.status_list)}
    assert card_claims(info, issuer=claims["iss"]).to_claims()["status"]["status_list"] == ref
    served = client.get(ref["uri"].split(claims["iss"], 1)[1])
    assert served.status_code == 200
    assert jwt.decode(served.data, options={"verify_signature": False})["sub"] == ref["uri"]
    # the holder's login reissues the same claims (one builder for both)
    again = client.post("/api/v1/cards/login", json={"card_no": card["card_no"], "pin": "480613"})
    assert again.status_code == 200, again.json
    reissued = jwt.decode(again.json["card"], options={"verify_signature": False})
    assert {k: reissued[k] for k in ("sub", "card_no", "name", "status")} == {
        k: claims[k] for k in ("sub", "card_no", "name", "status")
    }
    assert reissued["exp"] == pytest.approx(claims["exp"], abs=5)  # the card's own expiry


def test_a_replaced_or_expired_card_is_not_signed_and_keeps_its_jti(
    client: Any, store: Store, creds: Any
) -> None:
    from ecard.tokens.keys import KeyStore

    card = issue_card(client, store, creds)
    info = _cards(store).by_number(card["card_no"])
    keys: KeyStore = client.application.extensions["ecard"].require_keys()
    rotated: list[str] = []

    def rotate() -> str:
        rotated.append("x")
        return "new-jti"

    later = info.expires_at + timedelta(seconds=1)
    with pytest.raises(CardStateError):
        sign_card(keys, info, issuer="https://i.example", jti=rotate, now=later)
    with store.write() as s:
        s.execute(update(Card).where(Card.id == info.id).values(status="revoked"))
    with pytest.raises(CardStateError):
        sign_card(keys, _cards(store).get(info.id), issuer="https://i.example", jti=rotate)
    assert rotated == []  # refused before a new jti could supersede the holder's token


def test_the_timeline_shows_this_card_only(client: Any, store: Store, creds: Any) -> None:
    mine = issue_card(client, store, creds, seq=1)
    other = issue_card(client, store, creds, seq=2)
    cards = _cards(store)
    mine_id = cards.by_number(mine["card_no"]).id
    other_id = cards.by_number(other["card_no"]).id
    now = datetime.now(UTC)
    with store.write() as s:
        record(s, actor="system", action="revoke", outcome="revoked", card_id=other_id, now=now)
        # an event of no enrollment and no card (e.g. a desk login): nobody's timeline
        record(s, actor="desk", action="login", outcome="ok", now=now)
        record(s, actor="citizen", action="pin_check", outcome="wrong_pin", card_id=other_id)
    steps = [(e.action, e.outcome) for e in card_timeline(store, mine_id)]
    assert steps == [
        ("authorize", "authorized"),
        ("consent", "consented"),
        ("liveness", "verified"),
        ("issue", "issued"),
    ]
    assert card_timeline(store, "no-such-card") == ()
    page = client.get("/card/overview", headers=bearer(mine["card"]))
    assert page.status_code == 200, page.json
    assert [(e["action"], e["outcome"]) for e in page.json["events"]] == steps


def test_the_timeline_says_what_each_event_was_and_who_did_it(
    client: Any, store: Store, creds: Any
) -> None:
    """A wrong PIN at a hospital desk is an alert naming the hospital, not a confirmation; a
    failed login is an alert, the successful one is listed; a scan names the hospital."""
    from ecard.channels import add_channel
    from ecard.errors import WrongPinError

    card = issue_card(client, store, creds, seq=3, pin="480613")
    cards = client.application.extensions["ecard"].cards()
    card_id = cards.by_number(card["card_no"]).id
    desk = add_channel(store, "Ruijin Hospital", "scan")
    actor = f"hospital:{desk.client_id}"
    cards.audit(actor, "scan", "active", card_id)
    with pytest.raises(WrongPinError):
        cards.check_pin(card_id, "111111", actor=actor, action="confirm")
    cards.check_pin(card_id, "480613", actor=actor, action="confirm")
    cards.audit(actor, "confirm", "confirmed", card_id)
    with pytest.raises(WrongPinError):
        cards.login(card["card_no"], "222222")
    cards.login(card["card_no"], "480613")
    with pytest.raises(WrongPinError):
        cards.check_pin(card_id, "333333", action="qr")

    events = card_timeline(store, card_id)
    assert events[0].action == "authorize" and events[0].by == "app"
    assert events[0].where == "City app"
    later = [(e.action, e.outcome, e.by, e.where, e.alert) for e in events[4:]]
    assert later == [
        ("scan", "active", "hospital", "Ruijin Hospital", False),
        ("confirm", "wrong_pin", "hospital", "Ruijin Hospital", True),
        ("confirm", "confirmed", "hospital", "Ruijin Hospital", False),
        ("login", "wrong_pin", "you", None, True),
        ("login", "opened", "you", None, False),
        ("qr", "wrong_pin", "you", None, True),
    ]
    page = client.get("/card/overview", headers=bearer(cards_token(client, card)))
    assert page.status_code == 200, page.json
    shown = page.json["events"][4:]
    assert shown[1] == {
        "at": shown[1]["at"],
        "action": "confirm",
        "outcome": "wrong_pin",
        "by": "hospital",
        "where": "Ruijin Hospital",
        "alert": True,
    }
    # (the token for this request came from one more login, listed last)
    assert [e["alert"] for e in shown] == [False, True, False, True, False, True, False]


def cards_token(client: Any, card: dict[str, Any]) -> str:
    """A current e-card token (the login above superseded the one given at issuance)."""
    r = client.post("/api/v1/cards/login", json={"card_no": card["card_no"], "pin": "480613"})
    assert r.status_code == 200, r.json
    return str(r.json["card"])


def test_two_stores_in_a_row_do_not_share_the_status_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled status query belongs to its store. A cache keyed by ``id(engine)`` answered
    from the first (closed) database when the second engine got the freed address: simulated
    here by an ``id`` that gives every object the same number."""
    monkeypatch.setattr(lifecycle_module, "id", lambda obj: 1, raising=False)
    answers = []
    for n, status in enumerate(("active", "suspended")):
        store = open_store(f"sqlite:///{tmp_path / f'db{n}.sqlite3'}")
        try:
            answers.append(_cards(store).status_of(_issue(store, status)))
        finally:
            store.close()
    assert answers == ["active", "suspended"]


def _issue(store: Store, status: str) -> str:
    """A card issued through the domain (trivial signer), then given ``status``."""
    from svc_helpers import insert_citizen

    from ecard.channels import add_channel, authenticate
    from ecard.enrollment import Enrollments

    made = add_channel(store, name="t", scopes="enroll")
    enr = Enrollments(store)
    eid = enr.authorize(
        authenticate(store, made.client_id, made.client_secret), insert_citizen(store), "Li Lei"
    ).enrollment_id
    enr.consent(eid, True)
    enr.take_nonce(eid, enr.challenge(eid, 2).nonce)
    enr.record_liveness(eid, live=True, blinks=2, match=True, reason=None)
    card_id = enr.issue(eid, "pin-hash", lambda draft: "token").card.id
    with store.write() as s:
        s.execute(update(Card).where(Card.id == card_id).values(status=status))
    return card_id
