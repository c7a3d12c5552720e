"""Operations: health and readiness, metrics without personal data, rate limits, headers."""

from __future__ import annotations

import secrets

import pytest
from svc_helpers import app_config, bearer, insert_citizen, start_enrollment

from ecard.store import Store


def test_health_and_readiness(client, tmp_path, store: Store, face_models) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    r = client.get("/readyz")  # the app fixture's models are not loaded
    assert r.status_code == 503 and r.json["error"] == "not_ready"
    assert r.json["checks"] == {"models": False, "keys": True, "database": True}

    from ecard.web import create_app

    ready = create_app(app_config(tmp_path, store, face_models)).test_client().get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "ready"


def test_security_headers_on_every_response(client) -> None:
    for r in (client.get("/healthz"), client.get("/nope"), client.get("/.well-known/jwks.json")):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


METRICS_TOKEN = "scrape-" + "x" * 24


def _metrics_client(tmp_path, store, models, **extra):
    from ecard.web import create_app

    cfg = app_config(tmp_path, store, models, ECARD_METRICS_TOKEN=METRICS_TOKEN, **extra)
    return create_app(cfg).test_client()


def test_metrics_count_routes_not_paths(tmp_path, store: Store, unloaded_models, creds) -> None:
    client = _metrics_client(tmp_path, store, unloaded_models)
    enr = start_enrollment(client, creds, insert_citizen(store))
    client.get(
        f"/api/v1/enrollments/{enr['enrollment_id']}", headers=bearer(enr["enrollment_token"])
    )
    client.get(f"/enroll/{enr['enrollment_token']}")
    r = client.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert r.status_code == 200
    text = r.data.decode()
    assert 'endpoint="/api/v1/enrollments/<enrollment_id>"' in text
    assert "ecard_http_request_duration_seconds_bucket" in text
    assert "ecard_cards_issued_total" in text and "ecard_liveness_outcomes_total" in text
    assert enr["enrollment_token"] not in text and enr["enrollment_id"] not in text


def test_metrics_are_not_public(client, tmp_path, store: Store, unloaded_models) -> None:
    """Finding 13: without a configured token /metrics does not exist; with one, only a
    request carrying exactly that bearer token reads it."""
    r = client.get("/metrics")  # the default app: no ECARD_METRICS_TOKEN
    assert r.status_code == 404 and r.json["error"] == "not_found"
    assert client.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 404
    guarded = _metrics_client(tmp_path, store, unloaded_models)
    for headers in ({}, bearer("wrong-" + METRICS_TOKEN), {"Authorization": METRICS_TOKEN}):
        r = guarded.get("/metrics", headers=headers)
        assert r.status_code == 401 and r.json["error"] == "unauthorized"
        assert b"ecard_http_requests_total" not in r.data
    ok = guarded.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert ok.status_code == 200 and b"ecard_http_requests_total" in ok.data


def _limited_app(tmp_path, store, models, **extra):
    from ecard.web import create_app

    limits = {
        "ECARD_RATELIMIT_ENABLED": "1",
        "ECARD_RATELIMIT_IP": "5 per minute",
        "ECARD_RATELIMIT_CHANNEL": "3 per minute",
        **extra,
    }
    cfg = app_config(tmp_path, store, models, **limits)
    return create_app(cfg)


def test_rate_limit_per_client_ip(tmp_path, store: Store, unloaded_models) -> None:
    client = _limited_app(tmp_path, store, unloaded_models).test_client()
    codes = [client.get("/.well-known/jwks.json").status_code for _ in range(7)]
    assert codes == [200] * 5 + [429] * 2
    r = client.get("/.well-known/jwks.json")
    assert r.json["error"] == "rate_limited" and int(r.headers["Retry-After"]) > 0
    other = client.get("/.well-known/jwks.json", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200
    assert client.get("/healthz").status_code == 200  # health is never limited


def test_rate_limit_per_channel(tmp_path, store: Store, unloaded_models, creds) -> None:
    client = _limited_app(tmp_path, store, unloaded_models).test_client()
    codes = [
        client.post(
            "/api/v1/cards/verify",
            json={"token": "x"},
            headers=creds.channel,
            environ_base={"REMOTE_ADDR": f"10.0.1.{i}"},
        ).status_code
        for i in range(5)
    ]
    assert codes == [200, 200, 200, 429, 429]
    # Another channel (other credentials) is not affected.
    r = client.post(
        "/api/v1/cards/verify",
        json={"token": "x"},
        headers=creds.verifier,
        environ_base={"REMOTE_ADDR": "10.0.2.1"},
    )
    assert r.status_code == 200


def test_rate_limits_shared_through_redis(tmp_path, store: Store, unloaded_models) -> None:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at 127.0.0.1:6379 is not reachable: {exc}")
    prefix = secrets.token_hex(4)
    url = "redis://127.0.0.1:6379"
    # Two app processes' worth of limiters sharing one Redis: the quota is common.
    a = _limited_app(
        tmp_path / "a",
        store,
        unloaded_models,
        ECARD_RATELIMIT_STORAGE_URL=url,
        ECARD_RATELIMIT_IP="4 per minute",
    )
    ip = {"REMOTE_ADDR": f"10.9.{int(prefix[:2], 16)}.{int(prefix[2:], 16) % 250}"}
    codes = [
        a.test_client().get("/.well-known/jwks.json", environ_base=ip).status_code for _ in range(2)
    ]
    b = _limited_app(
        tmp_path / "b",
        store,
        unloaded_models,
        ECARD_RATELIMIT_STORAGE_URL=url,
        ECARD_RATELIMIT_IP="4 per minute",
    )
    codes += [
        b.test_client().get("/.well-known/jwks.json", environ_base=ip).status_code for _ in range(3)
    ]
    assert codes == [200, 200, 200, 200, 429]
