"""The framing check the capture page calls before Start (`/enroll/face-check`)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from svc_helpers import Clients, app_config, bearer, insert_citizen, start_enrollment


@pytest.fixture
def consented(tmp_path: Path, store: Any, creds: Clients) -> tuple[Any, dict[str, str], str]:
    from ecard.faces.models import shared_models
    from ecard.web import create_app

    client = create_app(app_config(tmp_path, store, shared_models())).test_client()
    number = insert_citizen(store)
    enr = start_enrollment(client, creds, number)
    auth = bearer(enr["enrollment_token"])
    eid = enr["enrollment_id"]
    resp = client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=auth)
    assert resp.status_code == 200, resp.json
    return client, auth, eid


def _check(client: Any, auth: dict[str, str], eid: str, jpeg: bytes) -> Any:
    return client.post(
        "/enroll/face-check",
        data={"enrollment_id": eid, "frame": (io.BytesIO(jpeg), "still.jpg")},
        content_type="multipart/form-data",
        headers=auth,
    )


def _jpeg(bgr: Any) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_face_is_an_answer_not_an_error(consented: tuple[Any, dict[str, str], str]) -> None:
    """An empty, well-lit room: the page is told `no_face` (it failed with 500 when the answer
    model required the face's box)."""
    import numpy as np

    client, auth, eid = consented
    room = np.full((360, 480, 3), 170, np.uint8)
    resp = _check(client, auth, eid, _jpeg(room))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.json["verdict"] == "no_face" and resp.json["faces"] == 0
    assert resp.json["box"] is None
    dark = _check(client, auth, eid, _jpeg(np.full((360, 480, 3), 8, np.uint8)))
    assert dark.status_code == 200 and dark.json["verdict"] == "dark"


@pytest.mark.shared_data
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_framed_face_gets_its_box(
    consented: tuple[Any, dict[str, str], str], shared_data: Path
) -> None:
    import cv2

    client, auth, eid = consented
    photo = cv2.imread(str(shared_data / "faces" / "barack_obama" / "fr__obama.jpg"))
    resp = _check(client, auth, eid, _jpeg(photo))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.json["faces"] == 1 and len(resp.json["box"]) == 4
    assert resp.json["verdict"] in {"ok", "close", "far", "off_centre", "blurry", "dark", "bright"}
