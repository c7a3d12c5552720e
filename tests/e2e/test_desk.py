"""The hospital desk in real headless Chromium at 1280 x 800, in English then zh-CN (issue 14):
what the clerk sees of a valid, a replayed and a suspended code, and the desk's keyboard and
touch targets.

The card is issued without a camera (consent and challenge through the API, the liveness
outcome recorded through the domain, as the service tests do): the desk is what is tested here.
The codes reach the desk as a clerk's devices send them: a picture chosen with the keyboard
through the upload button, and a handheld scanner typing into the scanner field.
Screenshots go to tests/_artifacts/e2e/<test>/.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import CHROMIUM, ID_NUMBER_17, LiveServer

NAME = "王芳"
PIN = "583920"
DESK = {"width": 1280, "height": 800}


def _issue_card(server: LiveServer) -> tuple[str, str, str]:
    """(id number, card number, card token) of a card issued through the API."""
    from ecard.citizens import check_digit
    from ecard.enrollment import Enrollments
    from ecard.store.models import Citizen

    id_number = ID_NUMBER_17 + check_digit(ID_NUMBER_17)  # born 1949-12-31
    store = server.services.store
    with store.write() as s:
        s.add(
            Citizen(
                id_number=id_number,
                name=NAME,
                photo=b"",
                template=b"",
                created_at=datetime.now(UTC),
            )
        )
    enr = server.start_enrollment(id_number, NAME)
    eid, token = enr["enrollment_id"], enr["enrollment_token"]
    api = server.app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    state = api.get(f"/api/v1/enrollments/{eid}", headers=auth).json["state"]
    if state == "authorized":
        consent = api.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=auth)
        assert consent.status_code == 200, consent.json
    ch = api.post(f"/api/v1/enrollments/{eid}/challenge", headers=auth)
    assert ch.status_code == 200, ch.json
    domain = Enrollments(store)
    domain.take_nonce(eid, ch.json["nonce"])
    domain.record_liveness(eid, live=True, blinks=2, match=True, reason=None)
    done = api.post(f"/api/v1/enrollments/{eid}/pin", json={"pin": PIN}, headers=auth)
    assert done.status_code == 201, done.json
    return id_number, str(done.json["card_no"]), str(done.json["card"])


def _qr(server: LiveServer, card_token: str) -> str:
    r = server.app.test_client().post(
        "/api/v1/cards/qr", json={"pin": PIN}, headers={"Authorization": f"Bearer {card_token}"}
    )
    assert r.status_code == 201, r.json
    return str(r.json["qr_token"])


def _scan_with_scanner(page: Any, code: str, result: str) -> None:
    page.wait_for_selector("#scan-input:focus")
    page.keyboard.type(code, delay=0)
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#patient[data-result='{result}']")


# The one-shot challenge lets the card be issued without a camera (the desk is tested here).
@pytest.mark.parametrize("server_env", [{"ECARD_LIVENESS_CHALLENGE": "2"}])
def test_desk_answers_what_a_clerk_needs(
    chromium: Path, live_server: LiveServer, tmp_path: Path, shots: Path
) -> None:
    from playwright.sync_api import sync_playwright

    from ecard.tokens.qr import render_png

    url = live_server.url
    id_number, card_no, card_token = _issue_card(live_server)
    first = _qr(live_server, card_token)
    picture = tmp_path / "qr1.png"
    picture.write_bytes(render_png(first))
    later = _qr(live_server, card_token)  # shown after the card was reported lost
    masked = id_number[:4] + "*" * 10 + id_number[-4:]

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            timeout=60_000,
        )
        try:
            page = browser.new_context(viewport=DESK, locale="en-US").new_page()
            page.set_default_timeout(30_000)
            # Intercept file choosers from the start: Playwright turns interception on without
            # waiting for it, so a listener added just before the key press can miss the dialog.
            choosers: list[Any] = []
            page.on("filechooser", lambda fc: choosers.append(fc))
            page.goto(url + "/hospital")
            page.fill("#client_id", live_server.desk_client[0])
            page.fill("#client_secret", live_server.desk_client[1])
            page.click("#desk-login button[type=submit]")
            page.wait_for_selector("#scan-input:focus")

            # 6. touch targets of the top bar and the desk bar: at least 48 px tall
            for sel in ("#lang-switch", "#large-text", ".deskbar button"):
                box = page.locator(sel).bounding_box()
                assert box and box["height"] >= 47.5 and box["width"] >= 47.5, (sel, box)

            # 5. the upload is a real button: Tab reaches it, its focus is drawn, Enter opens
            # the file chooser (before, focus went to an off-screen 1 x 1 input)
            for _ in range(5):
                page.keyboard.press("Tab")
                if page.evaluate("document.activeElement.id") == "upload-button":
                    break
            assert page.evaluate("document.activeElement.id") == "upload-button"
            outline = page.evaluate(
                "(() => { const s = getComputedStyle(document.activeElement);"
                " return [s.outlineStyle, parseFloat(s.outlineWidth)]; })()"
            )
            assert outline[0] != "none" and outline[1] >= 2, outline
            page.screenshot(path=str(shots / "01-upload-focus.png"))
            with page.expect_file_chooser() as chooser:
                page.keyboard.press("Enter")
            assert choosers == [chooser.value]
            chooser.value.set_files(str(picture))
            page.wait_for_selector("#patient[data-result='valid']", timeout=60_000)

            # 3. the masked ID number with the birth date, to compare with the patient's ID
            assert page.inner_text("#patient-name") == NAME
            assert page.inner_text("#patient-card") == card_no
            assert page.inner_text("#patient-id") == f"{masked} · born 1949-12-31"
            assert id_number not in page.content()
            assert "still valid" in page.inner_text("#patient-validity")
            page.screenshot(path=str(shots / "02-valid.png"))

            # 2. already used: when, and that it was at this desk
            page.click("#h-scan")  # the scanner field takes the focus back
            _scan_with_scanner(page, first, "replayed")
            state = page.inner_text("#patient-state")
            assert re.search(r"already used at \d\d:\d\d at your desk \(just now\)", state), state
            assert page.inner_text("#patient-validity") == ""
            with page.expect_response(lambda r: r.url.endswith("/hospital/scan")):
                page.set_input_files("#upload", str(picture))  # the hidden input takes files
            page.wait_for_selector("#patient[data-result='replayed']")
            assert "at your desk" in page.inner_text("#patient-state")

            # 1. a suspended card: who it is, but no "valid for N seconds"
            suspend = live_server.app.test_client().post(
                "/api/v1/cards/suspend",
                json={"pin": PIN},
                headers={"Authorization": f"Bearer {card_token}"},
            )
            assert suspend.status_code == 200, suspend.json
            _scan_with_scanner(page, later, "suspended")
            assert "SUSPENDED" in page.inner_text("#patient-state")
            assert page.inner_text("#patient-validity") == ""
            assert page.inner_text("#patient-id").startswith(masked)
            page.screenshot(path=str(shots / "03-suspended.png"))

            # 4. zh-CN: the desk label is translated (the hospital's name stays), and so is
            # the answer on screen
            page.click("#lang-switch")
            page.wait_for_selector("html[lang='zh-CN']")
            bar = page.inner_text("#desk-name")
            assert bar.startswith("扫码台：") and "Test hospital" in bar and "Desk" not in bar
            assert page.inner_text("#upload-button") == "上传手机屏幕的照片"
            assert "已挂失" in page.inner_text("#patient-state")
            assert page.inner_text("#patient-id") == f"{masked} · 出生日期 1949-12-31"
            assert page.inner_text("#patient-validity") == ""
            box = page.locator("#lang-switch").bounding_box()
            assert box and box["height"] >= 47.5
            page.click("#h-scan")
            _scan_with_scanner(page, first, "replayed")
            state = page.inner_text("#patient-state")
            assert re.search(r"此码已于 \d\d:\d\d 在本扫码台使用过（刚刚）", state), state
            page.screenshot(path=str(shots / "04-replayed-zh.png"))
        finally:
            browser.close()
