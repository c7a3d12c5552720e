"""Helpers of the service tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ecard.channels import add_channel
from ecard.citizens import check_digit
from ecard.store import Store
from ecard.store.models import Citizen


def make_id_number(seq: int, birth: str = "19850317") -> str:
    """A valid GB 11643 number (region 110105, given birth date, sequence ``seq``)."""
    first17 = f"110105{birth}{seq % 1000:03d}"
    return first17 + check_digit(first17)


def insert_citizen(store: Store, name: str = "Li Lei", seq: int = 1, template: bytes = b"") -> str:
    """A registry row written directly (for tests that never reach the face match)."""
    number = make_id_number(seq)
    with store.write() as s:
        s.add(
            Citizen(
                id_number=number,
                name=name,
                photo=b"",
                template=template,
                created_at=datetime.now(UTC),
            )
        )
    return number


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def app_config(tmp_path: Path, store: Store, models: Any, **extra: Any) -> dict[str, Any]:
    return {
        "ECARD_INSTANCE": str(tmp_path / "instance"),
        "ECARD_LIVENESS_CHALLENGE": "2",
        "ECARD_RATELIMIT_ENABLED": "0",
        "STORE": store,
        "FACE_MODELS": models,
        "TESTING": True,
        **extra,
    }


class Clients:
    """Credentials of a channel (enroll, verify), a hospital (scan) and a verify-only app."""

    def __init__(self, store: Store) -> None:
        ch = add_channel(store, "City app", "enroll,verify")
        ho = add_channel(store, "General hospital", "scan")
        vo = add_channel(store, "Verifier", "verify")
        self.channel = basic(ch.client_id, ch.client_secret)
        self.hospital = basic(ho.client_id, ho.client_secret)
        self.verifier = basic(vo.client_id, vo.client_secret)
        self.wrong = basic(ch.client_id, "not-the-secret")


def start_enrollment(client: Any, creds: Clients, id_number: str, name: str = "Li Lei") -> dict:
    r = client.post(
        "/api/v1/enrollments", json={"id_number": id_number, "name": name}, headers=creds.channel
    )
    assert r.status_code == 201, r.json
    return dict(r.json)


def verify_without_camera(client: Any, store: Store, enr: dict, *, live: bool = True) -> dict:
    """Consent and challenge through the API, then record a liveness outcome through the domain
    (the real clip runs in test_service_flow.py)."""
    from ecard.enrollment import Enrollments

    eid, token = enr["enrollment_id"], enr["enrollment_token"]
    if (
        client.get(f"/api/v1/enrollments/{eid}", headers=bearer(token)).json["state"]
        == "authorized"
    ):
        assert (
            client.post(
                f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(token)
            ).status_code
            == 200
        )
    ch = client.post(f"/api/v1/enrollments/{eid}/challenge", headers=bearer(token))
    assert ch.status_code == 200, ch.json
    domain = Enrollments(store)
    domain.take_nonce(eid, ch.json["nonce"])
    verdict = domain.record_liveness(
        eid, live=live, blinks=2 if live else 0, match=live, reason=None if live else "no_blink"
    )
    return {"state": verdict.state, "attempts_left": verdict.attempts_left}


def issue_card(
    client: Any, store: Store, creds: Clients, seq: int = 1, pin: str = "480613"
) -> dict:
    number = insert_citizen(store, seq=seq) if seq else make_id_number(1)
    enr = start_enrollment(client, creds, number)
    assert verify_without_camera(client, store, enr)["state"] == "verified"
    r = client.post(
        f"/api/v1/enrollments/{enr['enrollment_id']}/pin",
        json={"pin": pin},
        headers=bearer(enr["enrollment_token"]),
    )
    assert r.status_code == 201, r.json
    return {**enr, **r.json, "id_number": number}


# --- real clips ---------------------------------------------------------------------------------


def clip_frames(path: Path, wanted: set[int]) -> dict[int, Any]:
    """The frames of a clip with the given indices (BGR arrays)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    out: dict[int, Any] = {}
    i = 0
    while len(out) < len(wanted):
        ok, frame = cap.read()
        if not ok:
            break
        if i in wanted:
            out[i] = frame
        i += 1
    cap.release()
    return out


def jpeg(bgr: Any, quality: int = 90) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def id_photo(bgr: Any, models: Any) -> bytes:
    """Crop the face with a passport-like margin and downscale to 102 x 126 (an ID-card chip
    photo)."""
    import cv2

    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    box = models.detect(rgb, upsample=1)[0]
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    w = box.width * 1.9
    h = w * 126 / 102
    x0, y0 = max(0, int(cx - w / 2)), max(0, int(cy - h * 0.45))
    crop = bgr[y0 : int(y0 + h), x0 : int(x0 + w)]
    small = cv2.resize(crop, (102, 126), interpolation=cv2.INTER_AREA)
    return jpeg(small, 92)


# --- a served instance (`ecard serve` in a subprocess) -----------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on now (127.0.0.1)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """``(status, body)`` of a GET, HTTP errors included."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=5
        ) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(server: Any, base: str, timeout: float = 120) -> bytes:
    """Poll ``base/readyz`` until it answers 200 (fails if the server process ends first);
    returns the answer's body."""
    import time

    deadline = time.monotonic() + timeout
    status, body = 0, b""
    while time.monotonic() < deadline and status != 200:
        assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
        try:
            status, body = http_get(base + "/readyz")
        except OSError:
            time.sleep(0.5)
    assert status == 200, body
    return body
