"""``/openapi.json`` (generated from the models, :mod:`ecard.web.apispec`) and ``/metrics``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from ecard.web import metrics
from ecard.web.apispec import METRICS, document, responses, validate

bp = Blueprint("meta", __name__)


@bp.get("/openapi.json")
@validate(resp=responses({200: None}), tags=["health"], produces="application/json")
def openapi() -> Response:
    """This document (OpenAPI 3.1)"""
    body: dict[str, Any] = document()
    return jsonify(body)


@bp.get("/metrics")
@validate(
    resp=responses({200: None}, 401, 404),
    tags=["health"],
    security=METRICS,
    produces="text/plain",
)
def metrics_endpoint() -> Response:
    """Prometheus metrics (no personal data); needs Authorization: Bearer ECARD_METRICS_TOKEN
    (401 without it, 404 when no token is configured)"""
    return metrics.render()
