"""The hospital desk's session: login, logout, CSRF (Flask-WTF) and the desk's scan/confirm.

The desk logs in with the hospital's client credentials once; its session cookie (signed with
the instance's ``session_secret``, HttpOnly, SameSite=Strict, Secure over HTTPS) holds only the
hospital's client id and name, a fingerprint of its current secret (rotating the secret ends
every desk session), Flask-WTF's CSRF secret and the ``scan_id`` of the last valid scan (what
the PIN confirmation names). Never a PIN or a token.

CSRF: every desk form carries the Flask-WTF token (``csrf`` field) and every desk fetch the
``X-CSRF-Token`` header (:func:`flask_wtf.csrf.validate_csrf`: a signed, per-session token,
valid as long as the session); there is no app-wide ``CSRFProtect``, as the JSON API
authenticates with headers, not cookies.

Failed logins are limited per client address with the PIN counter's mechanism (an atomic
reservation in the database, :class:`ecard.store.audit.DbAttemptCounter`):
:data:`DESK_LOGIN_FAILURES` per rolling hour, however many requests race.

Scan and confirm call :class:`ecard.hospital.HospitalDesk`, exactly as ``/api/v1/scan`` does.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf, validate_csrf  # type: ignore[import-untyped]
from pydantic import Field
from wtforms.validators import ValidationError  # type: ignore[import-untyped]

from ecard.errors import AuthError, CsrfError, DeskSessionError, ForbiddenError, ScanRequiredError
from ecard.tokens.pin import LockoutPolicy
from ecard.web.apispec import DESK, parsed_json
from ecard.web.hospital import (
    confirm_answer,
    confirm_route,
    desk_service,
    qr_text,
    scan_answer,
    scan_route,
)
from ecard.web.schemas import Body

bp = Blueprint("desk", __name__)

#: A desk session ends after this long without a new login.
DESK_SESSION_HOURS = 10
#: Failed desk logins per client address in any hour before logins from it are refused.
DESK_LOGIN_FAILURES = 10
DESK_LOGIN = LockoutPolicy(
    free_tries=DESK_LOGIN_FAILURES,
    delays=(),
    window=timedelta(hours=1),
    window_limit=DESK_LOGIN_FAILURES,
    max_consecutive=None,
)
_DESK_KEYS = ("desk_id", "desk_name", "desk_fp", "scan_id")


def _services() -> Any:
    return current_app.extensions["ecard"]


# --- CSRF and the session ---------------------------------------------------------------------


def csrf_token() -> str:
    """The session's CSRF token for forms and the desk script (made on first use)."""
    return str(generate_csrf())


def check_csrf(sent: str | None) -> None:
    try:
        validate_csrf(sent)
    except ValidationError:
        raise CsrfError() from None


def _secret_fingerprint(client_id: str) -> str | None:
    """A short hash of the hospital's current secret hash: rotating the secret ends sessions."""
    from sqlalchemy import select

    from ecard.store.models import Channel

    with _services().store.read() as s:
        row = s.execute(
            select(Channel.secret_hash, Channel.scopes).where(Channel.client_id == client_id)
        ).first()
    if row is None or "scan" not in str(row.scopes).split(","):
        return None
    return hashlib.sha256(f"desk-session:{row.secret_hash}".encode()).hexdigest()[:32]


def current_desk() -> dict[str, str] | None:
    """The logged-in desk ``{"client_id", "name"}``, or None."""
    client_id, name, fp = session.get("desk_id"), session.get("desk_name"), session.get("desk_fp")
    if not (isinstance(client_id, str) and isinstance(name, str) and isinstance(fp, str)):
        return None
    current = _secret_fingerprint(client_id)
    if current is None or not hmac.compare_digest(current, fp):
        for key in _DESK_KEYS:
            session.pop(key, None)
        return None
    return {"client_id": client_id, "name": name}


def _desk_guard() -> None:
    """JSON desk routes: a live desk session and the X-CSRF-Token header, or a 401/403."""
    if current_desk() is None:
        raise DeskSessionError()
    check_csrf(request.headers.get("X-CSRF-Token"))


def _desk_page(status: int, **context: Any) -> Response:
    from ecard.web.pages import _render

    return _render("hospital.html", "desk.title", status, desk=None, csrf=csrf_token(), **context)


