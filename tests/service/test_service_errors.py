"""Every error path answers JSON {"error", "message"} with the right 4xx, never a 5xx."""

from __future__ import annotations

import io

import pytest
from svc_helpers import bearer, insert_citizen, issue_card, start_enrollment

from ecard.store import Store


def _is_error(r, status: int, code: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.data[:200])
    assert r.mimetype == "application/json"
    assert set(r.json) == {"error", "message"} and r.json["message"]
    if code is not None:
        assert r.json["error"] == code


@pytest.fixture
def enrolled(client, store: Store, creds) -> dict:
    return start_enrollment(client, creds, insert_citizen(store))


def test_malformed_json(client, creds) -> None:
    r = client.post(
        "/api/v1/enrollments",
        data=b'{"id_number": ',
        content_type="application/json",
        headers=creds.channel,
    )
    _is_error(r, 400, "malformed_json")
    r = client.post(
        "/api/v1/enrollments",
        data=b"\xff\xfe",
        content_type="application/json",
        headers=creds.channel,
    )
    _is_error(r, 400, "malformed_json")
    r = client.post("/api/v1/enrollments", json=["a list"], headers=creds.channel)
    _is_error(r, 400, "bad_request")


def test_wrong_content_type(client, creds) -> None:
    r = client.post(
        "/api/v1/enrollments",
        data="id_number=1",
        headers=creds.channel,
        content_type="application/x-www-form-urlencoded",
    )
    _is_error(r, 415, "unsupported_media_type")
    r = client.post(
        "/api/v1/cards/verify", data="token", headers=creds.channel, content_type="text/plain"
    )
    _is_error(r, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "missing_field"),
        ({"id_number": "11010519491231002X"}, 400, "missing_field"),
        ({"id_number": 11010519491231002, "name": "x"}, 422, "invalid_field"),
        ({"id_number": "110105194912310021", "name": "Li Lei"}, 422, "invalid_id_number"),
        ({"id_number": "11010519491231002X", "name": "Nobody"}, 404, "citizen_not_found"),
        ({"id_number": "11010519491231002X", "name": "x" * 300}, 422, "invalid_name"),
    ],
)
def test_authorize_field_errors(client, creds, body, status, code) -> None:
    _is_error(client.post("/api/v1/enrollments", json=body, headers=creds.channel), status, code)


def test_name_must_match_the_registry(client, store: Store, creds) -> None:
    number = insert_citizen(store, name="Li Lei")
    r = client.post(
        "/api/v1/enrollments",
        json={"id_number": number, "name": "Han Meimei"},
        headers=creds.channel,
    )
    _is_error(r, 404, "citizen_not_found")


def test_huge_body_is_refused(tmp_path, store: Store, creds, unloaded_models) -> None:
    from svc_helpers import app_config

    from ecard.web import create_app

    app = create_app(app_config(tmp_path, store, unloaded_models, ECARD_MAX_BODY_BYTES="4096"))
    r = app.test_client().post(
        "/api/v1/enrollments",
        data=b'{"id_number": "' + b"1" * 10_000 + b'"}',
        content_type="application/json",
        headers=creds.channel,
    )
    _is_error(r, 413, "request_too_large")


