"""Finding 9: links, ``enroll_url``, the issuer and status list URIs use the configured origin
(``ECARD_PUBLIC_URL``, else the address ``ecard serve`` listens on), never the Host header."""

from __future__ import annotations

import jwt
import pytest
from svc_helpers import app_config, insert_citizen, issue_card, start_enrollment

from ecard.store import Store

EVIL = {"Host": "evil.example"}


@pytest.mark.parametrize(
    ("extra", "origin"),
    [
        ({"ECARD_BIND": "127.0.0.1:8123"}, "http://127.0.0.1:8123"),
        ({"ECARD_PUBLIC_URL": "https://ecard.example/"}, "https://ecard.example"),
    ],
)
def test_links_follow_the_configured_origin_not_the_host_header(
    tmp_path, store: Store, unloaded_models, creds, extra: dict[str, str], origin: str
) -> None:
    from ecard.web import create_app

    app = create_app(app_config(tmp_path, store, unloaded_models, **extra))
    client = app.test_client()
    r = client.post(
        "/api/v1/enrollments",
        json={"id_number": insert_citizen(store, seq=7), "name": "Li Lei"},
        headers={**creds.channel, **EVIL},
    )
    assert r.status_code == 201, r.json
    assert r.json["enroll_url"].startswith(f"{origin}/enroll/")
    page = client.get("/", headers=EVIL)
    assert page.status_code == 200
    assert b"evil.example" not in page.data and origin.encode() in page.data
    enroll_page = client.get(f"/enroll/{r.json['enrollment_token']}", headers=EVIL)
    assert b"evil.example" not in enroll_page.data

    card = issue_card(client, store, creds, seq=8)
    claims = jwt.decode(card["card"], options={"verify_signature": False})
    assert claims["iss"] == origin
    assert claims["status"]["status_list"]["uri"].startswith(f"{origin}/api/v1/status-lists/")


def test_the_host_header_cannot_change_enroll_url_without_configuration(
    client, store: Store, creds
) -> None:
    """The default app (no ECARD_PUBLIC_URL, no ECARD_BIND): the default serve address."""
    enr = start_enrollment(client, creds, insert_citizen(store))
    assert enr["enroll_url"].startswith("http://127.0.0.1:8000/enroll/")
    r = client.post(
        "/api/v1/enrollments",
        json={"id_number": insert_citizen(store, seq=2), "name": "Li Lei"},
        headers={**creds.channel, **EVIL},
    )
    assert r.json["enroll_url"].startswith("http://127.0.0.1:8000/enroll/")
