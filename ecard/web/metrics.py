"""Prometheus metrics without personal data: requests by route template (never the raw path,
which may hold a token), status and latency; liveness outcomes; issued cards.

Under gunicorn, ``ecard serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the app is imported, so
every worker writes its samples there and ``/metrics`` aggregates all workers.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

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


def render() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, mimetype=CONTENT_TYPE_LATEST.split(";")[0])


def install(app: Flask) -> None:
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
