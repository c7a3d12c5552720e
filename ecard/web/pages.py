"""The HTML pages: ``/`` (integrators), ``/enroll/<token>`` (citizen), ``/card`` (back to the card)
and ``/hospital`` (the scanning desk), plus the desk's session, CSRF and scan routes.

The citizen's pages keep nothing on the server: the enrollment token moves from the URL to the
tab's ``sessionStorage`` and the card token lives in the phone's ``localStorage``; both call the
JSON API with ``Authorization: Bearer``. The desk logs in with the hospital's client credentials
once; its session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS) holds only the hospital's
client id, a fingerprint of its current secret (rotating the secret ends every desk session), the
CSRF token and the card number of the last valid scan (for the PIN confirmation). Never a PIN
or a token.

Every page answers with a Content-Security-Policy without ``'unsafe-inline'``: scripts and
styles come from ``/static`` only, framing is refused.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface

from ecard.errors import (
    AuthError,
    ConsentRequiredError,
    CsrfError,
    DeskSessionError,
    ForbiddenError,
    MediaTooLargeError,
    MissingFieldError,
    NotFoundError,
    StateError,
    TokenError,
    TokenReplayedError,
)

bp = Blueprint("pages", __name__)

Lang = Literal["en", "zh-CN"]
LANGS: tuple[Lang, ...] = ("zh-CN", "en")
STATIC = Path(__file__).resolve().parent / "static"

#: Content-Security-Policy of every page: nothing inline, nothing from another origin.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: A desk session ends after this long without a new login.
DESK_SESSION_HOURS = 10
#: Failed desk logins per client address and clock hour before logins from it are refused until
#: the next hour (the counter key carries the hour, so it starts afresh by itself).
DESK_LOGIN_FAILURES = 10

F = TypeVar("F", bound=Callable[..., Any])


# --- language ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=len(LANGS))
def messages(lang: Lang) -> dict[str, str]:
    """The page texts of one language (the same JSON files the browser switches between)."""
    with (STATIC / "i18n" / f"{lang}.json").open(encoding="utf-8") as fh:
        data: dict[str, str] = json.load(fh)
    return data


def pick_language(req: Request) -> Lang:
    """The ``ecard_lang`` cookie set by the switch, else the best of Accept-Language (zh-CN
    when the browser says nothing: the citizens are in China)."""
    cookie = req.cookies.get("ecard_lang")
    if cookie in LANGS:
        return "en" if cookie == "en" else "zh-CN"
    if not req.accept_languages:
        return "zh-CN"
    best = req.accept_languages.best_match(["zh-CN", "zh", "en"], default="zh-CN")
    return "en" if best == "en" else "zh-CN"


def _render(template: str, title_key: str, status: int = 200, **context: Any) -> Response:
    lang = pick_language(request)
    texts = messages(lang)

    def t(key: str, **values: Any) -> str:
        text = texts.get(key, key)
        for name, value in values.items():
            text = text.replace("{" + name + "}", str(value))
        return text

    # The dictionary is embedded as a JSON data block (not executed, so the CSP allows it);
    # "<" is escaped so that no text can close the <script> element.
    messages_json = json.dumps(texts, ensure_ascii=False).replace("<", "\\u003c")
    html = render_template(
        template,
        lang=lang,
        other_lang="en" if lang == "zh-CN" else "zh-CN",
        large=request.cookies.get("ecard_large") == "1",
        t=t,
        title_key=title_key,
        messages_json=messages_json,
        **context,
    )
    resp = make_response(html, status)
    resp.headers["Content-Language"] = lang
    resp.vary.add("Accept-Language")
    resp.vary.add("Cookie")
    return resp


@bp.after_request
def _page_headers(resp: Response) -> Response:
    """Security headers of every page and desk route (the app adds nosniff and the rest)."""
    resp.headers["Content-Security-Policy"] = PAGE_CSP
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
    if request.endpoint != "pages.index":
        resp.headers["Cache-Control"] = "no-store"
    return resp


# --- pages ------------------------------------------------------------------------------------


#: The integrators' ten lines (``/``): verify a card offline with ecard's own verifier.
OFFLINE_EXAMPLE = """\
from ecard.errors import TokenError
from ecard.tokens.verifier import OfflineVerifier

