"""The pages without a browser: security headers, no inline code, language choice, texts in both
languages, and the hospital desk's login, session cookie and CSRF protection."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

WEB = Path(__file__).resolve().parents[1] / "ecard" / "web"
PAGES = ["/", "/enroll", "/enroll/not-a-real-token", "/card", "/hospital"]


@pytest.fixture
def app(tmp_path: Path) -> Any:
    from ecard.web import create_app

    return create_app(
        {"ECARD_INSTANCE": str(tmp_path), "LOAD_MODELS": "0", "ECARD_RATELIMIT_ENABLED": "0"}
    )


@pytest.fixture
def client(app: Any) -> Any:
    client = app.test_client()
    client.set_cookie("ecard_lang", "en")
    return client


@pytest.fixture
def hospital(app: Any) -> Any:
    from ecard.channels import add_channel

    return add_channel(app.extensions["ecard"].store, "Test hospital", "scan")


class _InlineFinder(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block: inline scripts, style
    attributes and <style> elements, on* handlers, javascript: URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "style":
            self.found.append("<style>")
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.found.append("inline <script>")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.found.append(f"{tag}[{name}]")
            if value and value.strip().lower().startswith("javascript:"):
                self.found.append(f"{tag}[{name}=javascript:]")


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_security_headers_and_no_inline_code(client: Any, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    finder = _InlineFinder()
    finder.feed(resp.get_data(as_text=True))
    assert finder.found == []


@pytest.mark.parametrize(
    ("accept", "cookie", "lang"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh-CN"),
        ("zh-TW,zh;q=0.9", None, "zh-CN"),
        ("en-GB,en;q=0.9", None, "en"),
        ("fr-FR", None, "zh-CN"),
        (None, None, "zh-CN"),
        ("zh-CN", "en", "en"),
        ("en-US", "zh-CN", "zh-CN"),
    ],
)
def test_language_comes_from_the_switch_then_accept_language(
    app: Any, accept: str | None, cookie: str | None, lang: str
) -> None:
    client = app.test_client()
    if cookie:
        client.set_cookie("ecard_lang", cookie)
    headers = {"Accept-Language": accept} if accept else {}
    resp = client.get("/enroll", headers=headers)
    assert f'<html lang="{lang}"' in resp.get_data(as_text=True)
    assert resp.headers["Content-Language"] == lang


def _dicts() -> dict[str, dict[str, str]]:
    folder = WEB / "static" / "i18n"
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")}


def test_every_text_exists_in_both_languages() -> None:
    dicts = _dicts()
    assert set(dicts) == {"en", "zh-CN"}
    assert set(dicts["en"]) == set(dicts["zh-CN"])
    used: set[str] = set()
    for tpl in (WEB / "templates").glob("*.html"):
        text = tpl.read_text(encoding="utf-8")
        used |= set(re.findall(r'data-i18n(?:-[a-z-]+)?="([a-z_.]+[a-z])"', text))
        used |= set(re.findall(r"\bt\('([a-z_.]+)'", text))
    for js in (WEB / "static" / "js").glob("*.js"):
        used |= set(re.findall(r'\bt\("([a-z_.]*[a-z])"', js.read_text(encoding="utf-8")))
    pages_py = (WEB / "pages.py").read_text(encoding="utf-8")
    pages_py += (WEB / "desk.py").read_text(encoding="utf-8")
    used |= set(re.findall(r'(?:login_error|title_key)="([a-z_.]+)"', pages_py))
    used |= set(re.findall(r'_render\(\s*"[a-z_]+\.html",\s*"([a-z_.]+)"', pages_py))
    missing = sorted(k for k in used if k not in dicts["en"])
    assert missing == []
    assert all(v.strip() for d in dicts.values() for v in d.values() if v) is True


def test_enroll_link_opens_its_enrollment_and_an_unknown_one_opens_none(
    app: Any, client: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    from ecard.channels import add_channel
    from ecard.enrollment import hash_secret
    from ecard.store.models import Citizen, Enrollment

    store = app.extensions["ecard"].store
    add_channel(store, "City", "enroll")
    now = datetime.now(UTC)
    with store.write() as s:
        citizen = Citizen(
            id_number="11010519491231002X", name="张伟", photo=b"-", template=b"-", created_at=now
        )
        s.add(citizen)
        s.flush()
        s.add(
            Enrollment(
                id="e" * 24,
                citizen_id=citizen.id,
                channel_id=1,
                token_hash=hash_secret("the-token"),
                state="authorized",
                created_at=now,
                expires_at=now + timedelta(minutes=15),
                attempts=0,
            )
        )
    page = client.get("/enroll/the-token").get_data(as_text=True)
    assert 'data-enrollment-id="' + "e" * 24 + '"' in page
    assert "the-token" not in page
    other = client.get("/enroll/another-token").get_data(as_text=True)
    assert 'data-enrollment-id=""' in other


def _csrf(client: Any) -> str:
    page = client.get("/hospital").get_data(as_text=True)
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


def _login(client: Any, hospital: Any) -> str:
    resp = client.post(
        "/hospital/login",
        data={
            "csrf": _csrf(client),
            "client_id": hospital.client_id,
            "client_secret": hospital.client_secret,
        },
    )
    assert resp.status_code == 303
    desk = client.get("/hospital").get_data(as_text=True)
    found = re.search(r'data-csrf="([^"]+)"', desk)
    assert found, "the desk page shows after login"
    return found.group(1)


def _login_error(resp: Any) -> str:
    """The visible error of the desk login form."""
    found = re.search(r'id="login-error"[^>]*>([^<]*)<', resp.get_data(as_text=True))
    return found.group(1) if found else ""


def test_desk_login_needs_the_form_token_and_the_right_secret(client: Any, hospital: Any) -> None:
    no_csrf = client.post(
        "/hospital/login",
        data={"client_id": hospital.client_id, "client_secret": hospital.client_secret},
    )
    assert no_csrf.status_code == 403
    assert no_csrf.get_json()["error"] == "csrf_failed"
    wrong = client.post(
        "/hospital/login",
        data={"csrf": _csrf(client), "client_id": hospital.client_id, "client_secret": "nope"},
    )
    assert wrong.status_code == 401
    assert "secret is wrong" in _login_error(wrong)
    _login(client, hospital)


def test_a_channel_without_scan_scope_cannot_open_the_desk(app: Any, client: Any) -> None:
    from ecard.channels import add_channel

    city = add_channel(app.extensions["ecard"].store, "City app", "enroll,verify")
    resp = client.post(
        "/hospital/login",
        data={
            "csrf": _csrf(client),
            "client_id": city.client_id,
            "client_secret": city.client_secret,
        },
    )
    assert resp.status_code == 401


def test_desk_cookie_is_httponly_strict_and_secure_over_https(app: Any, hospital: Any) -> None:
    plain = app.test_client()
    _login(plain, hospital)
    cookie = plain.get_cookie("ecard_desk")
    assert cookie.http_only and cookie.same_site == "Strict" and not cookie.secure
    tls = app.test_client()
    page = tls.get("/hospital", base_url="https://ecard.example").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    resp = tls.post(
        "/hospital/login",
        base_url="https://ecard.example",
        data={
            "csrf": csrf.group(1),
            "client_id": hospital.client_id,
            "client_secret": hospital.client_secret,
        },
    )
    assert (
        "Secure" in resp.headers["Set-Cookie"] and "SameSite=Strict" in resp.headers["Set-Cookie"]
    )


def test_desk_scan_needs_the_session_and_its_csrf_header(client: Any, hospital: Any) -> None:
    body = {"qr_token": "not a code"}
    assert client.post("/hospital/scan", json=body).get_json()["error"] == "desk_session"
    csrf = _login(client, hospital)
    missing = client.post("/hospital/scan", json=body)
    assert (missing.status_code, missing.get_json()["error"]) == (403, "csrf_failed")
    resp = client.post("/hospital/scan", json=body, headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 200
    assert resp.get_json()["valid"] is False
    assert resp.get_json()["error"].startswith("token_")


def test_rotating_the_hospital_secret_ends_desk_sessions(
    app: Any, client: Any, hospital: Any
) -> None:
    from ecard.channels import set_channel_secret

    csrf = _login(client, hospital)
    set_channel_secret(app.extensions["ecard"].store, "Test hospital", "scan", "a-new-secret")
    resp = client.post("/hospital/scan", json={"qr_token": "x"}, headers={"X-CSRF-Token": csrf})
    assert (resp.status_code, resp.get_json()["error"]) == (401, "desk_session")
    assert 'id="desk-login"' in client.get("/hospital").get_data(as_text=True)


def test_desk_logout_ends_the_session(client: Any, hospital: Any) -> None:
    csrf = _login(client, hospital)
    page = client.get("/hospital").get_data(as_text=True)
    form_csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert form_csrf
    assert client.post("/hospital/logout", data={"csrf": form_csrf.group(1)}).status_code == 303
    resp = client.post("/hospital/scan", json={"qr_token": "x"}, headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 401


def test_card_overview_needs_the_card_token(client: Any) -> None:
    resp = client.get("/card/overview")
    assert resp.status_code == 401
    assert client.get("/card/overview", headers={"Authorization": "Bearer x.y.z"}).status_code in (
        400,
        401,
    )


def test_every_reason_code_of_the_other_parts_has_a_sentence() -> None:
    """Liveness reasons, PIN policy codes and desk answers are shown as plain sentences."""
    import ecard.errors as errors
    from ecard.liveness.result import REASONS

    dicts = _dicts()
    pin_codes = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.PinPolicyError)
    } | {errors.WrongPinError.code, errors.PinLockedError.code}
    desk_codes = {
        errors.TokenReplayedError.code,
        errors.TokenExpiredError.code,
        errors.TokenBadSignatureError.code,
        errors.QrNotFoundError.code,
        errors.UnreadableMediaError.code,
        "unknown_card",
    }
    for lang, texts in dicts.items():
        assert [r for r in (*REASONS, "no_match") if f"reason.{r}" not in texts] == [], lang
        assert [c for c in pin_codes if f"pin.{c}" not in texts] == [], lang
        assert [c for c in desk_codes if f"desk.error.{c}" not in texts] == [], lang


def test_desk_login_is_refused_after_ten_wrong_secrets(client: Any, hospital: Any) -> None:
    for _ in range(10):
        wrong = client.post(
            "/hospital/login",
            data={"csrf": _csrf(client), "client_id": hospital.client_id, "client_secret": "x"},
        )
        assert wrong.status_code == 401
    right = client.post(
        "/hospital/login",
        data={
            "csrf": _csrf(client),
            "client_id": hospital.client_id,
            "client_secret": hospital.client_secret,
        },
    )
    assert right.status_code == 429
    assert _login_error(right) == "Too many requests. Wait a moment."


class _Box:
    def __init__(self, left: int, top: int, right: int, bottom: int) -> None:
        self.left, self.top, self.right, self.bottom = left, top, right, bottom


@pytest.mark.parametrize(
    ("boxes", "level", "blur", "verdict"),
    [
        ([(110, 150, 250, 300)], 128, False, "ok"),
        ([], 128, False, "no_face"),
        ([], 20, False, "dark"),  # nothing found in a dark room: say dark, not "no face"
        ([(110, 150, 250, 300), (20, 20, 90, 95)], 128, False, "many"),
        ([(110, 150, 250, 300), (300, 20, 330, 50)], 128, False, "ok"),  # a tiny face far behind
        ([(160, 200, 220, 260)], 128, False, "far"),
        ([(0, 60, 360, 470)], 128, False, "close"),
        ([(10, 150, 150, 300)], 128, False, "off_centre"),
        ([(110, 10, 250, 130)], 128, False, "off_centre"),
        ([(110, 150, 250, 300)], 25, False, "dark"),
        ([(110, 150, 250, 300)], 240, False, "bright"),
        ([(110, 150, 250, 300)], 128, True, "blurry"),
    ],
)
def test_framing_verdict_is_measured_on_the_face(
    boxes: list[tuple[int, int, int, int]], level: int, blur: bool, verdict: str
) -> None:
    """Brightness and sharpness come from the face box (black bars around it do not matter);
    size and position are relative to the still, which is what the preview's oval covers."""
    import cv2
    import numpy as np

    from ecard.web.pages import framing_verdict

    rng = np.random.default_rng(7)
    # black bars everywhere but the face (a blurred picture is blurred all over)
    image = np.full((480, 360, 3), level if blur else 0, np.uint8)
    for b in boxes:
        x0, y0, x1, y1 = b
        noise = rng.integers(-12, 13, (y1 - y0, x1 - x0, 1))
        image[y0:y1, x0:x1] = np.clip(level + noise, 0, 255).astype(np.uint8)
    if not boxes:
        image[:] = level
    if blur:
        image = cv2.GaussianBlur(image, (0, 0), 6)
    got = framing_verdict(image, [_Box(*b) for b in boxes])
    assert got["verdict"] == verdict, got