def test_bad_multipart_uploads(client, store: Store, enrolled) -> None:
    eid, tok = enrolled["enrollment_id"], enrolled["enrollment_token"]
    url = f"/api/v1/enrollments/{eid}/liveness"
    client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
    # Not yet challenged: refused before the upload is looked at.
    _is_error(client.post(url, data={"nonce": "x"}, headers=bearer(tok)), 409, "wrong_state")
    nonce = client.post(f"/api/v1/enrollments/{eid}/challenge", headers=bearer(tok)).json["nonce"]
    _is_error(client.post(url, json={"nonce": nonce}, headers=bearer(tok)), 415)
    mp = "multipart/form-data"
    r = client.post(url, data={"x": "y"}, headers=bearer(tok), content_type=mp)
    _is_error(r, 400, "missing_field")
    r = client.post(url, data={"nonce": nonce}, headers=bearer(tok), content_type=mp)
    _is_error(r, 400, "missing_field")
    r = client.post(url, data=b"--nope\r\n garbage", headers=bearer(tok), content_type=mp)
    _is_error(r, 400)
    both = {
        "nonce": nonce,
        "video": (io.BytesIO(b"abc"), "clip.mp4"),
        "frames": (io.BytesIO(b"abc"), "f1.jpg"),
    }
    _is_error(client.post(url, data=both, headers=bearer(tok)), 400, "missing_field")
    frames = {"nonce": nonce, "frames": [(io.BytesIO(b"not a jpeg"), "f1.jpg")]}
    _is_error(client.post(url, data=frames, headers=bearer(tok)), 422, "unreadable_media")
    video = {"nonce": nonce, "video": (io.BytesIO(b"not a video at all"), "clip.mp4")}
    _is_error(client.post(url, data=video, headers=bearer(tok)), 422, "unreadable_media")
    stamps = {
        "nonce": nonce,
        "frames": [(io.BytesIO(_jpeg(64, 48)), "a.jpg"), (io.BytesIO(_jpeg(64, 48)), "b.jpg")],
        "timestamps_ms": "[0, 1, 2]",
    }
    _is_error(client.post(url, data=stamps, headers=bearer(tok)), 422, "invalid_field")
    fps = {"nonce": nonce, "frames": [(io.BytesIO(_jpeg(64, 48)), "a.jpg")], "fps": "fast"}
    _is_error(client.post(url, data=fps, headers=bearer(tok)), 422, "invalid_field")
    big = {"nonce": nonce, "frames": [(io.BytesIO(_jpeg(2400, 100)), "a.jpg")]}
    _is_error(client.post(url, data=big, headers=bearer(tok)), 413, "media_too_large")
    many = {"nonce": nonce, "frames": [(io.BytesIO(_jpeg(8, 8)), f"{i}.jpg") for i in range(301)]}
    _is_error(client.post(url, data=many, headers=bearer(tok)), 413, "media_too_large")
    # None of these consumed the nonce or counted an attempt.
    shown = client.get(f"/api/v1/enrollments/{eid}", headers=bearer(tok)).json
    assert shown["state"] == "challenged" and shown["attempts_left"] == 3


def _jpeg(w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), (90, 90, 90)).save(buf, "JPEG")
    return buf.getvalue()


def test_unknown_ids(client, creds, enrolled) -> None:
    tok = enrolled["enrollment_token"]
    _is_error(client.get("/api/v1/enrollments/nope", headers=bearer(tok)), 401, "unauthorized")
    _is_error(client.get("/api/v1/enrollments/nope", headers=creds.channel), 404, "not_found")
    _is_error(client.get("/api/v1/status-lists/999"), 404, "not_found")
    _is_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    # an unknown card number answers as a wrong PIN (no card-existence oracle on the login)
    r = client.post("/api/v1/cards/login", json={"card_no": "000000000", "pin": "480613"})
    _is_error(r, 403, "wrong_pin")
    # an unknown card answers as an unscanned one (finding 3: no card-existence oracle)
    r = client.post(
        "/api/v1/scan/confirm", json={"card_no": "1", "pin": "1"}, headers=creds.hospital
    )
    _is_error(r, 409, "scan_required")


def test_wrong_method(client) -> None:
    _is_error(client.delete("/api/v1/enrollments"), 405, "method_not_allowed")
    _is_error(client.get("/api/v1/cards/verify"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic"},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic Zm9v"},  # "foo": no colon
        {"Authorization": "Bearer abc"},
    ],
)
def test_missing_or_malformed_credentials(client, headers) -> None:
    r = client.post("/api/v1/cards/verify", json={"token": "x"}, headers=headers)
    _is_error(r, 401, "unauthorized")


