"""Finding 3: a settlement confirmation is bound to a recent scan of that card by that hospital,
and unknown, unscanned and foreign cards get one identical answer. The desk pages and the API
share the domain (ecard/hospital.py). Finding 10: the desk login limit holds under races."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from svc_helpers import basic, bearer, issue_card

from ecard.channels import add_channel
from ecard.store import Store
from ecard.store.models import AuditEvent, DeskScan


def _qr(client: Any, card: dict) -> str:
    qr = client.post("/api/v1/cards/qr", json={"pin": "480613"}, headers=bearer(card["card"]))
    assert qr.status_code == 201, qr.json
    return str(qr.json["qr_token"])


def _scan(client: Any, creds: Any, card: dict) -> dict:
    r = client.post("/api/v1/scan", json={"qr_token": _qr(client, card)}, headers=creds.hospital)
    assert r.status_code == 200 and r.json["valid"] is True, r.json
    return dict(r.json)


def _confirm(client: Any, headers: dict, **body: Any) -> tuple[int, str, str]:
    r = client.post("/api/v1/scan/confirm", json=body, headers=headers)
    return r.status_code, r.json.get("error", ""), r.json.get("message", "")


def test_confirm_without_a_scan_says_the_same_for_real_and_unknown_cards(
    client: Any, store: Store, creds: Any
) -> None:
    card = issue_card(client, store, creds)
    real = _confirm(client, creds.hospital, card_no=card["card_no"], pin="000001")
    unknown = _confirm(client, creds.hospital, card_no="123456789012", pin="000001")
    made_up = _confirm(client, creds.hospital, scan_id="f" * 24, pin="000001")
    assert real == unknown == made_up
    assert real[:2] == (409, "scan_required")
    with store.read() as s:  # no PIN was checked for the real card: nothing to audit
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "confirm")).all() == []


def test_confirm_needs_this_hospitals_recent_unconfirmed_scan(
    client: Any, store: Store, creds: Any
) -> None:
    card = issue_card(client, store, creds)
    other = add_channel(store, "Other hospital", "scan")
    other_headers = basic(other.client_id, other.client_secret)
    scan = _scan(client, creds, card)
    assert len(scan["scan_id"]) == 24 and scan["confirm_by"].endswith("Z")
    refused = _confirm(client, creds.hospital, scan_id="0" * 24, pin="480613")
    # another hospital cannot confirm (or try PINs on) this hospital's scan
    assert _confirm(client, other_headers, scan_id=scan["scan_id"], pin="480613") == refused
    # a wrong PIN keeps the scan; the right one settles it once
    assert _confirm(client, creds.hospital, scan_id=scan["scan_id"], pin="000001")[1] == (
        "wrong_pin"
    )
    ok = client.post(
        "/api/v1/scan/confirm",
        json={"scan_id": scan["scan_id"], "pin": "480613"},
        headers=creds.hospital,
    )
    assert ok.status_code == 200 and ok.json["confirmed"] is True
    assert _confirm(client, creds.hospital, scan_id=scan["scan_id"], pin="480613") == refused
    # a scan older than the window is refused the same way
    late = _scan(client, creds, card)
    with store.write() as s:
        s.execute(
            update(DeskScan)
            .where(DeskScan.id == late["scan_id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert _confirm(client, creds.hospital, scan_id=late["scan_id"], pin="480613") == refused


def test_the_desk_pages_scan_and_confirm_through_the_same_domain(
    app: Any, client: Any, store: Store, creds: Any
) -> None:
    hospital = add_channel(store, "Desk hospital", "scan")
    card = issue_card(client, store, creds)
    desk = app.test_client()
    page = desk.get("/hospital").get_data(as_text=True)
    form_csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert form_csrf
    login = desk.post(
        "/hospital/login",
        data={
            "csrf": form_csrf.group(1),
            "client_id": hospital.client_id,
            "client_secret": hospital.client_secret,
        },
    )
    assert login.status_code == 303
    csrf = re.search(r'data-csrf="([^"]+)"', desk.get("/hospital").get_data(as_text=True))
    assert csrf
    headers = {"X-CSRF-Token": csrf.group(1)}
    before = desk.post("/hospital/confirm", json={"pin": "480613"}, headers=headers)
    assert (before.status_code, before.json["error"]) == (409, "scan_required")
    scanned = desk.post("/hospital/scan", json={"qr_token": _qr(client, card)}, headers=headers)
    assert scanned.json["valid"] is True and scanned.json["valid_for_s"] > 0
    with store.read() as s:
        row = s.get_one(DeskScan, scanned.json["scan_id"])
    assert row.hospital == hospital.client_id
    # the API client of another hospital cannot ride on the desk's scan
    stolen = _confirm(client, creds.hospital, scan_id=row.id, pin="480613")
    assert stolen[:2] == (409, "scan_required")
    done = desk.post("/hospital/confirm", json={"pin": "480613"}, headers=headers)
    assert done.status_code == 200 and done.json["confirmed"] is True
    again = desk.post("/hospital/confirm", json={"pin": "480613"}, headers=headers)
    assert again.json["error"] == "scan_required"


def test_parallel_desk_logins_never_pass_the_limit(app: Any, store: Store) -> None:
    """Finding 10: 30 wrong logins at once from one address: at most 10 are checked (401),
    the others are refused (429); before, the check-then-act let more through."""
    hospital = add_channel(store, "Raced hospital", "scan")
    barrier = threading.Barrier(30)
    codes: list[int] = []
    lock = threading.Lock()

    def login() -> None:
        c = app.test_client()
        page = c.get("/hospital").get_data(as_text=True)
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found
        barrier.wait()
        r = c.post(
            "/hospital/login",
            data={"csrf": found.group(1), "client_id": hospital.client_id, "client_secret": "x"},
        )
        with lock:
            codes.append(r.status_code)

    threads = [threading.Thread(target=login) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes.count(401) == 10 and codes.count(429) == 20


# --- what the scan answer tells the clerk (issue 14) -------------------------------------------


def test_a_scan_shows_the_birth_date_and_a_masked_number_never_the_full_one(
    client: Any, store: Store, creds: Any
) -> None:
    card = issue_card(client, store, creds)
    number = card["id_number"]  # 110105 19850317 001 + check digit
    r = client.post("/api/v1/scan", json={"qr_token": _qr(client, card)}, headers=creds.hospital)
    assert r.json["valid"] is True
    assert r.json["id_number_masked"] == number[:4] + "*" * 10 + number[-4:]
    assert r.json["birth_date"] == "1985-03-17"
    text = r.get_data(as_text=True)
    assert number not in text and number[:6] not in text  # the district digits stay hidden


def test_a_suspended_card_says_no_validity_but_who_it_is(
    client: Any, store: Store, creds: Any
) -> None:
    card = issue_card(client, store, creds)
    code = _qr(client, card)
    sus = client.post("/api/v1/cards/suspend", json={"pin": "480613"}, headers=bearer(card["card"]))
    assert sus.status_code == 200, sus.json
    r = client.post("/api/v1/scan", json={"qr_token": code}, headers=creds.hospital)
    assert (r.json["valid"], r.json["error"], r.json["status"]) == (
        False,
        "card_suspended",
        "suspended",
    )
    assert "expires_in" not in r.json and "valid_for_s" not in r.json
    assert r.json["birth_date"] == "1985-03-17" and "scan_id" not in r.json


def test_already_used_says_when_and_whether_at_this_desk_never_the_other_hospital(
    client: Any, store: Store, creds: Any
) -> None:
    card = issue_card(client, store, creds)
    other = add_channel(store, "St. Elsewhere clinic", "scan")
    other_headers = basic(other.client_id, other.client_secret)
    code = _qr(client, card)
    before = datetime.now(UTC).replace(microsecond=0)
    first = client.post("/api/v1/scan", json={"qr_token": code}, headers=creds.hospital)
    assert first.json["valid"] is True
    here = client.post("/api/v1/scan", json={"qr_token": code}, headers=creds.hospital)
    assert (here.json["valid"], here.json["error"]) == (False, "replayed")
    assert here.json["used_by"] == "this_desk"
    used_at = datetime.fromisoformat(here.json["used_at"].replace("Z", "+00:00"))
    assert before <= used_at <= datetime.now(UTC)
    elsewhere = client.post("/api/v1/scan", json={"qr_token": code}, headers=other_headers)
    assert elsewhere.json["used_by"] == "other_desk"
    assert elsewhere.json["used_at"] == here.json["used_at"]
    assert "General hospital" not in elsewhere.get_data(as_text=True)
    assert "expires_in" not in elsewhere.json and "scan_id" not in elsewhere.json
