"""Public documents: the JWKS and the signed Token Status Lists (no authentication)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ecard.errors import NotFoundError
from ecard.web.apispec import responses, validate
from ecard.web.http import services
from ecard.web.schemas import Answer

bp = Blueprint("wellknown", __name__)

#: Public documents any web app may fetch: no credentials, so a wildcard origin is safe.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Max-Age": "86400",
}


@bp.after_request
def _cors(resp: Response) -> Response:
    """CORS for the JWKS and the status lists (and only them: the other API routes have none).
    A preflight (``OPTIONS``) is answered 204 with the allowed methods and the request headers
    asked for; credentials are never allowed."""
    resp.headers.update(CORS_HEADERS)
    if request.method == "OPTIONS":
        resp.status_code = 204
        resp.set_data(b"")
        resp.headers.update(PREFLIGHT_HEADERS)
        asked = request.headers.get("Access-Control-Request-Headers")
        if asked:
            resp.headers["Access-Control-Allow-Headers"] = asked
    return resp


class Jwks(Answer):
    """The public signing keys (RFC 7517 JWK Set)."""

    keys: list[dict[str, str | list[str]]]


@bp.get("/.well-known/jwks.json")
@validate(resp=responses({200: Jwks}, 429, 503), tags=["well-known"])
def jwks() -> Response:
    """The public signing keys (JWKS)"""
    resp = jsonify(services().require_keys().jwks())
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


@bp.get("/api/v1/status-lists/<int:list_id>")
@validate(
    resp=responses({200: None}, 404, 429, 503),
    tags=["well-known"],
    produces="application/statuslist+jwt",
)
def status_list(list_id: int) -> Response:
    """The signed Token Status List (application/statuslist+jwt)

    Built fresh each time so a suspension shows at once."""
    from ecard.cards.signing import status_list_uri
    from ecard.cards.status import status_list as build_status_list
    from ecard.tokens.status import issue_status_list_token

    svc = services()
    if list_id < 1 or list_id > 1_000_000:
        raise NotFoundError("No such status list.")
    statuses = build_status_list(*svc.cards().status_entries(list_id))
    token = issue_status_list_token(
        svc.require_keys(),
        statuses,
        uri=status_list_uri(svc.issuer, list_id),
        issuer=svc.issuer,
        ttl=svc.settings.status_list_ttl_s,
        lifetime=svc.settings.status_list_exp_s,
    )
    resp = Response(token, mimetype="application/statuslist+jwt")
    resp.headers["Cache-Control"] = "no-cache"
    return resp