verifier = OfflineVerifier("{base}/.well-known/jwks.json", issuer="{issuer}")
try:
    result = verifier.verify(card_token)   # ES256 + kid from the JWKS, typ, iss, exp, status list
except TokenError as exc:
    print("refused:", exc.code)            # token_expired, token_bad_signature, ...
else:
    card = result.card.card
    print(card.name, card.card_no, result.status.label, "accept" if result.valid else "refuse")
"""


@bp.get("/")
def index() -> Response:
    svc = _services()  # configured origin only, never the Host header
    example = OFFLINE_EXAMPLE.format(base=svc.public_url, issuer=svc.issuer)
    return _render("index.html", "index.title", offline_example=example)


@bp.get("/enroll/<token>")
@bp.get("/enroll")
def enroll(token: str | None = None) -> Response:
    """The citizen's enrollment page. The token is read by the page's script, which moves it to
    sessionStorage and replaces the URL with ``/enroll``; the server only resolves which
    enrollment it opens (the token's hash is looked up, the token itself is not kept)."""
    enrollment_id = _enrollment_id_for(token) if token else None
    return _render("enroll.html", "enroll.title", enrollment_id=enrollment_id)


@bp.get("/card")
def card() -> Response:
    return _render("card.html", "card.title")


@bp.get("/hospital")
def hospital() -> Response:
    desk = _desk()
    return _render("hospital.html", "desk.title", desk=desk, csrf=_csrf_token())


def _enrollment_id_for(token: str) -> str | None:
    """The id of the enrollment this bearer token opens, or None (the page then says the link
    is no longer valid)."""
    from sqlalchemy import select

    from ecard.enrollment import hash_secret
    from ecard.store.models import Enrollment

    if len(token) > 512:
        return None
    digest = hash_secret(token)
    with _services().store.read() as s:
        found = s.scalar(select(Enrollment.id).where(Enrollment.token_hash == digest))
    return str(found) if found is not None else None


def _services() -> Any:
    return current_app.extensions["ecard"]


# --- the camera screen's framing check (before "Start") ---------------------------------------

#: Largest still accepted by the face check, in bytes and pixels a side.
FACE_CHECK_MAX_BYTES = 200_000
FACE_CHECK_MAX_SIDE = 480

#: Framing rules, on the still the page sends: exactly what its 3:4 preview shows, so positions
#: are relative to the oval (CSS ``.camera .oval``: centre at 50 % across, 47 % down). The HOG
#: box spans brows to chin; phone selfies at arm's length give 0.4-0.6 of the still's width.
FACE_MIN_WIDTH = 0.28  # smaller: "too far" (the face is too small for landmarks)
FACE_MAX_WIDTH = 0.78  # larger, or cut by two edges of the picture: "too close"
FACE_MAX_OFF_X = 0.17  # |centre - 0.5| across, as a fraction of the width: "off centre"
FACE_Y_RANGE = (0.28, 0.68)  # the box centre's height, as a fraction of the height
SECOND_FACE_RATIO = 0.4  # a second face at least this wide (vs. the first) counts
#: Mean brightness (0-255) of the face box itself, not of the whole picture: black bars or a
#: bright window behind the person do not matter, a dark or burnt-out face does.
FACE_DARK, FACE_BRIGHT = 50.0, 215.0
#: Variance of the Laplacian of the face box scaled to 96 x 96: sharp phone faces give 60-800,
#: a face blurred by shake or a smeared lens under 15.
FACE_BLURRY = 12.0
#: No face found and the whole picture this dark: say "too dark", not "no face".
SCENE_DARK = 50.0


def framing_verdict(image: Any, boxes: list[Any]) -> dict[str, Any]:
    """How well the largest face in ``image`` (RGB uint8, the preview's 3:4 still) is framed.

    ``boxes``: the faces found (largest first, objects with left/top/right/bottom). Returns the
    measurements and a ``verdict`` the page shows and speaks: ``ok``, ``no_face``, ``many``,
    ``far``, ``close``, ``off_centre``, ``dark``, ``bright`` or ``blurry`` (checked in that
    order: the first thing to fix comes first).
    """
    import cv2
    import numpy as np

    h, w = image.shape[:2]
    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if not boxes:
        verdict = "dark" if float(gray.mean()) < SCENE_DARK else "no_face"
        return {"faces": 0, "face_width": 0.0, "verdict": verdict}
    face = boxes[0]
    x0, y0 = max(0, int(face.left)), max(0, int(face.top))
    x1, y1 = min(w, int(face.right)), min(h, int(face.bottom))
    width = (x1 - x0) / w
    cx, cy = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h
    patch = gray[y0:y1, x0:x1]
    brightness = float(patch.mean()) if patch.size else 0.0
    sharpness = 0.0
    if patch.size:
        small = cv2.resize(patch, (96, 96), interpolation=cv2.INTER_AREA).astype(np.float32)
        sharpness = float(cv2.Laplacian(small, cv2.CV_32F).var())
    others = [b for b in boxes[1:] if (b.right - b.left) >= SECOND_FACE_RATIO * (x1 - x0)]
    cut = sum((x0 <= 0, y0 <= 0, x1 >= w, y1 >= h))
    if others:
        verdict = "many"
    elif width < FACE_MIN_WIDTH:
        verdict = "far"
    elif width > FACE_MAX_WIDTH or cut >= 2:
        verdict = "close"
    elif abs(cx - 0.5) > FACE_MAX_OFF_X or not FACE_Y_RANGE[0] <= cy <= FACE_Y_RANGE[1]:
        verdict = "off_centre"
    elif brightness < FACE_DARK:
        verdict = "dark"
    elif brightness > FACE_BRIGHT:
        verdict = "bright"
    elif sharpness < FACE_BLURRY:
        verdict = "blurry"
    else:
        verdict = "ok"
    return {
        "faces": 1 + len(others),
        "face_width": round(width, 3),
        "box": [round(x0 / w, 3), round(y0 / h, 3), round(width, 3), round((y1 - y0) / h, 3)],
        "brightness": round(brightness, 1),
        "sharpness": round(sharpness, 1),
        "verdict": verdict,
    }


@bp.post("/enroll/face-check")
def face_check() -> Response:
    """Is one face well framed in the oval? For the framing cues before "Start".

    Multipart ``frame`` (one small JPEG of what the preview shows) and ``enrollment_id``, with
    ``Authorization: Bearer <enrollment token>``; only after consent. The still is decoded,
    searched with the HOG detector, measured on the face box and dropped: nothing is stored or
    logged. Answers :func:`framing_verdict`: ``{"faces", "face_width", "box", "brightness",
    "sharpness", "verdict"}``.
    """
    from sqlalchemy import select

    from ecard.enrollment import Enrollments
    from ecard.faces.images import load_photo
    from ecard.store.models import Enrollment
    from ecard.web.http import bearer

    enrollment_id = request.form.get("enrollment_id", "")[:64]
    svc = _services()
    Enrollments(svc.store).check_token(enrollment_id, bearer())
    with svc.store.read() as s:
        state = s.scalar(select(Enrollment.state).where(Enrollment.id == enrollment_id))
    if state not in ("consented", "challenged", "capturing"):
        raise ConsentRequiredError("The face check starts after the agreement is accepted.")
    frames = request.files.getlist("frame")
    if len(frames) != 1:
        raise MissingFieldError("Send exactly one 'frame' JPEG.")
    data = frames[0].read(FACE_CHECK_MAX_BYTES + 1)
    if len(data) > FACE_CHECK_MAX_BYTES:
        raise MediaTooLargeError("The still is too large for a face check.")
    image = load_photo(data, max_side=FACE_CHECK_MAX_SIDE)
    del data
    boxes = svc.require_models().detect(image, upsample=0)
    return jsonify(**framing_verdict(image, boxes))


# --- the desk's session and CSRF ----------------------------------------------------------------


def _csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _check_csrf(sent: str | None) -> None:
    expected = session.get("csrf")
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(sent, expected):
        raise CsrfError()


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


def _desk() -> dict[str, str] | None:
    """The logged-in desk ``{"client_id", "name"}``, or None."""
    client_id, name, fp = session.get("desk_id"), session.get("desk_name"), session.get("desk_fp")
    if not (isinstance(client_id, str) and isinstance(name, str) and isinstance(fp, str)):
        return None
    current = _secret_fingerprint(client_id)
    if current is None or not hmac.compare_digest(current, fp):
        for key in ("desk_id", "desk_name", "desk_fp", "scan_card"):
            session.pop(key, None)
        return None
    return {"client_id": client_id, "name": name}


def _desk_required(view: F) -> F:
    """JSON desk routes: a live desk session and the X-CSRF-Token header, or a 401/403."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _desk() is None:
            raise DeskSessionError()
        _check_csrf(request.headers.get("X-CSRF-Token"))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@bp.post("/hospital/login")
def desk_login() -> Response:
    _check_csrf(request.form.get("csrf"))
    svc = _services()
    key = f"desk-login:{request.remote_addr or '-'}:{datetime.now(UTC):%Y%m%d%H}"
    if svc.attempts.failures(key) >= DESK_LOGIN_FAILURES:
        return _render(
            "hospital.html",
            "desk.title",
            429,
            desk=None,
            csrf=_csrf_token(),
            login_error="desk.error.rate_limited",
        )
    from ecard.channels import authenticate

    client_id = request.form.get("client_id", "").strip()[:64]
    secret = request.form.get("client_secret", "")[:200]
    try:
        who = authenticate(svc.store, client_id, secret)
        who.require("scan")
    except (AuthError, ForbiddenError):
        svc.attempts.fail(key)
        return _render(
            "hospital.html",
            "desk.title",
            401,
            desk=None,
            csrf=_csrf_token(),
            login_error="desk.login_failed",
            client_id=client_id,
        )
    svc.attempts.reset(key)
    fingerprint = _secret_fingerprint(who.client_id)
    session.clear()  # a fresh session (and CSRF token) on every login
    session.permanent = True
    session["desk_id"] = who.client_id
    session["desk_name"] = who.name
    session["desk_fp"] = fingerprint
    _csrf_token()
    return redirect(url_for("pages.hospital"), code=303)  # type: ignore[return-value]


@bp.post("/hospital/logout")
def desk_logout() -> Response:
    _check_csrf(request.form.get("csrf"))
    session.clear()
    return redirect(url_for("pages.hospital"), code=303)  # type: ignore[return-value]


# --- the desk's scans and settlement ---------------------------------------------------------


def _desk_qr_text() -> str:
    """The QR text of a desk request: JSON ``{"qr_token"}`` (handheld scanner) or a multipart
    ``image`` (desk camera frame or uploaded picture, decoded here on the server)."""
    from ecard.tokens.qr import decode_qr_image

    if request.mimetype == "multipart/form-data":
        images = request.files.getlist("image")
        if len(images) != 1:
            raise MissingFieldError("Send exactly one 'image' file.")
        return decode_qr_image(images[0].read())
    body = request.get_json(silent=True)
    token = body.get("qr_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token.strip() or len(token) > 2048:
        raise MissingFieldError("Send JSON {\"qr_token\"} or a multipart 'image'.")
    return token.strip()


@bp.post("/hospital/scan")
@_desk_required
def desk_scan() -> Response:
    """Who is the patient: the QR code is verified and spent once, as ``POST /api/v1/scan``
    does for an API client; the card number is kept in the session for the PIN confirmation."""
    from ecard.tokens.qr import verify_qr

    svc = _services()
    desk = session["desk_id"]
    session.pop("scan_card", None)
    text = _desk_qr_text()
    cards = svc.cards()
    actor = f"hospital:{desk}"
    try:
        qr = verify_qr(text, svc.require_keys(), issuer=svc.issuer, replay_guard=svc.replay)
    except TokenReplayedError as exc:
        cards.audit(actor, "scan", "replayed", None)
        return jsonify(valid=False, error=exc.code, message=exc.message)
    except TokenError as exc:
        return jsonify(valid=False, error=exc.code, message=exc.message)
    try:
        card = cards.by_number(qr.card_no)
    except NotFoundError:
        return jsonify(valid=False, error="unknown_card", message="This card was not issued here.")
    cards.audit(actor, "scan", card.status, card.id)
    now = datetime.now(UTC).timestamp()
    if card.status == "active":
        session["scan_card"] = card.card_no
    return jsonify(
        valid=card.status == "active",
        card_no=card.card_no,
        name=card.name,
        id_number_masked=card.id_number_masked,
        status=card.status,
        valid_for_s=max(0, int(qr.expires_at - now)),
    )


@bp.post("/hospital/confirm")
@_desk_required
def desk_confirm() -> Response:
    """Settlement: the patient types the PIN of the card scanned last at this desk."""
    card_no = session.get("scan_card")
    if not isinstance(card_no, str):
        raise StateError("Scan the patient's code first.")
    body = request.get_json(silent=True)
    pin = body.get("pin") if isinstance(body, dict) else None
    if not isinstance(pin, str) or len(pin) > 64:
        raise MissingFieldError("The field 'pin' is required.")
    svc = _services()
    cards = svc.cards()
    card = cards.by_number(card_no)
    actor = f"hospital:{session['desk_id']}"
    cards.check_pin(card.id, pin, actor=actor, action="confirm")
    if card.status != "active":
        return jsonify(confirmed=False, card_no=card.card_no, status=card.status)
    cards.audit(actor, "confirm", "confirmed", card.id)
    session.pop("scan_card", None)
    return jsonify(confirmed=True, card_no=card.card_no, name=card.name, status=card.status)


# --- the citizen's card: status and the application's timeline -------------------------------

@bp.get("/card/overview")
def card_overview() -> Response:
    """The card's status now and the timeline of its application (``Authorization: Bearer``
    with the e-card token, which only the citizen's device holds)."""
    from ecard.cards.timeline import card_timeline
    from ecard.web.cards import card_summary, holder_card

    info = holder_card()
    timeline = card_timeline(_services().store, info.id)
    events = [
        {"at": e.at.isoformat().replace("+00:00", "Z"), "action": e.action, "outcome": e.outcome}
        for e in timeline
    ]
    return jsonify(**card_summary(info), events=events)


# --- wiring -----------------------------------------------------------------------------------


class _DeskSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session with the Secure flag whenever the request came over HTTPS
    (a plain-HTTP laptop demo on 127.0.0.1 keeps working)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def _session_secret(app: Flask) -> bytes:
    """The cookie-signing secret: kept in the instance folder (0600), made on first run."""
    path = Path(app.instance_path) / "session_secret"
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(32)
    path.write_bytes(data)
    path.chmod(0o600)
    return data


def init_pages(app: Flask) -> None:
    """Register the pages blueprint and the desk session settings on ``app``."""
    if not app.secret_key:
        app.secret_key = _session_secret(app)
    app.config.update(
        SESSION_COOKIE_NAME="ecard_desk",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=DESK_SESSION_HOURS),
    )
    app.session_interface = _DeskSessionInterface()
    app.register_blueprint(bp)


__all__ = ["bp", "init_pages", "pick_language"]