def test_wrong_credentials_and_scopes(client, store: Store, creds, enrolled) -> None:
    _is_error(client.post("/api/v1/cards/verify", json={"token": "x"}, headers=creds.wrong), 401)
    _is_error(
        client.post("/api/v1/cards/verify", json={"token": "x"}, headers=creds.hospital),
        403,
        "forbidden",
    )
    _is_error(
        client.post("/api/v1/scan", json={"qr_token": "x"}, headers=creds.channel), 403, "forbidden"
    )
    _is_error(client.post("/api/v1/enrollments", json={}, headers=creds.verifier), 403, "forbidden")
    # An enrollment token opens only its own enrollment; another channel cannot read it.
    other = start_enrollment(client, creds, insert_citizen(store, seq=2))
    r = client.get(
        f"/api/v1/enrollments/{enrolled['enrollment_id']}",
        headers=bearer(other["enrollment_token"]),
    )
    _is_error(r, 401, "unauthorized")
    r = client.get(f"/api/v1/enrollments/{enrolled['enrollment_id']}", headers=creds.verifier)
    _is_error(r, 403, "forbidden")
    _is_error(client.post("/api/v1/cards/qr", json={"pin": "1"}, headers=bearer("x.y.z")), 400)
    _is_error(client.post("/api/v1/cards/qr", json={"pin": "1"}), 401, "unauthorized")


def test_a_card_token_is_not_an_enrollment_token(client, store: Store, creds) -> None:
    card = issue_card(client, store, creds)
    r = client.get(f"/api/v1/enrollments/{card['enrollment_id']}", headers=bearer(card["card"]))
    _is_error(r, 401, "unauthorized")
    r = client.post(
        "/api/v1/cards/qr", json={"pin": "480613"}, headers=bearer(card["enrollment_token"])
    )
    assert r.status_code in (400, 401) and r.json["error"].startswith("token_")


def test_scan_errors(client, creds) -> None:
    r = client.post("/api/v1/scan", json={"qr_token": "NOT.A.QR"}, headers=creds.hospital)
    assert r.status_code == 200 and r.json["valid"] is False and r.json["error"].startswith("token")
    r = client.post(
        "/api/v1/scan", data={"image": (io.BytesIO(_jpeg(64, 64)), "x.jpg")}, headers=creds.hospital
    )
    _is_error(r, 422, "qr_not_found")
    r = client.post("/api/v1/scan", data="x", content_type="text/plain", headers=creds.hospital)
    _is_error(r, 415, "unsupported_media_type")


def test_405_keeps_allow_and_sends_no_retry_after(client) -> None:
    r = client.delete("/api/v1/enrollments")
    _is_error(r, 405, "method_not_allowed")
    assert "POST" in r.headers["Allow"]
    assert "Retry-After" not in r.headers


DEEP = b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/api/v1/cards/login", None),  # unauthenticated
        ("/api/v1/enrollments", "channel"),
        ("/api/v1/cards/verify", "channel"),
        ("/api/v1/scan/confirm", "hospital"),
    ],
)
@pytest.mark.parametrize("body", [DEEP, b'{"pin": ' + DEEP + b"}", b"[" * 40 + b"]" * 40])
def test_deeply_nested_json_is_a_4xx(client, creds, path, who, body) -> None:
    headers = getattr(creds, who) if who else {}
    r = client.post(path, data=body, content_type="application/json", headers=headers)
    _is_error(r, 400, "json_too_deep")


def test_a_json_body_is_bounded(client, creds) -> None:
    body = b'{"card_no": "' + b"1" * 70_000 + b'", "pin": "1"}'
    r = client.post("/api/v1/cards/login", data=body, content_type="application/json")
    _is_error(r, 413, "request_too_large")


