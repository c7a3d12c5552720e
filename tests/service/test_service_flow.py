"""The whole flow on a real clip through the Flask test client: authorize, consent, challenge,
liveness + ID-photo match on real frames, PIN, card, QR, hospital scan, suspension.

Clip: ``blink/videos/repeating-Blink-Detector__video.mp4`` (a phone selfie, 23.86 fps; blinks
at frames ~10-13, 40-43 and 82-85 per PROVENANCE.md). The frames sent are 0-99 (4.2 s). The
citizen's ID photo is frame 205 of the same clip (eyes open, 4.3 s after the last frame sent),
cropped around the face and downscaled to 102 x 126 like an ID-card chip photo. The upload is
sent both as JPEG frames (with ``fps``) and as an MP4 of the same frames.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from svc_helpers import (
    Clients,
    app_config,
    bearer,
    clip_frames,
    id_photo,
    jpeg,
    make_id_number,
    start_enrollment,
)

from ecard.store import Store

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

CLIP = ("blink", "videos", "repeating-Blink-Detector__video.mp4")
SENT = range(0, 100)
ID_FRAME = 205
FPS = 23.86


_frames, _jpeg, _id_photo = clip_frames, jpeg, id_photo


@pytest.fixture(scope="module")
def clip_media(face_models, shared_data: Path, tmp_path_factory) -> dict[str, Any]:
    import cv2

    # shared_data (tests/conftest.py, built on shared_path) skips where ../shared/data is absent.
    path = shared_data.joinpath(*CLIP)
    frames = _frames(path, {*SENT, ID_FRAME})
    # The same 100 frames as an MP4 clip, for the `video` form of the upload.
    mp4 = tmp_path_factory.mktemp("clip") / "clip.mp4"
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    for i in SENT:
        writer.write(frames[i])
    writer.release()
    return {
        "frames": [_jpeg(frames[i]) for i in SENT],
        "video": mp4.read_bytes(),
        "id_photo": _id_photo(frames[ID_FRAME], face_models),
    }


def _register(store: Store, models: Any, photo: bytes, seq: int) -> str:
    from ecard.citizens import add_citizen

    number = make_id_number(seq)
    add_citizen(store, id_number=number, name="Zhang Wei", photo=photo, models=models)
    return number


def _upload(client, enr: dict, frames: list[bytes]) -> Any:
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]
    ch = client.post(f"/api/v1/enrollments/{eid}/challenge", headers=bearer(tok))
    assert ch.status_code == 200 and ch.json["blinks"] == 2
    from werkzeug.datastructures import FileStorage, MultiDict
    from werkzeug.test import encode_multipart

    fields = MultiDict([("nonce", ch.json["nonce"]), ("fps", str(FPS))])
    for i, f in enumerate(frames):
        fields.add("frames", FileStorage(io.BytesIO(f), f"f{i}.jpg", content_type="image/jpeg"))
    # Encoded in memory (the test client would spill a large body to an unclosed temp file).
    boundary, body = encode_multipart(fields)
    return client.post(
        f"/api/v1/enrollments/{eid}/liveness",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=bearer(tok),
    )


def test_whole_flow_on_a_real_clip(tmp_path, store: Store, face_models, clip_media) -> None:
    from ecard.web import create_app

    app = create_app(app_config(tmp_path, store, face_models))
    client = app.test_client()
    creds = Clients(store)
    number = _register(store, face_models, clip_media["id_photo"], 1)

    enr = start_enrollment(client, creds, number, name="Zhang Wei")
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]
    r = client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
    assert r.status_code == 200

    r = _upload(client, enr, clip_media["frames"])
    assert r.status_code == 200, r.json
    assert r.json["live"] is True and r.json["match"] is True, r.json
    assert r.json["blinks"] >= 2 and r.json["state"] == "verified" and r.json["reason"] is None

    r = client.post(f"/api/v1/enrollments/{eid}/pin", json={"pin": "480613"}, headers=bearer(tok))
    assert r.status_code == 201, r.json
    card = r.json["card"]
    v = client.post("/api/v1/cards/verify", json={"token": card}, headers=creds.channel)
    assert v.json["valid"] is True and v.json["claims"]["name"] == "Zhang Wei"

    qr = client.post("/api/v1/cards/qr", json={"pin": "480613"}, headers=bearer(card)).json
    scan = client.post("/api/v1/scan", json={"qr_token": qr["qr_token"]}, headers=creds.hospital)
    assert scan.json["valid"] is True and scan.json["name"] == "Zhang Wei"
    # The QR picture itself also scans (once: the token was already spent above).
    import base64

    png = base64.b64decode(qr["qr_png"])
    again = client.post(
        "/api/v1/scan", data={"image": (io.BytesIO(png), "qr.png")}, headers=creds.hospital
    )
    body = dict(again.json)
    assert body.pop("used_at").endswith("Z")  # when it was first used, and at this desk
    assert body == {
        "valid": False,
        "error": "replayed",
        "message": "This QR code was already used.",
        "used_by": "this_desk",
    }

    timeline = client.get(f"/api/v1/enrollments/{eid}", headers=creds.channel).json["timeline"]
    assert [t["step"] for t in timeline] == [
        "authorize",
        "consent",
        "challenge",
        "liveness",
        "issue",
    ]


def test_another_persons_id_photo_does_not_match(
    tmp_path, store: Store, face_models, clip_media, shared_data: Path
) -> None:
    from ecard.web import create_app

    other = (shared_data / "blink" / "spoof_stills" / "silentface__image_T1.jpg").read_bytes()
    app = create_app(app_config(tmp_path, store, face_models))
    client = app.test_client()
    creds = Clients(store)
    number = _register(store, face_models, other, 2)
    enr = start_enrollment(client, creds, number, name="Zhang Wei")
    client.post(
        f"/api/v1/enrollments/{enr['enrollment_id']}/consent",
        json={"agree": True},
        headers=bearer(enr["enrollment_token"]),
    )
    r = _upload(client, enr, clip_media["frames"])
    assert r.status_code == 200, r.json
    assert r.json["live"] is True and r.json["match"] is False
    assert r.json["state"] == "consented" and r.json["attempts_left"] == 2
    assert r.json["reason"] == "no_match"


def test_a_video_upload_works_the_same(
    tmp_path, store: Store, face_models, clip_media, monkeypatch
) -> None:
    import tempfile

    from ecard.web import create_app

    app = create_app(app_config(tmp_path, store, face_models))
    client = app.test_client()
    creds = Clients(store)
    number = _register(store, face_models, clip_media["id_photo"], 3)
    enr = start_enrollment(client, creds, number, name="Zhang Wei")
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]
    client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
    nonce = client.post(f"/api/v1/enrollments/{eid}/challenge", headers=bearer(tok)).json["nonce"]
    from werkzeug.datastructures import FileStorage, MultiDict
    from werkzeug.test import encode_multipart

    fields = MultiDict([("nonce", nonce)])
    fields.add("video", FileStorage(io.BytesIO(clip_media["video"]), "clip.mp4"))
    boundary, body = encode_multipart(fields)
    assert len(body) > 500 * 1024  # werkzeug would spool a part this large to a temporary file

    def no_disk(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an uploaded clip must never be written to a file")

    for name in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_disk)
    r = client.post(
        f"/api/v1/enrollments/{eid}/liveness",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=bearer(tok),
    )
    assert r.status_code == 200, r.json
    assert r.json["live"] is True and r.json["match"] is True and r.json["state"] == "verified"
    # The nonce was spent: the same upload again is refused without analysis.
    r = client.post(
        f"/api/v1/enrollments/{eid}/liveness",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=bearer(tok),
    )
    assert r.status_code == 409


def test_a_failed_one_shot_attempt_tells_nothing_about_the_face(
    tmp_path, store: Store, face_models, clip_media
) -> None:
    """The right person's clip without the two blinks asked: not live, and the registry photo
    is not compared (``match`` false, reason ``not_live``-like), as on the live capture path
    (one domain function decides both, ecard/enrollment/verify.py)."""
    from ecard.web import create_app

    app = create_app(app_config(tmp_path, store, face_models))
    client = app.test_client()
    creds = Clients(store)
    number = _register(store, face_models, clip_media["id_photo"], 4)
    enr = start_enrollment(client, creds, number, name="Zhang Wei")
    client.post(
        f"/api/v1/enrollments/{enr['enrollment_id']}/consent",
        json={"agree": True},
        headers=bearer(enr["enrollment_token"]),
    )
    # frames 46-79: eyes open throughout (the clip's blinks are at ~10-13, 40-43, 82-85)
    r = _upload(client, enr, clip_media["frames"][46:80])
    assert r.status_code == 200, r.json
    assert r.json["live"] is False and r.json["blinks"] < 2, r.json
    assert r.json["match"] is False and r.json["reason"] not in (None, "no_match"), r.json
    assert r.json["state"] == "consented" and r.json["attempts_left"] == 2
