"""``/openapi.json`` and ``/metrics``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ecard.web import metrics
from ecard.web.openapi import build_document

bp = Blueprint("meta", __name__)


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(build_document())


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    return metrics.render()
