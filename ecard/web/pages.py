"""The HTML pages: ``/`` (integrators), ``/enroll/<token>`` (citizen), ``/card`` (back to the card)
and ``/hospital`` (the scanning desk; its login, session, CSRF and scan routes are in
``ecard/web/desk.py``), plus the JSON helpers the pages call (face check, card overview).

The citizen's pages keep nothing on the server: the enrollment token moves from the URL to the
tab's ``sessionStorage`` and the card token lives in the phone's ``localStorage``; both call the
JSON API with ``Authorization: Bearer``.

Every page answers with a Content-Security-Policy without ``'unsafe-inline'``: scripts and
styles come from ``/static`` only, framing is refused."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Literal

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    current_app,
    make_response,
    render_template,
    request,
)

from ecard.errors import (
    ConsentRequiredError,
    MediaTooLargeError,
)
from ecard.web.apispec import BEARER_CARD, BEARER_ENROLL, parsed_form, responses, validate
from ecard.web.schemas import CardEvent, CardOverview, FaceCheck, FaceCheckForm

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
    """The scanning desk: the login form, or the desk of the hospital logged in
    (ecard/web/desk.py keeps the session)."""
    from ecard.web.desk import csrf_token, current_desk

    return _render("hospital.html", "desk.title", desk=current_desk(), csrf=csrf_token())


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


def _face_check_guard() -> None:
    """The enrollment's Bearer token, and the agreement accepted, before the still is read."""
    from sqlalchemy import select

    from ecard.enrollment import Enrollments
    from ecard.store.models import Enrollment
    from ecard.web.http import bearer

    enrollment_id = request.form.get("enrollment_id", "")[:64]
    svc = _services()
    Enrollments(svc.store).check_token(enrollment_id, bearer())
    with svc.store.read() as s:
        state = s.scalar(select(Enrollment.state).where(Enrollment.id == enrollment_id))
    if state not in ("consented", "challenged", "capturing"):
        raise ConsentRequiredError("The face check starts after the agreement is accepted.")


@bp.post("/enroll/face-check")
@validate(
    form=FaceCheckForm,
    resp=responses({200: FaceCheck}, 400, 401, 409, 413, 415, 422, 429, 503),
    tags=["pages"],
    security=BEARER_ENROLL,
    guard=_face_check_guard,
)
def face_check() -> FaceCheck:
    """Is one face well framed in the oval? For the framing cues before "Start".

    Multipart ``frame`` (one small JPEG of what the preview shows) and ``enrollment_id``, with
    ``Authorization: Bearer <enrollment token>``; only after consent. The still is decoded,
    searched with the HOG detector, measured on the face box and dropped: nothing is stored or
    logged. Answers :func:`framing_verdict`: ``{"faces", "face_width", "box", "brightness",
    "sharpness", "verdict"}``.
    """
    from ecard.faces.images import load_photo
    from ecard.image_limits import CAMERA_FRAME

    svc = _services()
    data = parsed_form(FaceCheckForm).frame[0]
    if len(data) > FACE_CHECK_MAX_BYTES:
        raise MediaTooLargeError("The still is too large for a face check.")
    image = load_photo(data, max_side=FACE_CHECK_MAX_SIDE, limits=CAMERA_FRAME)
    del data
    boxes = svc.require_models().detect(image, upsample=0)
    return FaceCheck(**framing_verdict(image, boxes))


# --- the citizen's card: status and the application's timeline -------------------------------


@bp.get("/card/overview")
@validate(resp=responses({200: CardOverview}, 400, 401, 429), tags=["pages"], security=BEARER_CARD)
def card_overview() -> CardOverview:
    """The card's status now and the timeline of its application (``Authorization: Bearer``
    with the e-card token, which only the citizen's device holds)."""
    from dataclasses import asdict

    from ecard.cards.timeline import card_timeline
    from ecard.web.cards import card_summary, holder_card

    info = holder_card()
    timeline = card_timeline(_services().store, info.id)
    events = [CardEvent(**asdict(e)) for e in timeline]
    return CardOverview(**card_summary(info).model_dump(), events=events)


# --- wiring -----------------------------------------------------------------------------------


def init_pages(app: Flask) -> None:
    """Register the pages blueprint and the desk (session, CSRF, desk routes) on ``app``."""
    from ecard.web.desk import init_desk

    init_desk(app)
    app.register_blueprint(bp)


__all__ = ["bp", "init_pages", "pick_language"]