def test_every_step_of_an_expired_enrollment_answers_410(client, store: Store, creds) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from ecard.store.models import Enrollment

    enr = start_enrollment(client, creds, insert_citizen(store))
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]
    with store.write() as s:
        s.execute(
            update(Enrollment)
            .where(Enrollment.id == eid)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    base = f"/api/v1/enrollments/{eid}"
    # the first step records the expiry; every later one, the PIN step included, says 410 too
    for step, body in [("consent", {"agree": True}), ("pin", {"pin": "480613"})]:
        r = client.post(f"{base}/{step}", json=body, headers=bearer(tok))
        _is_error(r, 410, "enrollment_expired")
    _is_error(client.post(f"{base}/challenge", headers=bearer(tok)), 410, "enrollment_expired")
    _is_error(client.post(f"{base}/pin", json={"pin": "1"}, headers=bearer(tok)), 410)


@pytest.mark.parametrize(
    "name",
    ["Li\u202eieL", "Li\x1b[31mLei", "Li\x07Lei", "Li\u2066Lei\u2069", "Li\nLei"],
)
def test_names_with_control_or_bidi_characters_are_refused(client, creds, name) -> None:
    r = client.post(
        "/api/v1/enrollments",
        json={"id_number": "11010519491231002X", "name": name},
        headers=creds.channel,
    )
    _is_error(r, 422, "invalid_name")
    assert "U+" in r.json["message"]


def test_huge_frame_times_are_refused_and_keep_the_nonce(tmp_path, store: Store, creds) -> None:
    """10**400 in timestamps_ms answered 500 after the nonce was spent: now 422, nonce kept."""
    from svc_helpers import app_config

    from ecard.faces.models import FaceModels
    from ecard.web import create_app

    app = create_app(app_config(tmp_path, store, FaceModels(), ECARD_LIVENESS_CHALLENGE="2"))
    client = app.test_client()
    enr = start_enrollment(client, creds, insert_citizen(store))
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]
    client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
    nonce = client.post(f"/api/v1/enrollments/{eid}/challenge", headers=bearer(tok)).json["nonce"]
    form = {
        "nonce": nonce,
        "frames": [(io.BytesIO(_jpeg(64, 48)), "a.jpg"), (io.BytesIO(_jpeg(64, 48)), "b.jpg")],
        "timestamps_ms": "[0, 1" + "0" * 400 + "]",
    }
    r = client.post(f"/api/v1/enrollments/{eid}/liveness", data=form, headers=bearer(tok))
    _is_error(r, 422, "invalid_field")
    shown = client.get(f"/api/v1/enrollments/{eid}", headers=bearer(tok)).json
    assert shown["state"] == "challenged" and shown["attempts_left"] == 3


@pytest.mark.parametrize(
    "stamps",
    [
        "[1" + "0" * 400 + "]",  # OverflowError (500) in the protocol's parser
        "[" * 5000 + "]" * 5000,  # RecursionError (500)
    ],
)
def test_unreadable_capture_times_are_a_422(client, creds, enrolled, stamps) -> None:
    eid, tok = enrolled["enrollment_id"], enrolled["enrollment_token"]
    client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
    form = {
        "seq": "0",
        "timestamps_ms": stamps,
        "frames": [(io.BytesIO(_jpeg(64, 48)), "a.jpg")],
    }
    url = f"/api/v1/enrollments/{eid}/capture/{'0' * 24}/frames"
    _is_error(client.post(url, data=form, headers=bearer(tok)), 422, "bad_timestamps")


def test_an_answer_outside_its_model_is_our_generic_500(app, caplog) -> None:
    """A view whose answer breaks its documented model: the generic 500, no pydantic details
    (they would echo the values) in the body or the log."""
    from flask import Blueprint

    from ecard.web.apispec import responses, validate
    from ecard.web.schemas import Status

    bp = Blueprint("broken", __name__)

    @bp.get("/broken")
    @validate(resp=responses({200: Status}), tags=["test"])
    def broken():
        return {"status": 4242424242, "secret": "s3cr3t-value"}

    app.register_blueprint(bp)
    r = app.test_client().get("/broken")
    _is_error(r, 500, "internal_error")
    assert b"s3cr3t" not in r.data and b"4242424242" not in r.data
    assert "status (string_type)" in caplog.text
    assert "s3cr3t" not in caplog.text and "4242424242" not in caplog.text
