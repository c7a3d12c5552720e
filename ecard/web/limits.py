"""Rate limits (flask-limiter): per client IP on every API route, per channel credential on the
routes channels call, and a tight per-IP limit on PIN and liveness routes.

Storage is in memory by default (one process: each gunicorn worker counts on its own, so the
effective limit is workers x the limit); ``ECARD_RATELIMIT_STORAGE_URL=redis://127.0.0.1:6379``
shares the counters between workers and nodes. The storage is always configured explicitly.
"""

from __future__ import annotations

import hashlib

from flask import Flask, current_app, request
from flask_limiter import Limiter

from ecard.web.services import Services


def client_ip() -> str:
    return request.remote_addr or "unknown"


def channel_key() -> str:
    """The presented Basic credential, hashed: wrong secrets cannot spend a channel's quota."""
    header = request.headers.get("Authorization", "")
    return "ch:" + hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()[:24]


def _svc() -> Services:
    svc: Services = current_app.extensions["ecard"]
    return svc


def ip_limit() -> str:
    return _svc().web.ratelimit_ip


def channel_limit() -> str:
    return _svc().web.ratelimit_channel


def sensitive_limit() -> str:
    return _svc().web.ratelimit_sensitive


limiter = Limiter(
    key_func=client_ip,
    default_limits=[ip_limit],
    headers_enabled=True,
    storage_uri="memory://",
)

#: Decorator for routes a channel calls with HTTP Basic.
channel_limited = limiter.limit(channel_limit, key_func=channel_key)


def init_limits(app: Flask, svc: Services) -> None:
    app.config["RATELIMIT_ENABLED"] = svc.web.ratelimit_enabled
    app.config["RATELIMIT_STORAGE_URI"] = svc.web.ratelimit_storage_url
    app.config["RATELIMIT_KEY_PREFIX"] = "ecard"
    limiter.init_app(app)
