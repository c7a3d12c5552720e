"""The enrollment state machine and the card lifecycle through the HTTP API (both databases)."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import select, update
from svc_helpers import (
    bearer,
    insert_citizen,
    issue_card,
    start_enrollment,
    verify_without_camera,
)

from ecard.enrollment import Enrollments, random_challenge
from ecard.errors import NonceError
from ecard.store import Store
from ecard.store.models import AttemptRow, AuditEvent, Card, Enrollment


def test_authorize_show_consent_challenge(client, store: Store, creds) -> None:
    number = insert_citizen(store, name="Li Lei")
    enr = start_enrollment(client, creds, number, name="li  lei")  # case and spaces ignored
    assert enr["enroll_url"].endswith("/enroll/" + enr["enrollment_token"])
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]

    shown = client.get(f"/api/v1/enrollments/{eid}", headers=bearer(tok)).json
    assert shown["state"] == "authorized"
    assert shown["citizen"] == {
        "name": "L*****",
        "id_number": number[:6] + "********" + number[14:],
    }
    assert shown["agreement"]["version"] and shown["agreement"]["text"]
    texts = shown["agreement"]["texts"]  # one version, every language the pages offer
    assert set(texts) == {"en", "zh-CN"} and texts["en"] == shown["agreement"]["text"]
    assert "电子社会保障卡" in texts["zh-CN"]

    r = client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
    assert r.status_code == 200 and r.json["state"] == "consented"
    r = client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
    assert r.status_code == 409 and r.json["error"] == "wrong_state"

    ch = client.post(f"/api/v1/enrollments/{eid}/challenge", headers=bearer(tok)).json
    assert ch["blinks"] == 2 and ch["cues_ms"] == []  # ECARD_LIVENESS_CHALLENGE=2 in tests
    shown = client.get(f"/api/v1/enrollments/{eid}", headers=creds.channel).json  # channel view
    assert shown["state"] == "challenged"
    consent_step = [t for t in shown["timeline"] if t["step"] == "consent"]
    assert shown["consent"]["version"] == shown["agreement"]["version"]
    assert [t["step"] for t in shown["timeline"]] == ["authorize", "consent", "challenge"]
    assert consent_step[0]["actor"] == "citizen"


def test_declining_the_agreement_ends_the_enrollment(client, store: Store, creds) -> None:
    enr = start_enrollment(client, creds, insert_citizen(store))
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]
    r = client.post(
        f"/api/v1/enrollments/{eid}/consent", json={"agree": "yes"}, headers=bearer(tok)
    )
    assert r.status_code == 422 and r.json["error"] == "invalid_field"
    r = client.post(
        f"/api/v1/enrollments/{eid}/consent", json={"agree": False}, headers=bearer(tok)
    )
    assert r.status_code == 200 and r.json["state"] == "failed"
    assert r.json["reason"] == "consent_declined"
    r = client.post(f"/api/v1/enrollments/{eid}/challenge", headers=bearer(tok))
    assert r.status_code == 410 and r.json["error"] == "enrollment_ended"
    shown = client.get(f"/api/v1/enrollments/{eid}", headers=creds.channel).json
    assert shown["state"] == "failed" and shown["timeline"][-1]["outcome"] == "declined"
    assert shown["consent"] is None


def test_random_challenge_has_one_to_three_spaced_cues() -> None:
    import random

    rng = random.Random(7)
    seen = set()
    for _ in range(200):
        blinks, cues = random_challenge(rng)
        seen.add(blinks)
        assert len(cues) == blinks and 1200 <= cues[0] <= 2200
        assert all(1600 <= b - a <= 2600 for a, b in itertools.pairwise(cues))
    assert seen == {1, 2, 3}


def test_random_challenge_needs_the_live_capture(tmp_path, store: Store, creds, unloaded_models):
    """With the default random challenge the one-shot path is refused, naming the capture
    endpoints (the live protocol itself: test_capture.py)."""
    from svc_helpers import app_config

    from ecard.web import create_app

    app = create_app(
        app_config(tmp_path, store, unloaded_models, ECARD_LIVENESS_CHALLENGE="random")
    )
    client = app.test_client()
    enr = start_enrollment(client, creds, insert_citizen(store))
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]
    client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
    for step in ("challenge", "liveness"):
        r = client.post(f"/api/v1/enrollments/{eid}/{step}", headers=bearer(tok))
        assert r.status_code == 409 and r.json["error"] == "live_capture_required", r.json
        assert "/capture" in r.json["message"]
    shown = client.get(f"/api/v1/enrollments/{eid}", headers=bearer(tok)).json
    assert shown["state"] == "consented" and shown["challenge"] is None


def test_enrollment_expires_after_fifteen_minutes(client, store: Store, creds) -> None:
    enr = start_enrollment(client, creds, insert_citizen(store))
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]
    expires = datetime.fromisoformat(enr["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    with store.write() as s:
        s.execute(
            update(Enrollment)
            .where(Enrollment.id == eid)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    r = client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
    assert r.status_code == 410 and r.json["error"] == "enrollment_expired"
    gone = client.get(f"/api/v1/enrollments/{eid}", headers=bearer(tok))
    assert gone.status_code == 410 and gone.json["error"] == "enrollment_expired"
    shown = client.get(f"/api/v1/enrollments/{eid}", headers=creds.channel).json
    assert shown["state"] == "expired" and shown["timeline"][-1]["step"] == "expire"


def test_nonce_is_single_use_and_short_lived(client, store: Store, creds) -> None:
    enr = start_enrollment(client, creds, insert_citizen(store))
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]
    client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
    domain = Enrollments(store)
    nonce = client.post(f"/api/v1/enrollments/{eid}/challenge", headers=bearer(tok)).json["nonce"]
    with pytest.raises(NonceError):
        domain.take_nonce(eid, "not-the-nonce")
    domain.take_nonce(eid, nonce)
    with pytest.raises(NonceError):
        domain.take_nonce(eid, nonce)
    nonce = client.post(f"/api/v1/enrollments/{eid}/challenge", headers=bearer(tok)).json["nonce"]
    with pytest.raises(NonceError):
        domain.take_nonce(eid, nonce, now=datetime.now(UTC) + timedelta(minutes=3))


def test_three_failed_liveness_attempts_lock_the_enrollment(client, store: Store, creds) -> None:
    enr = start_enrollment(client, creds, insert_citizen(store))
    outcomes = [verify_without_camera(client, store, enr, live=False) for _ in range(3)]
    assert [o["attempts_left"] for o in outcomes] == [2, 1, 0]
    assert [o["state"] for o in outcomes] == ["consented", "consented", "locked"]
    r = client.post(
        f"/api/v1/enrollments/{enr['enrollment_id']}/challenge",
        headers=bearer(enr["enrollment_token"]),
    )
    assert r.status_code == 423 and r.json["error"] == "enrollment_locked"


def test_issue_verify_qr_scan_suspend(client, store: Store, creds) -> None:
    card = issue_card(client, store, creds)
    header = jwt.get_unverified_header(card["card"])
    assert header["alg"] == "ES256" and header["typ"] == "ecard+jwt"
    claims = jwt.decode(card["card"], options={"verify_signature": False})
    assert claims["card_no"] == card["card_no"] and claims["sub"] != card["id_number"]
    assert card["id_number"] not in card["card"]

    ok = client.post("/api/v1/cards/verify", json={"token": card["card"]}, headers=creds.channel)
    assert ok.json["valid"] is True and ok.json["status"] == "active"
    assert ok.json["claims"]["card_no"] == card["card_no"]
    bad = client.post(
        "/api/v1/cards/verify", json={"token": card["card"][:-4] + "AAAA"}, headers=creds.verifier
    )
    assert bad.status_code == 200 and bad.json["valid"] is False and bad.json["error"]

    qr = client.post("/api/v1/cards/qr", json={"pin": "480613"}, headers=bearer(card["card"]))
    assert qr.status_code == 201 and qr.json["qr_png"] and qr.json["qr_token"]
    first = client.post(
        "/api/v1/scan", json={"qr_token": qr.json["qr_token"]}, headers=creds.hospital
    )
    assert first.json["valid"] is True and first.json["card_no"] == card["card_no"]
    assert first.json["name"] == "Li Lei" and first.json["status"] == "active"
    assert 0 < first.json["expires_in"] <= 60
    again = client.post(
        "/api/v1/scan", json={"qr_token": qr.json["qr_token"]}, headers=creds.hospital
    )
    body = dict(again.json)
    assert body.pop("used_at").endswith("Z")  # when it was first used, and at this desk
    assert again.status_code == 200 and body == {
        "valid": False,
        "error": "replayed",
        "message": "This QR code was already used.",
        "used_by": "this_desk",
    }

    wrong = client.post("/api/v1/cards/qr", json={"pin": "111222"}, headers=bearer(card["card"]))
    assert wrong.status_code == 403 and wrong.json["error"] == "wrong_pin"

    status_uri = claims["status"]["status_list"]["uri"]
    path = status_uri.split("127.0.0.1:8000", 1)[1]
    before = client.get(path)
    assert before.status_code == 200 and before.mimetype == "application/statuslist+jwt"
    r = client.post("/api/v1/cards/suspend", json={"pin": "480613"}, headers=bearer(card["card"]))
    assert r.status_code == 200 and r.json["status"] == "suspended"
    after = client.get(path)
    assert _status_at(after.data.decode(), claims["status"]["status_list"]["idx"]) == 2
    assert _status_at(before.data.decode(), claims["status"]["status_list"]["idx"]) == 0
    now = client.post("/api/v1/cards/verify", json={"token": card["card"]}, headers=creds.channel)
    assert now.json["valid"] is False and now.json["status"] == "suspended"
    r = client.post("/api/v1/cards/qr", json={"pin": "480613"}, headers=bearer(card["card"]))
    assert r.status_code == 409


def _status_at(token: str, idx: int) -> int:
    from ecard.tokens.status import StatusList

    claims = jwt.decode(token, options={"verify_signature": False})
    return int(StatusList.decode(claims["status_list"]).get(idx))


def test_login_returns_the_card_and_reissue_revokes_the_old_one(
    client, store: Store, creds
) -> None:
    first = issue_card(client, store, creds)
    r = client.post("/api/v1/cards/login", json={"card_no": first["card_no"], "pin": "480613"})
    assert r.status_code == 200 and r.json["status"] == "active"
    again = client.post(
        "/api/v1/cards/verify", json={"token": r.json["card"]}, headers=creds.channel
    )
    assert again.json["valid"] is True

    enr = start_enrollment(client, creds, first["id_number"])
    verify_without_camera(client, store, enr)
    r = client.post(
        f"/api/v1/enrollments/{enr['enrollment_id']}/pin",
        json={"pin": "902741"},
        headers=bearer(enr["enrollment_token"]),
    )
    assert r.status_code == 201 and r.json["card_no"] != first["card_no"]
    old = client.post("/api/v1/cards/verify", json={"token": first["card"]}, headers=creds.channel)
    assert old.json["valid"] is False and old.json["status"] == "revoked"
    new = client.post("/api/v1/cards/verify", json={"token": r.json["card"]}, headers=creds.channel)
    assert new.json["valid"] is True
    with store.read() as s:
        actions = s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert "revoke" in actions


@pytest.mark.parametrize(
    ("pin", "code"),
    [("123456", "pin_sequence"), ("111111", "pin_repeated"), ("12345", "pin_format")],
)
def test_weak_pins_are_refused_with_their_reason(client, store: Store, creds, pin, code) -> None:
    enr = start_enrollment(client, creds, insert_citizen(store))
    verify_without_camera(client, store, enr)
    r = client.post(
        f"/api/v1/enrollments/{enr['enrollment_id']}/pin",
        json={"pin": pin},
        headers=bearer(enr["enrollment_token"]),
    )
    assert r.status_code == 422 and r.json["error"] == code


def _parallel(n: int, fn) -> list:
    barrier = threading.Barrier(n)
    out: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        out[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_two_concurrent_issuances_give_one_card(app, store: Store, creds) -> None:
    client = app.test_client()
    number = insert_citizen(store)
    enr = start_enrollment(client, creds, number)
    verify_without_camera(client, store, enr)
    codes = _parallel(
        2,
        lambda i: (
            app.test_client()
            .post(
                f"/api/v1/enrollments/{enr['enrollment_id']}/pin",
                json={"pin": "480613"},
                headers=bearer(enr["enrollment_token"]),
            )
            .status_code
        ),
    )
    assert sorted(codes) == [201, 409]
    # Two verified enrollments of one citizen issuing at the same moment: one live card.
    a, b = start_enrollment(client, creds, number), start_enrollment(client, creds, number)
    verify_without_camera(client, store, a)
    verify_without_camera(client, store, b)
    results = _parallel(
        2,
        lambda i: (
            app.test_client()
            .post(
                f"/api/v1/enrollments/{(a, b)[i]['enrollment_id']}/pin",
                json={"pin": "480613"},
                headers=bearer((a, b)[i]["enrollment_token"]),
            )
            .status_code
        ),
    )
    assert 201 in results and set(results) <= {201, 409}
    with store.read() as s:
        live = s.scalars(select(Card).where(Card.status != "revoked")).all()
    assert len(live) == 1


def test_concurrent_wrong_pins_get_five_checks_then_a_wait(app, store: Store, creds) -> None:
    """Finding 2: a stranger with the card number alone fires wrong PINs at the unauthenticated
    login in parallel: five are checked, the rest wait; the card is never locked for good."""
    card = issue_card(app.test_client(), store, creds)
    codes = _parallel(
        10,
        lambda i: (
            app.test_client()
            .post("/api/v1/cards/login", json={"card_no": card["card_no"], "pin": f"{903100 + i}"})
            .json["error"]
        ),
    )
    assert codes.count("wrong_pin") == 4 and codes.count("pin_wait") == 6
    right = app.test_client().post(
        "/api/v1/cards/login", json={"card_no": card["card_no"], "pin": "480613"}
    )
    assert right.status_code == 429 and right.json["error"] == "pin_wait"
    assert 0 < int(right.headers["Retry-After"]) <= 60
    with store.write() as s:  # the minute passes
        s.execute(update(AttemptRow).values(next_try_at=datetime.now(UTC) - timedelta(seconds=1)))
    again = app.test_client().post(
        "/api/v1/cards/login", json={"card_no": card["card_no"], "pin": "480613"}
    )
    assert again.status_code == 200 and again.json["status"] == "active"


def _scan(client, creds, card: dict) -> str:
    qr = client.post("/api/v1/cards/qr", json={"pin": "480613"}, headers=bearer(card["card"]))
    assert qr.status_code == 201, qr.json
    scanned = client.post(
        "/api/v1/scan", json={"qr_token": qr.json["qr_token"]}, headers=creds.hospital
    )
    assert scanned.json["valid"] is True, scanned.json
    return str(scanned.json["scan_id"])


def test_right_pin_confirms_and_resets_the_count(client, store: Store, creds) -> None:
    card = issue_card(client, store, creds)
    scan_id = _scan(client, creds, card)
    for _ in range(4):
        r = client.post(
            "/api/v1/scan/confirm",
            json={"scan_id": scan_id, "pin": "000001"},
            headers=creds.hospital,
        )
        assert r.status_code == 403 and r.json["error"] == "wrong_pin"
    r = client.post(
        "/api/v1/scan/confirm", json={"scan_id": scan_id, "pin": "480613"}, headers=creds.hospital
    )
    assert r.status_code == 200 and r.json["confirmed"] is True and r.json["name"] == "Li Lei"
    scan_id = _scan(client, creds, card)
    r = client.post(
        "/api/v1/scan/confirm", json={"scan_id": scan_id, "pin": "000001"}, headers=creds.hospital
    )
    assert r.json["message"].endswith("4 tries left before a wait.")


def test_audit_log_and_database_hold_no_secrets(client, store: Store, creds) -> None:
    card = issue_card(client, store, creds, pin="480613")
    qr = client.post("/api/v1/cards/qr", json={"pin": "480613"}, headers=bearer(card["card"]))
    client.post("/api/v1/scan", json={"qr_token": qr.json["qr_token"]}, headers=creds.hospital)
    client.post("/api/v1/cards/qr", json={"pin": "999000"}, headers=bearer(card["card"]))
    with store.read() as s:
        rows = s.scalars(select(AuditEvent)).all()
        cards = s.scalars(select(Card)).all()
        enrollments = s.scalars(select(Enrollment)).all()
    text = repr(
        [(r.actor, r.action, r.outcome, r.detail, r.enrollment_id, r.card_id) for r in rows]
        + [(c.pin_hash, c.jti) for c in cards]
        + [(e.token_hash, e.nonce_hash) for e in enrollments]
    )
    assert {r.action for r in rows} >= {"authorize", "consent", "challenge", "liveness", "issue"}
    for secret in ("480613", "999000", card["enrollment_token"], card["card"], qr.json["qr_token"]):
        assert secret not in text
    assert all(r.actor.split(":")[0] in {"channel", "citizen", "hospital", "system"} for r in rows)


def test_app_opens_its_own_database_from_the_url(tmp_path, db_url: str, unloaded_models) -> None:
    from ecard.web import create_app

    app = create_app(
        {
            "ECARD_INSTANCE": str(tmp_path / "inst"),
            "ECARD_DATABASE_URL": db_url,
            "FACE_MODELS": unloaded_models,
        }
    )
    checks = app.test_client().get("/readyz").json["checks"]
    assert checks["database"] is True and checks["keys"] is True
    svc = app.extensions["ecard"]
    assert svc.store.dialect == ("sqlite" if db_url.startswith("sqlite") else "postgresql")
    svc.store.close()
