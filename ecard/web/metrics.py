"""Prometheus metrics without personal data: requests by route template (never the raw path,
which may hold a token), status and latency; liveness outcomes; issued cards.

``/metrics`` is not public: it answers only a request carrying
``Authorization: Bearer <ECARD_METRICS_TOKEN>`` (compared in constant time). Without a
configured token it answers 404, as if it did not exist; a missing or wrong token is 401.

Under gunicorn, ``ecard serve`` creates this node's multi-process folder
(:attr:`ecard.config.Settings.prometheus_dir`) and hands it to prometheus_client through
``PROMETHEUS_MULTIPROC_DIR`` before prometheus_client is first imported (the library reads that
variable once, at import, to choose its storage: the one environment hand-off ecard makes).
The app is told the same folder (:func:`install`), so every worker writes its samples there and
``/metrics`` aggregates all workers of the node.
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from ecard.errors import AuthError, NotFoundError

REQUESTS = Counter(
    "ecard_http_requests_total",
    "HTTP requests by route and status",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "ecard_http_request_duration_seconds",
    "HTTP request latency by route",
    ["endpoint"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LIVENESS = Counter("ecard_liveness_outcomes_total", "Liveness attempts by outcome", ["outcome"])
CARDS_ISSUED = Counter("ecard_cards_issued_total", "E-cards issued")

_EXTENSION = "ecard_metrics_dir"


def check_access() -> None:
    """Refuse the scrape unless it carries the configured bearer token (404 when none is)."""
    token = current_app.extensions["ecard"].settings.metrics_token
    if token is None:
        raise NotFoundError("Not found.")
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode("utf-8", "replace"),
        token.get_secret_value().encode("utf-8"),
    ):
        raise AuthError("/metrics needs Authorization: Bearer <ECARD_METRICS_TOKEN>.")


def render() -> Response:
    """The scrape (after :func:`check_access`): every worker of the node in multi-process mode."""
    check_access()
    folder = current_app.extensions.get(_EXTENSION)
    if folder is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(folder))
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, mimetype=CONTENT_TYPE_LATEST.split(";")[0])


def use_multiprocess_dir(app: Flask, folder: Path) -> None:
    """``/metrics`` of ``app`` aggregates the samples every worker of the node writes in
    ``folder`` (``ecard serve``; without it: this process only)."""
    app.extensions[_EXTENSION] = folder


def install(app: Flask) -> None:
    """Count every request of ``app`` by route template, method and status."""

    @app.before_request
    def _start() -> None:
        g.ecard_t0 = time.perf_counter()

    @app.after_request
    def _observe(resp: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        if rule != "/metrics":
            REQUESTS.labels(rule, request.method, str(resp.status_code)).inc()
            t0 = g.get("ecard_t0")
            if t0 is not None:
                LATENCY.labels(rule).observe(time.perf_counter() - t0)
        return resp
