"""The citizen's card page in real Chromium at 360 x 740, in English and zh-CN (issue 14): a
truthful timeline (a wrong PIN at the hospital desk and a failed login are security alerts that
name where; the successful login and the scans are listed as what they were), the card number
to write down and how to get back to the card anywhere, "remove from this phone" confirmed and
apart, and the report of loss near the top with its result and the next step at the top.

The card is issued through the API of the served app (no camera: the liveness outcome is
recorded through the domain, as the service tests do).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import ID_NUMBER_17, LiveServer

pytestmark = [pytest.mark.slow]

PIN = "583920"
PHONE = {"width": 360, "height": 740}


def _basic(client: tuple[str, str]) -> dict[str, str]:
    import base64

    raw = base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _issue_card(live: LiveServer) -> dict[str, Any]:
    """A citizen row, an enrollment by the city app, a recorded liveness pass, the PIN."""
    from ecard.citizens import check_digit
    from ecard.enrollment import Enrollments
    from ecard.store.models import Citizen

    store = live.services.store
    number = ID_NUMBER_17 + check_digit(ID_NUMBER_17)
    with store.write() as s:
        s.add(
            Citizen(
                id_number=number, name="张伟", photo=b"", template=b"", created_at=datetime.now(UTC)
            )
        )
    http = live.app.test_client()
    enr = http.post(
        "/api/v1/enrollments",
        json={"id_number": number, "name": "张伟"},
        headers=_basic(live.enroll_client),
    ).json
    eid, token = enr["enrollment_id"], enr["enrollment_token"]
    consent = http.post(
        f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=_bearer(token)
    )
    assert consent.status_code == 200, consent.json
    ch = http.post(f"/api/v1/enrollments/{eid}/challenge", headers=_bearer(token))
    assert ch.status_code == 200 and "nonce" in ch.json, (ch.status_code, ch.json)
    domain = Enrollments(store)
    domain.take_nonce(eid, ch.json["nonce"])
    domain.record_liveness(eid, live=True, blinks=2, match=True, reason=None)
    card = http.post(f"/api/v1/enrollments/{eid}/pin", json={"pin": PIN}, headers=_bearer(token))
    assert card.status_code == 201, card.json
    return dict(card.json)


def _desk_and_logins(live: LiveServer, card: dict[str, Any]) -> str:
    """At the hospital: a scan, a wrong PIN, the right one; then a failed and a good login.
    Returns the current card token (the good login superseded the first one)."""
    http = live.app.test_client()
    qr = http.post("/api/v1/cards/qr", json={"pin": PIN}, headers=_bearer(card["card"]))
    assert qr.status_code == 201, qr.json
    desk = _basic(live.desk_client)
    scan = http.post("/api/v1/scan", json={"qr_token": qr.json["qr_token"]}, headers=desk)
    assert scan.status_code == 200 and scan.json["valid"], scan.json
    wrong = http.post(
        "/api/v1/scan/confirm",
        json={"scan_id": scan.json["scan_id"], "pin": "000000"},
        headers=desk,
    )
    assert wrong.status_code == 403, wrong.json
    right = http.post(
        "/api/v1/scan/confirm", json={"scan_id": scan.json["scan_id"], "pin": PIN}, headers=desk
    )
    assert right.status_code == 200, right.json
    login = {"card_no": card["card_no"], "pin": "111111"}
    assert http.post("/api/v1/cards/login", json=login).status_code == 403
    good = http.post("/api/v1/cards/login", json={**login, "pin": PIN})
    assert good.status_code == 200, good.json
    return str(good.json["card"])


def _top(page: Any, selector: str) -> float:
    """The element's top in page coordinates (px from the top of the document)."""
    return float(
        page.evaluate(
            "s => document.querySelector(s).getBoundingClientRect().top + window.scrollY", selector
        )
    )


