"""The generated OpenAPI document: valid OpenAPI 3.1, lists every JSON route of the app, and
schemathesis over every operation finds no 5xx and no answer outside the document."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from svc_helpers import app_config, insert_citizen

from ecard.store import Store

#: The routes that answer HTML (pages), a redirect (the desk's login form) or static files: all
#: the others answer JSON and must be in the document.
NOT_JSON = {
    "/",
    "/enroll",
    "/enroll/<token>",
    "/card",
    "/hospital",
    "/hospital/login",
    "/hospital/logout",
    "/static/<path:filename>",
}


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def _documented(doc: dict) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_the_document_is_valid_openapi_3_1(client) -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    doc = client.get("/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)


def test_every_json_route_is_documented_and_vice_versa(app, client) -> None:
    doc = client.get("/openapi.json").json
    served = {
        (_openapi_path(rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.rule not in NOT_JSON
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == _documented(doc)
    # the routes the pages call are in it, as the API is
    assert {("/enroll/face-check", "POST"), ("/card/overview", "GET")} <= served
    assert {("/hospital/scan", "POST"), ("/hospital/confirm", "POST")} <= served


def test_every_operation_documents_its_answers(client) -> None:
    """Each operation has a success answer with a schema (JSON) or a media type, and every
    documented error status answers our Error model."""
    doc = client.get("/openapi.json").json
    for path, item in doc["paths"].items():
        for method, op in item.items():
            oks = [c for c in op["responses"] if c.startswith("2")]
            assert oks, (path, method)
            for code, answer in op["responses"].items():
                assert answer.get("content"), (path, method, code)
                if code.startswith(("4", "5")) and not (path == "/readyz" and code == "503"):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, code)


@pytest.fixture
def sqlite_store(tmp_path):
    from ecard.store import open_store

    s = open_store(f"sqlite:///{tmp_path / 'fuzz.sqlite3'}")
    yield s
    s.close()


def _who(path: str, op: dict) -> str | None:
    """The credentials schemathesis sends: the channel or the hospital for HTTP Basic
    operations, none otherwise (Bearer tokens and desk sessions are made up: 401)."""
    schemes = {name for req in op.get("security", []) for name in req}
    if "basic" not in schemes:
        return None
    return "hospital" if path.startswith("/api/v1/scan") else "channel"


def _no_server_error(ctx, response, case) -> None:
    """No 5xx, except 503 while the face models are not loaded (documented, answered by
    ``require_models``) or from ``/readyz``."""
    if response.status_code < 500:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    assert response.status_code == 503 and body.get("error", "").startswith(
        ("model", "not_ready")
    ), (case.method, case.path, response.status_code, response.text[:300])


def test_schemathesis_finds_no_server_error_on_any_operation(
    tmp_path, sqlite_store: Store, unloaded_models
) -> None:
    import schemathesis
    from schemathesis.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )
    from svc_helpers import Clients

    from ecard.web import create_app

    app = create_app(app_config(tmp_path, sqlite_store, unloaded_models))
    creds = Clients(sqlite_store)
    insert_citizen(sqlite_store)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    checks = [
        _no_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    doc = app.test_client().get("/openapi.json").json
    operations = [r.ok() for r in schema.get_all_operations()]
    # every operation but the document itself (schemathesis leaves its own schema out)
    labels = {(o.path, o.method.upper()) for o in operations}
    assert labels == _documented(doc) - {("/openapi.json", "GET")}
    for operation in operations:
        op = doc["paths"][operation.path][operation.method.lower()]
        who = _who(operation.path, op)
        _fuzz(operation, getattr(creds, who) if who else {}, checks)


def _fuzz(operation, headers: dict, checks: list) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=25,
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
        case.call_and_validate(checks=checks)

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
