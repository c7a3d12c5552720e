"""``/healthz`` (the process answers) and ``/readyz`` (models, keys and database usable)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ecard.web.http import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    svc = services()
    checks = {
        "models": svc.models.ready and svc.pad is not None and svc.pad.ready,
        "keys": svc.keys is not None,
        "database": svc.store.reachable(),
    }
    ready = all(checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "not_ready", "checks": checks}
    if not ready:
        body.update(
            error="not_ready",
            message="Not ready: " + ", ".join(k for k, ok in checks.items() if not ok) + ".",
        )
    resp = jsonify(body)
    resp.status_code = 200 if ready else 503
    return resp