# The fixed two-blink challenge: the test records the liveness outcome itself (no capture).
@pytest.mark.parametrize("server_env", [{"ECARD_LIVENESS_CHALLENGE": "2"}])
def test_card_page_truthful_timeline_kept_number_and_loss_first(
    chromium: Path, live_server: LiveServer, shots: Path
) -> None:
    from playwright.sync_api import sync_playwright

    card = _issue_card(live_server)
    token = _desk_and_logins(live_server, card)
    card_no = card["card_no"]
    url = live_server.url
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"], timeout=60_000
        )
        ctx = browser.new_context(
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="en-US"
        )
        page = ctx.new_page()
        page.goto(url + "/card")
        page.evaluate("t => localStorage.setItem('ecard.card', t)", token)
        page.reload()
        page.wait_for_selector("#timeline li")

        # --- the timeline says what each event was, and who did it ----------------------------
        timeline = page.inner_text("#timeline")
        assert "QR code scanned at Test hospital" in timeline
        assert "Confirmed with your PIN at Test hospital" in timeline
        assert timeline.count("Confirmed with your PIN") == 1  # the wrong PIN is not a confirmation
        assert "Application started in Test city app" in timeline
        assert timeline.count("Opened on a device with card number and PIN") == 1  # the good one
        alerts = page.locator("#alerts li").all_inner_texts()
        assert len(alerts) == 2, alerts
        assert alerts[1].startswith(
            "Someone entered a wrong PIN for your card at Test hospital at "
        )
        assert "at the card login, where your card number was typed" in alerts[0]
        assert page.locator("#timeline li.alert").count() == 2
        assert page.is_visible("#alerts-panel")
        assert _top(page, "#alerts-panel") < _top(page, "#ecard")  # seen before the card

        # --- the card number to write down, and how to get back to the card anywhere ----------
        assert page.inner_text("#card-no") == card_no  # the plain number stays
        grouped = page.inner_text("#card-no-grouped")
        assert grouped == " ".join(card_no[i : i + 4] for i in range(0, len(card_no), 4))
        assert len(card_no) == 12 and grouped.count(" ") == 2
        assert page.inner_text("#keep-panel h2") == "Write down your card number"
        way = page.inner_text("#keep-way")
        assert f"{url}/card" in way and "PIN" in way and "face check" in way
        size = page.evaluate(
            "parseFloat(getComputedStyle(document.getElementById('keep-way')).fontSize)"
        )
        assert size >= 20
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

        # --- report of loss near the top; "remove from this phone" apart and confirmed -------
        assert _top(page, "#lost-open") + 40 < PHONE["height"]  # on the first screen
        assert _top(page, "#forget") - _top(page, "#lost-open") > PHONE["height"]
        page.screenshot(path=str(shots / "card-en.png"), full_page=True)
        page.click("#forget")
        page.wait_for_selector("#forget-ask:not([hidden])")
        assert grouped in page.inner_text("#forget-warn")
        assert page.evaluate("localStorage.getItem('ecard.card')") == token  # nothing deleted yet
        page.click("#forget-no")
        assert page.is_hidden("#forget-ask")
        assert page.evaluate("localStorage.getItem('ecard.card')") == token

        page.click("#lost-open")
        page.fill("#lost-pin", PIN)
        page.click("#lost-confirm")
        page.wait_for_selector("#card-status[data-status='suspended']")
        page.wait_for_selector("#lost-result:not([hidden])")
        box = page.locator("#lost-result").bounding_box()
        assert box is not None and -2 <= box["y"] < PHONE["height"] / 2  # in view, at the top
        assert _top(page, "#lost-result") < _top(page, "#ecard")
        result = page.inner_text("#lost-result")
        assert "The card is suspended" in result
        assert "apply again in Test city app" in result
        assert page.is_visible("#next-recover")
        assert page.is_hidden("#lost-open")
        page.wait_for_selector("#timeline li:has-text('Reported lost')")
        page.screenshot(path=str(shots / "card-suspended-en.png"))

        # --- the same page in Chinese ----------------------------------------------------------
        page.click("#lang-switch")
        page.wait_for_selector("html[lang='zh-CN']")
        zh_alerts = page.locator("#alerts li").all_inner_texts()
        assert (
            zh_alerts[1].startswith("有人于 ")
            and "在Test hospital输入了您这张卡的错误密码" in zh_alerts[1]
        )
        assert "在Test hospital扫码" in page.inner_text("#timeline")
        assert "补办新卡" in page.inner_text("#lost-result")
        assert "在Test city app中重新申领" in page.inner_text("#lost-result")
        assert page.inner_text("#keep-panel h2") == "请记下您的卡号"
        assert page.inner_text("#card-no-grouped") == grouped
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.click("#large-text")  # the grouped number still fits 360 px in large text
        page.wait_for_selector("html.large")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.click("#forget")
        assert "需要卡号" in page.inner_text("#forget-warn")
        page.screenshot(path=str(shots / "card-zh.png"), full_page=True)
        page.click("#forget-yes")
        page.wait_for_selector("#s-login:not([hidden])")
        assert page.evaluate("localStorage.getItem('ecard.card')") is None
        browser.close()
