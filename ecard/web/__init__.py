"""The Flask application: ``create_app(config)`` builds one service process.

Heavy services (store, face models, signing keys) are built once here and kept in
``app.extensions["ecard"]`` (:class:`~ecard.web.services.Services`); tests pass ready objects in
``config``. Blueprints by area: enroll, capture (the live protocol), cards, hospital scan,
well-known, health, meta (OpenAPI, metrics); the pages blueprint registers in
:func:`_register_blueprints`.

``config`` is a ready :class:`~ecard.config.Settings`, or a mapping that replaces the
environment: keys ``ECARD_*`` (every variable of docs/service.md, "Configuration"), and the
test-only keys ``STORE``, ``FACE_MODELS``, ``PAD_MODELS``, ``KEYSTORE`` (ready objects),
``LOAD_MODELS`` and ``TESTING`` (booleans: ``"0"``/``"false"`` are false). Without ``config``
the settings are read from the environment once, here (:func:`ecard.config.load_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response

from ecard.config import ENV_PREFIX, Settings, load_settings, parse_flag
from ecard.web.errors import register_error_handlers
from ecard.web.services import Services, build_services

__all__ = ["Services", "create_app"]


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """A ready application. Without ``config`` it reads the environment (``ecard serve``).

    Raises :class:`~ecard.errors.ConfigError` (one line naming the variable) on a bad setting.
    """
    objects: Mapping[str, Any]
    if isinstance(config, Settings):
        settings, objects = config, {}
    else:
        env: Mapping[str, Any] = {} if config is None else config
        settings = load_settings(
            None
            if config is None
            else {k: str(v) for k, v in env.items() if k.upper().startswith(ENV_PREFIX)}
        )
        objects = {k: v for k, v in env.items() if not k.upper().startswith(ENV_PREFIX)}
    web = settings
    app = Flask(__name__, instance_path=str(settings.instance), instance_relative_config=False)
    from ecard.web.upload import MemoryRequest

    app.request_class = MemoryRequest  # uploads (frames, clips) never spool to disk
    app.config.update(
        MAX_CONTENT_LENGTH=web.max_body_bytes,
        MAX_FORM_MEMORY_SIZE=web.max_body_bytes,
        MAX_FORM_PARTS=web.max_frames + 20,
        JSON_SORT_KEYS=False,
        TESTING=parse_flag("TESTING", objects.get("TESTING", False)),
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["ecard"] = build_services(settings, objects)
    # Templates name the configured origin, never the request's Host header (finding 9).
    app.jinja_env.globals["public_url"] = app.extensions["ecard"].public_url
    register_error_handlers(app)
    from ecard.web import apispec

    apispec.install(app)  # JSON bodies bounded (size, depth) before any view
    from ecard.web import metrics
    from ecard.web.limits import init_limits

    metrics.install(app)
    _register_blueprints(app)
    init_limits(app, app.extensions["ecard"])
    _install_hooks(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from ecard.web import capture, cards, enroll, health, hospital, meta, recovery, wellknown

    for module in (health, wellknown, enroll, capture, cards, recovery, hospital, meta):
        app.register_blueprint(module.bp)
    # pages (ecard/web/pages.py) register here:
    from ecard.web.pages import init_pages

    init_pages(app)


#: Sent on every response; pages may set their own Content-Security-Policy first.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def _install_hooks(app: Flask) -> None:
    api_headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": API_CSP,
        "Cache-Control": "no-store",
    }

    @app.after_request
    def _security_headers(resp: Response) -> Response:
        wanted = (
            api_headers if (resp.mimetype or "").startswith("application/") else SECURITY_HEADERS
        )
        # One pass over the present names: werkzeug's setdefault raises and builds an HTTP
        # error object for every missing header, which costs more than the rest of this hook.
        present = {key.lower() for key, _ in resp.headers.items()}
        for key, value in wanted.items():
            if key.lower() not in present:
                resp.headers[key] = value
        return resp
