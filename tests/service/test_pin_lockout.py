"""Finding 2: wrong-PIN lockout per card with a time-based component, counted atomically in the
database (SQLite and PostgreSQL), and the holder's ways out (face check, channel)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecard.errors import PinLockedError, PinWaitError, WrongPinError
from ecard.store import Store
from ecard.store.audit import DbAttemptCounter
from ecard.tokens.pin import FREE_TRIES, LockoutPolicy, PinGuard

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def _try(guard: PinGuard, key: str, right: bool, now: datetime) -> tuple[str, int | None]:
    try:
        guard.check(key, lambda: right, now=now)
    except PinWaitError as exc:
        return exc.code, exc.retry_after
    except (WrongPinError, PinLockedError) as exc:
        return exc.code, None
    return "ok", None


def test_database_counter_follows_the_policy(store: Store) -> None:
    guard = PinGuard(DbAttemptCounter(store))
    now = T0
    assert [_try(guard, "pin:c", False, now)[0] for _ in range(4)] == ["wrong_pin"] * 4
    assert _try(guard, "pin:c", False, now) == ("pin_wait", 60)
    assert _try(guard, "pin:c", True, now + timedelta(seconds=30))[0] == "pin_wait"
    waits = []
    now += timedelta(seconds=60)
    for _ in range(5):  # wrong PINs 6-10
        code, wait = _try(guard, "pin:c", False, now)
        assert code == "pin_wait" and wait is not None
        waits.append(wait)
        now += timedelta(seconds=wait)
    assert waits == [300, 1800, 3600, 3600, 24 * 3600 - 60 - 300 - 1800 - 3600 - 3600]
    assert _try(guard, "pin:c", True, now) == ("ok", None)
    assert DbAttemptCounter(store).failures("pin:c") == 0


def test_database_counter_blocks_after_100_consecutive_until_reset(store: Store) -> None:
    counter = DbAttemptCounter(store)
    policy = LockoutPolicy(free_tries=5, delays=(), window_limit=1000, max_consecutive=100)
    results = [counter.reserve("k", policy, T0).allowed for _ in range(101)]
    assert results.count(True) == 100 and results[-1] is False
    refused = counter.reserve("k", policy, T0 + timedelta(days=30))
    assert refused.allowed is False and refused.retry_at is None  # only a reset ends it
    counter.reset("k")
    assert counter.reserve("k", policy, T0).allowed


def test_concurrent_wrong_pins_in_the_database_get_five_checks(store: Store) -> None:
    """30 threads with a wrong PIN at the same instant: the counter lets exactly the five
    free tries through (the fifth sets the wait in the same statement)."""
    guard = PinGuard(DbAttemptCounter(store))
    barrier = threading.Barrier(30)
    checks = 0
    lock = threading.Lock()
    out: list[str] = []

    def wrong() -> bool:
        nonlocal checks
        with lock:
            checks += 1
        return False

    def run() -> None:
        barrier.wait()
        try:
            guard.check("pin:race", wrong, now=T0)
        except (WrongPinError, PinWaitError, PinLockedError) as exc:
            with lock:
                out.append(exc.code)

    threads = [threading.Thread(target=run) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert checks == FREE_TRIES
    assert sorted(set(out)) == ["pin_wait", "wrong_pin"]
    assert out.count("wrong_pin") == FREE_TRIES - 1


@pytest.mark.parametrize("limit", [10])
def test_concurrent_desk_logins_never_pass_the_limit(store: Store, limit: int) -> None:
    """Finding 10's mechanism: the desk-login policy on the same atomic counter."""
    counter = DbAttemptCounter(store)
    policy = LockoutPolicy(
        free_tries=limit,
        delays=(),
        window=timedelta(hours=1),
        window_limit=limit,
        max_consecutive=None,
    )
    barrier = threading.Barrier(25)
    allowed: list[bool] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        got = counter.reserve("desk-login:10.0.0.9", policy, T0).allowed
        with lock:
            allowed.append(got)

    threads = [threading.Thread(target=run) for _ in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == limit
    assert counter.reserve("desk-login:10.0.0.9", policy, T0 + timedelta(minutes=61)).allowed


# --- the holder's ways out, through the API ---------------------------------------------------


def _block_pin(store: Store, card_no: str) -> None:
    """The state a stranger reaches after ten days of guessing: 100 consecutive failures."""
    from sqlalchemy import insert, select

    from ecard.store.models import AttemptRow, Card

    with store.write() as s:
        card_id = s.scalar(select(Card.id).where(Card.card_no == card_no))
        s.execute(
            insert(AttemptRow).values(
                key=f"pin:{card_id}",
                failures=100,
                window_failures=0,
                window_start=datetime.now(UTC) - timedelta(days=2),
                updated_at=datetime.now(UTC),
            )
        )


def _face_check(client: Any, store: Store, started: dict) -> None:
    from svc_helpers import verify_without_camera

    assert verify_without_camera(client, store, started)["state"] == "verified"


def test_a_blocked_pin_never_stops_the_holder(client: Any, store: Store, creds: Any) -> None:
    """Finding 2: after a stranger's 100 wrong PINs the holder still reports the loss and sets
    a new PIN, with a fresh face check started from the card token (no PIN)."""
    from svc_helpers import bearer, issue_card

    card = issue_card(client, store, creds)
    _block_pin(store, card["card_no"])
    login = client.post("/api/v1/cards/login", json={"card_no": card["card_no"], "pin": "480613"})
    assert (login.status_code, login.json["error"]) == (423, "pin_locked")
    started = client.post("/api/v1/cards/recovery", headers=bearer(card["card"]))
    assert started.status_code == 201, started.json
    rec = started.json
    eid, tok = rec["enrollment_id"], rec["enrollment_token"]
    assert rec["enroll_url"].endswith("/enroll/" + tok)
    shown = client.get(f"/api/v1/enrollments/{eid}", headers=bearer(tok)).json
    assert shown["purpose"] == "recover" and shown["state"] == "authorized"  # the page's cue
    early = client.post(f"/api/v1/enrollments/{eid}/recovery/suspend", headers=bearer(tok))
    assert (early.status_code, early.json["error"]) == (409, "wrong_state")
    _face_check(client, store, rec)
    lost = client.post(f"/api/v1/enrollments/{eid}/recovery/suspend", headers=bearer(tok))
    assert lost.status_code == 200 and lost.json == {
        "card_no": card["card_no"],
        "status": "suspended",
    }
    # a recovery never issues a second card
    other = client.post(
        f"/api/v1/enrollments/{eid}/pin", json={"pin": "902741"}, headers=bearer(tok)
    )
    assert other.status_code == 409
    weak = client.post(
        f"/api/v1/enrollments/{eid}/recovery/pin", json={"pin": "123456"}, headers=bearer(tok)
    )
    assert (weak.status_code, weak.json["error"]) == (422, "pin_sequence")
    new = client.post(
        f"/api/v1/enrollments/{eid}/recovery/pin", json={"pin": "902741"}, headers=bearer(tok)
    )
    assert new.status_code == 200 and new.json["status"] == "suspended", new.json
    old = client.get("/api/v1/cards/me", headers=bearer(card["card"]))
    assert (old.status_code, old.json["error"]) == (401, "token_superseded")
    assert client.get("/api/v1/cards/me", headers=bearer(new.json["card"])).status_code == 200
    again = client.post("/api/v1/cards/login", json={"card_no": card["card_no"], "pin": "902741"})
    assert again.status_code == 200  # the block is gone with the new PIN
    ended = client.post(
        f"/api/v1/enrollments/{eid}/recovery/pin", json={"pin": "902741"}, headers=bearer(tok)
    )
    assert (ended.status_code, ended.json["error"]) == (410, "enrollment_ended")


def test_the_channel_reports_a_loss_for_its_user(client: Any, store: Store, creds: Any) -> None:
    from sqlalchemy import select
    from svc_helpers import issue_card

    from ecard.store.models import AuditEvent

    card = issue_card(client, store, creds)
    _block_pin(store, card["card_no"])
    url = f"/api/v1/cards/{card['card_no']}/suspend"
    assert client.post(url, json={"id_number": card["id_number"]}).status_code == 401
    scanner = client.post(url, json={"id_number": card["id_number"]}, headers=creds.verifier)
    assert scanner.status_code == 403
    wrong = client.post(url, json={"id_number": "11010519491231002X"}, headers=creds.channel)
    unknown = client.post(
        "/api/v1/cards/100000000008/suspend",
        json={"id_number": card["id_number"]},
        headers=creds.channel,
    )
    assert (wrong.status_code, wrong.json) == (unknown.status_code, unknown.json)
    assert wrong.status_code == 404
    ok = client.post(url, json={"id_number": card["id_number"]}, headers=creds.channel)
    assert ok.status_code == 200 and ok.json["status"] == "suspended"
    twice = client.post(url, json={"id_number": card["id_number"]}, headers=creds.channel)
    assert twice.status_code == 200 and twice.json["status"] == "suspended"
    verify = client.post(
        "/api/v1/cards/verify", json={"token": card["card"]}, headers=creds.channel
    )
    assert verify.json["valid"] is False and verify.json["status"] == "suspended"
    with store.read() as s:
        rows = s.execute(
            select(AuditEvent.actor, AuditEvent.action).where(AuditEvent.action == "card_suspended")
        ).all()
    assert [r.actor.split(":")[0] for r in rows] == ["channel"]


def test_the_channel_starts_a_recovery_for_a_new_pin(client: Any, store: Store, creds: Any) -> None:
    from svc_helpers import issue_card

    card = issue_card(client, store, creds)
    _block_pin(store, card["card_no"])
    body = {"id_number": card["id_number"], "name": "Li Lei", "purpose": "recover"}
    assert client.post("/api/v1/enrollments", json=body, headers=creds.verifier).status_code == 403
    started = client.post("/api/v1/enrollments", json=body, headers=creds.channel)
    assert started.status_code == 201, started.json
    _face_check(client, store, started.json)
    eid, tok = started.json["enrollment_id"], started.json["enrollment_token"]
    from svc_helpers import bearer

    new = client.post(
        f"/api/v1/enrollments/{eid}/recovery/pin", json={"pin": "902741"}, headers=bearer(tok)
    )
    assert new.status_code == 200 and new.json["status"] == "active"
    login = client.post("/api/v1/cards/login", json={"card_no": card["card_no"], "pin": "902741"})
    assert login.status_code == 200


# --- finding 8: old tokens stop ------------------------------------------------------------------


def test_a_card_token_stops_once_login_gives_out_a_new_one(
    client: Any, store: Store, creds: Any
) -> None:
    from svc_helpers import bearer, issue_card

    card = issue_card(client, store, creds)
    assert client.get("/api/v1/cards/me", headers=bearer(card["card"])).status_code == 200
    login = client.post("/api/v1/cards/login", json={"card_no": card["card_no"], "pin": "480613"})
    assert login.status_code == 200
    for method, path, body in (
        ("get", "/api/v1/cards/me", None),
        ("post", "/api/v1/cards/qr", {"pin": "480613"}),
        ("post", "/api/v1/cards/suspend", {"pin": "480613"}),
        ("get", "/card/overview", None),
    ):
        r = getattr(client, method)(path, json=body, headers=bearer(card["card"]))
        assert (r.status_code, r.json["error"]) == (401, "token_superseded"), path
    assert client.get("/api/v1/cards/me", headers=bearer(login.json["card"])).status_code == 200


def test_the_enrollment_token_stops_when_the_enrollment_ends(
    client: Any, store: Store, creds: Any
) -> None:
    from svc_helpers import bearer, issue_card

    card = issue_card(client, store, creds)
    eid, tok = card["enrollment_id"], card["enrollment_token"]
    r = client.get(f"/api/v1/enrollments/{eid}", headers=bearer(tok))
    assert (r.status_code, r.json["error"]) == (410, "enrollment_ended")
    assert card["card_no"] not in r.get_data(as_text=True)
    r = client.post(f"/api/v1/enrollments/{eid}/pin", json={"pin": "902741"}, headers=bearer(tok))
    assert (r.status_code, r.json["error"]) == (410, "enrollment_ended")
    # the channel that started it still tracks it
    shown = client.get(f"/api/v1/enrollments/{eid}", headers=creds.channel)
    assert shown.status_code == 200 and shown.json["state"] == "issued"


def test_a_card_starts_at_most_three_recoveries_a_day(
    client: Any, store: Store, creds: Any
) -> None:
    """Each recovery allows three face-check attempts: a stolen phone cannot start them without
    end to try the matcher."""
    from svc_helpers import bearer, issue_card

    card = issue_card(client, store, creds)
    codes = [
        client.post("/api/v1/cards/recovery", headers=bearer(card["card"])).status_code
        for _ in range(4)
    ]
    assert codes == [201, 201, 201, 429]


def test_a_pin_locked_under_the_old_rule_opens_again(client: Any, store: Store, creds: Any) -> None:
    """Six wrong PINs locked a card for good before migration 0003; such a counter (no window)
    now lets the holder in with the right PIN."""
    from sqlalchemy import insert, select
    from svc_helpers import issue_card

    from ecard.store.models import AttemptRow, Card

    card = issue_card(client, store, creds)
    with store.write() as s:
        card_id = s.scalar(select(Card.id).where(Card.card_no == card["card_no"]))
        s.execute(
            insert(AttemptRow).values(
                key=f"pin:{card_id}", failures=6, updated_at=datetime.now(UTC)
            )
        )
    r = client.post("/api/v1/cards/login", json={"card_no": card["card_no"], "pin": "480613"})
    assert r.status_code == 200


def test_the_login_does_not_tell_which_card_numbers_exist(
    client: Any, store: Store, creds: Any
) -> None:
    """Unknown numbers answer as a real card with a wrong PIN, wait for wait (was 404 vs 403)."""
    from svc_helpers import issue_card

    card = issue_card(client, store, creds)
    real, unknown = card["card_no"], "000000000"
    assert unknown != real
    for _ in range(FREE_TRIES + 1):
        answers = [
            client.post("/api/v1/cards/login", json={"card_no": no, "pin": "902741"})
            for no in (real, unknown)
        ]
        seen = [(r.status_code, r.json["error"], r.json["message"]) for r in answers]
        assert seen[0] == seen[1], seen
        assert [r.headers.get("Retry-After") for r in answers] == [
            answers[0].headers.get("Retry-After")
        ] * 2
    assert seen[0][1] == "pin_wait"
