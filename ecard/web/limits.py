"""Rate limits (flask-limiter), one limiter per app: per client IP on every route, per channel
credential on the routes channels call, and a tight per-IP limit on PIN and liveness routes.

Storage is in memory by default (one process: each gunicorn worker counts on its own, so the
effective limit is workers x the limit); ``ECARD_RATELIMIT_STORAGE_URL=redis://127.0.0.1:6379``
shares the counters between workers and nodes. The storage is always configured explicitly.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from flask import Flask, Response, request
from flask_limiter import Limiter, RequestLimit

from ecard.errors import RateLimitedError
from ecard.web.errors import error_response
from ecard.web.services import Services

#: Routes a channel or hospital calls with HTTP Basic: limited per presented credential.
CHANNEL_ROUTES = frozenset(
    {
        "enroll.authorize",
        "cards.verify",
        "hospital.scan",
        "hospital.confirm",
        "recovery.suspend_for_channel",
    }
)
#: Routes that check a PIN or run liveness: a tight per-IP limit on top of the default.
SENSITIVE_ROUTES = frozenset(
    {
        "enroll.liveness",
        "enroll.set_pin",
        "cards.qr",
        "cards.suspend",
        "cards.login",
        "recovery.start_for_holder",
        "recovery.new_pin",
        "recovery.report_loss",
        "capture.start",
        "capture.finish",
    }
)
#: Never limited: probes and scrapers, and the live capture's frame batches (a capture sends
#: about 150 a minute, so a per-IP limit would stop two people behind one NAT; their cost is
#: bounded by the capture itself: one running capture per enrollment, a frame and duration cap
#: per capture, an enrollment token from a channel, and 3 attempts).
EXEMPT_ROUTES = frozenset(
    {"health.healthz", "health.readyz", "meta.metrics_endpoint", "capture.frames"}
)


def client_ip() -> str:
    return request.remote_addr or "unknown"


def channel_key() -> str:
    """The presented Basic credential, hashed: wrong secrets cannot spend a channel's quota."""
    header = request.headers.get("Authorization", "")
    return "ch:" + hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()[:24]


def _breached(limit: RequestLimit) -> Response:
    """The 429 answer: our JSON error shape, with Retry-After in whole seconds."""
    resp = error_response(RateLimitedError())
    resp.headers["Retry-After"] = str(max(1, math.ceil(limit.reset_at - time.time())))
    return resp


def init_limits(app: Flask, svc: Services) -> Limiter:
    """Attach a limiter to ``app`` (call after every blueprint is registered)."""
    web = svc.web
    limiter = Limiter(
        key_func=client_ip,
        app=app,
        default_limits=[web.ratelimit_ip],
        # X-RateLimit-* headers cost a storage round trip per request; the 429 answer carries
        # Retry-After (see _breached).
        headers_enabled=False,
        on_breach=_breached,
        storage_uri=web.ratelimit_storage_url,
        key_prefix="ecard",
        enabled=web.ratelimit_enabled,
    )
    views: dict[str, Any] = app.view_functions
    for endpoint, view in list(views.items()):
        if endpoint in EXEMPT_ROUTES:
            limiter.exempt(view)
        elif endpoint in CHANNEL_ROUTES:
            app.view_functions[endpoint] = limiter.limit(
                web.ratelimit_channel, key_func=channel_key
            )(view)
        elif endpoint in SENSITIVE_ROUTES:
            views[endpoint] = limiter.limit(web.ratelimit_sensitive)(view)
    app.extensions["ecard_limiter"] = limiter  # flask-limiter keeps only a weak reference
    return limiter
