"""The OpenAPI document matches the app's routes, and schemathesis finds no 5xx or schema break."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from svc_helpers import app_config, insert_citizen

from ecard.store import Store

#: Routes that are pages (HTML, documented by the pages part) or static files, not the API.
NOT_API = re.compile(r"^/($|static/|enroll|card|hospital|integrate|favicon)")


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_every_api_route_is_documented_and_vice_versa(app, client) -> None:
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.")
    documented = {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    served = {
        (_openapi_path(rule.rule), method)
        for rule in app.url_map.iter_rules()
        if not NOT_API.match(rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == documented


@pytest.fixture
def sqlite_store(tmp_path):
    from ecard.store import open_store

    s = open_store(f"sqlite:///{tmp_path / 'fuzz.sqlite3'}")
    yield s
    s.close()


@pytest.mark.parametrize(
    ("path", "method", "who"),
    [
        ("/api/v1/enrollments", "POST", "channel"),
        ("/api/v1/cards/verify", "POST", "channel"),
        ("/api/v1/scan", "POST", "hospital"),
        ("/api/v1/scan/confirm", "POST", "hospital"),
        ("/api/v1/cards/login", "POST", None),
        ("/api/v1/enrollments/{enrollment_id}", "GET", "channel"),
        ("/api/v1/enrollments/{enrollment_id}/consent", "POST", None),
        ("/api/v1/status-lists/{list_id}", "GET", None),
        ("/api/v1/enrollments/{enrollment_id}/capture", "POST", None),
        ("/api/v1/enrollments/{enrollment_id}/capture/{capture_id}/frames", "POST", None),
        ("/api/v1/enrollments/{enrollment_id}/capture/{capture_id}/finish", "POST", None),
    ],
)
def test_schemathesis_finds_no_server_error(
    tmp_path, sqlite_store: Store, unloaded_models, path, method, who
) -> None:
    import schemathesis
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )
    from svc_helpers import Clients

    CHECKS = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    from ecard.web import create_app

    app = create_app(app_config(tmp_path, sqlite_store, unloaded_models))
    creds = Clients(sqlite_store)
    insert_citizen(sqlite_store)
    headers = getattr(creds, who) if who else {}
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operation = schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=30,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:
        if headers:
            case.headers = {**(case.headers or {}), **headers}
        # No 5xx, and every answer as documented (status, content type, body schema). A
        # schema-valid ID number with a wrong check digit is rightly refused, so the
        # "positive data is accepted" heuristic does not apply.
        case.call_and_validate(checks=CHECKS)

    check()


def _validator(doc: dict, path: str, method: str, status: int):
    from jsonschema_rs import Draft202012Validator  # schemathesis' own validator

    op = doc["paths"][path][method.lower()]
    resp = op["responses"][str(status)]
    schema = resp["content"]["application/json"]["schema"]
    return Draft202012Validator({**schema, "components": doc["components"]})


def test_real_answers_match_the_documented_schemas(client, store: Store, creds) -> None:
    """Success and error answers of a whole card life, each validated against the document."""
    from svc_helpers import bearer, issue_card, start_enrollment

    doc = client.get("/openapi.json").json
    seen: list[tuple[str, str, int]] = []

    def check(r, path: str, method: str) -> None:
        documented = doc["paths"][path][method.lower()]["responses"]
        assert str(r.status_code) in documented, (path, method, r.status_code, r.json)
        _validator(doc, path, method, r.status_code).validate(r.json)
        seen.append((path, method, r.status_code))

    number = insert_citizen(store, seq=5)
    enr = start_enrollment(client, creds, number)
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]
    e = "/api/v1/enrollments/{enrollment_id}"
    check(client.get(f"/api/v1/enrollments/{eid}", headers=bearer(tok)), e, "GET")
    r = client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
    check(r, e + "/consent", "POST")
    r = client.post(f"/api/v1/enrollments/{eid}/challenge", headers=bearer(tok))
    check(r, e + "/challenge", "POST")
    r = client.post(f"/api/v1/enrollments/{eid}/pin", json={"pin": "480613"}, headers=bearer(tok))
    check(r, e + "/pin", "POST")  # 409: not verified yet

    card = issue_card(client, store, creds, seq=6)
    tok_card = card["card"]
    r = client.post("/api/v1/cards/verify", json={"token": tok_card}, headers=creds.channel)
    check(r, "/api/v1/cards/verify", "POST")
    r = client.post("/api/v1/cards/qr", json={"pin": "480613"}, headers=bearer(tok_card))
    check(r, "/api/v1/cards/qr", "POST")
    qr = r.json["qr_token"]
    for _ in range(2):
        r = client.post("/api/v1/scan", json={"qr_token": qr}, headers=creds.hospital)
        check(r, "/api/v1/scan", "POST")
    r = client.post(
        "/api/v1/scan/confirm",
        json={"card_no": card["card_no"], "pin": "480613"},
        headers=creds.hospital,
    )
    check(r, "/api/v1/scan/confirm", "POST")
    r = client.post("/api/v1/cards/login", json={"card_no": card["card_no"], "pin": "480613"})
    check(r, "/api/v1/cards/login", "POST")
    check(client.get("/api/v1/cards/me", headers=bearer(tok_card)), "/api/v1/cards/me", "GET")
    r = client.post("/api/v1/cards/suspend", json={"pin": "480613"}, headers=bearer(tok_card))
    check(r, "/api/v1/cards/suspend", "POST")
    r = client.post("/api/v1/cards/qr", json={"pin": "480613"}, headers=bearer(tok_card))
    check(r, "/api/v1/cards/qr", "POST")  # 409: suspended
    check(client.get("/.well-known/jwks.json"), "/.well-known/jwks.json", "GET")
    assert {s for _, _, s in seen} >= {200, 201, 409}
