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
