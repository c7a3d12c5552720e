"""``/healthz`` (the process answers) and ``/readyz`` (models, keys and database usable)."""

from __future__ import annotations

from flask import Blueprint

from ecard.web.apispec import responses, validate
from ecard.web.http import services
from ecard.web.schemas import Answer, Status

bp = Blueprint("health", __name__)


class Readiness(Answer):
    """What ``/readyz`` checked; ``error``/``message`` are set when not ready (503)."""

    status: str
    checks: dict[str, bool]
    error: str | None = None
    message: str | None = None


@bp.get("/healthz")
@validate(resp=responses({200: Status}), tags=["health"])
def healthz() -> Status:
    """The process answers"""
    return Status(status="ok")


@bp.get("/readyz")
@validate(resp=responses({200: Readiness, 503: Readiness}), tags=["health"])
def readyz() -> tuple[Readiness, int]:
    """Models loaded, keys present, database reachable"""
    svc = services()
    checks = {
        "models": bool(svc.models.ready and svc.pad is not None and svc.pad.ready),
        "keys": svc.keys is not None,
        "database": bool(svc.store.reachable()),
    }
    if all(checks.values()):
        return Readiness(status="ready", checks=checks), 200
    missing = ", ".join(k for k, ok in checks.items() if not ok)
    return Readiness(
        status="not_ready", checks=checks, error="not_ready", message=f"Not ready: {missing}."
    ), 503