@bp.after_request
def _headers(resp: Response) -> Response:
    """The pages' security headers (CSP, no-store ...) on every desk route too."""
    from ecard.web.pages import _page_headers

    return _page_headers(resp)


# --- login and logout ----------------------------------------------------------------------


@bp.post("/hospital/login")
def desk_login() -> Response:
    """Log the desk in with the hospital's credentials (a form post from ``/hospital``).

    The try is reserved before the secret is checked (atomic, per client address): the
    eleventh failure within an hour is refused (429) whatever the timing of the requests."""
    check_csrf(request.form.get("csrf"))
    svc = _services()
    key = f"desk-login:{request.remote_addr or '-'}"
    if not svc.attempts.reserve(key, DESK_LOGIN, None).allowed:
        return _desk_page(429, login_error="desk.error.rate_limited")
    from ecard.channels import authenticate

    client_id = request.form.get("client_id", "").strip()[:64]
    secret = request.form.get("client_secret", "")[:200]
    try:
        who = authenticate(svc.store, client_id, secret)
        who.require("scan")
    except (AuthError, ForbiddenError):
        return _desk_page(401, login_error="desk.login_failed", client_id=client_id)
    svc.attempts.reset(key)
    fingerprint = _secret_fingerprint(who.client_id)
    session.clear()  # a fresh session (and CSRF token) on every login
    session.permanent = True
    session["desk_id"] = who.client_id
    session["desk_name"] = who.name
    session["desk_fp"] = fingerprint
    return redirect(url_for("pages.hospital"), code=303)  # type: ignore[return-value]


@bp.post("/hospital/logout")
def desk_logout() -> Response:
    check_csrf(request.form.get("csrf"))
    session.clear()
    return redirect(url_for("pages.hospital"), code=303)  # type: ignore[return-value]


# --- scan and settlement ------------------------------------------------------------------


class DeskConfirmBody(Body):
    """The PIN the patient typed on the desk keypad (the scan is the session's last one)."""

    pin: str = Field(max_length=64)


@bp.post("/hospital/scan")
@scan_route(tags=["desk"], security=DESK, guard=_desk_guard)
def desk_scan() -> Response:
    """Who is the patient (desk session): as ``POST /api/v1/scan``; the scan id is kept in the
    session for the PIN confirmation"""
    session.pop("scan_id", None)
    result = desk_service().scan(session["desk_id"], qr_text())
    if result.scan_id is not None:
        session["scan_id"] = result.scan_id
    return scan_answer(result)


@bp.post("/hospital/confirm")
@confirm_route(DeskConfirmBody, tags=["desk"], security=DESK, guard=_desk_guard)
def desk_confirm() -> Response:
    """Settlement (desk session): the patient types the PIN of the card scanned last here"""
    scan_id = session.get("scan_id")
    if not isinstance(scan_id, str):
        raise ScanRequiredError()
    done = desk_service().confirm(session["desk_id"], scan_id, parsed_json(DeskConfirmBody).pin)
    if done.confirmed:
        session.pop("scan_id", None)
    return confirm_answer(done)


# --- wiring ------------------------------------------------------------------------------------


class _DeskSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session with the Secure flag whenever the request came over HTTPS
    (a plain-HTTP laptop demo on 127.0.0.1 keeps working)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def _session_secret(app: Flask) -> bytes:
    """The cookie-signing secret: kept in the instance folder (0600), made on first run."""
    import os

    path = Path(app.instance_path) / "session_secret"
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    path.chmod(0o600)
    return data


def init_desk(app: Flask) -> None:
    """The desk session settings, Flask-WTF's CSRF settings and the desk routes on ``app``."""
    if not app.secret_key:
        app.secret_key = _session_secret(app)
    app.config.update(
        SESSION_COOKIE_NAME="ecard_desk",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=DESK_SESSION_HOURS),
        WTF_CSRF_TIME_LIMIT=DESK_SESSION_HOURS * 3600,
    )
    app.session_interface = _DeskSessionInterface()
    app.register_blueprint(bp)


__all__ = ["bp", "check_csrf", "csrf_token", "current_desk", "init_desk"]
