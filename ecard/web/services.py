"""The heavy objects of one service process, built once in ``create_app`` and kept in
``app.extensions["ecard"]``: settings, store, face models, signing keys and the DB guards.

Tests swap any of them by passing a ready object in the config mapping (``STORE``,
``FACE_MODELS``, ``KEYSTORE``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ecard.channels import AuthCache
from ecard.config import Settings
from ecard.errors import EcardError, NotReadyError
from ecard.store import Store, open_store
from ecard.store.audit import DbAttemptCounter, DbReplayGuard

if TYPE_CHECKING:
    from ecard.cards import Cards
    from ecard.faces.models import FaceModels
    from ecard.liveness.pad import PadModels
    from ecard.tokens.keys import KeyStore
    from ecard.tokens.pin import PinGuard, PinHasher


@dataclass(frozen=True)
class WebSettings:
    """HTTP-side settings: limits, rate limiting and the public base URL of the pages."""

    #: Largest request body in bytes (video or frames upload included).
    max_body_bytes: int = 20 * 1024 * 1024
    #: Most frames accepted in one liveness upload (about 20 s at 15 fps).
    max_frames: int = 300
    #: Longest clip accepted, in milliseconds.
    max_clip_ms: int = 20_000
    #: Largest frame side accepted, in pixels.
    max_frame_side: int = 1920
    ratelimit_enabled: bool = True
    #: flask-limiter storage: ``memory://`` (one process) or ``redis://host:port`` (shared).
    ratelimit_storage_url: str = "memory://"
    #: Default per-client-IP limit for every API route.
    ratelimit_ip: str = "300 per minute"
    #: Per-channel limit for routes that authenticate a channel.
    ratelimit_channel: str = "1200 per minute"
    #: Limit per client IP on routes that take a PIN or run liveness.
    ratelimit_sensitive: str = "20 per minute"
    public_url: str | None = None


def _flag(value: object) -> bool:
    return str(value).strip().lower() not in ("0", "false", "no", "off", "")


def load_web_settings(env: Mapping[str, Any]) -> WebSettings:
    d = WebSettings()
    return WebSettings(
        max_body_bytes=int(env.get("ECARD_MAX_BODY_BYTES", d.max_body_bytes)),
        max_frames=int(env.get("ECARD_MAX_FRAMES", d.max_frames)),
        max_clip_ms=int(env.get("ECARD_MAX_CLIP_MS", d.max_clip_ms)),
        max_frame_side=int(env.get("ECARD_MAX_FRAME_SIDE", d.max_frame_side)),
        ratelimit_enabled=_flag(env.get("ECARD_RATELIMIT_ENABLED", "1")),
        ratelimit_storage_url=str(
            env.get("ECARD_RATELIMIT_STORAGE_URL") or d.ratelimit_storage_url
        ),
        ratelimit_ip=str(env.get("ECARD_RATELIMIT_IP") or d.ratelimit_ip),
        ratelimit_channel=str(env.get("ECARD_RATELIMIT_CHANNEL") or d.ratelimit_channel),
        ratelimit_sensitive=str(env.get("ECARD_RATELIMIT_SENSITIVE") or d.ratelimit_sensitive),
        public_url=str(env["ECARD_PUBLIC_URL"]).rstrip("/")
        if env.get("ECARD_PUBLIC_URL")
        else None,
    )


@dataclass
class Services:
    """What every request needs; one per process (gunicorn preloads it before forking)."""

    settings: Settings
    web: WebSettings
    store: Store
    models: FaceModels
    keys: KeyStore | None
    #: The ``iss`` of issued cards and the base of status list URIs (ECARD_ISSUER / PUBLIC_URL).
    issuer: str = "http://127.0.0.1:8000"
    keys_error: str | None = None
    #: MiniFASNet paper/screen models (ecard/liveness/pad.py); loaded with the face models
    pad: PadModels | None = None
    replay: DbReplayGuard = field(init=False)
    attempts: DbAttemptCounter = field(init=False)
    pin_guard: PinGuard = field(init=False)
    pins: PinHasher = field(init=False)
    auth_cache: AuthCache = field(init=False)

    def __post_init__(self) -> None:
        from ecard.tokens.pin import PinGuard, PinHasher

        self.auth_cache = AuthCache()
        self.replay = DbReplayGuard(self.store)
        self.attempts = DbAttemptCounter(self.store)
        self.pin_guard = PinGuard(self.attempts)
        self.pins = PinHasher.open(self.settings.instance)

    def cards(self) -> Cards:
        from ecard.cards import Cards

        return Cards(self.store, self.pin_guard, self.pins)

    def require_keys(self) -> KeyStore:
        if self.keys is None:
            raise NotReadyError("The signing keys are not available.")
        return self.keys

    def require_models(self) -> FaceModels:
        if not self.models.ready:
            try:
                self.models.load()
            except EcardError as exc:
                raise NotReadyError("The face models are not loaded.") from exc
        return self.models

    def require_pad(self) -> PadModels:
        """The loaded PAD models, or 503: liveness never runs without its paper/screen check."""
        if self.pad is None:
            from ecard.liveness.pad import PadModels

            self.pad = PadModels()
        if not self.pad.ready:
            try:
                self.pad.load()
            except EcardError as exc:
                raise NotReadyError("The presentation-attack models are not loaded.") from exc
        return self.pad

    def after_fork(self) -> None:
        """Called in each gunicorn worker: no DB connection is shared across processes."""
        self.store.after_fork()


def build_services(settings: Settings, web: WebSettings, config: Mapping[str, Any]) -> Services:
    """Create (or take from ``config``) the store, models and keys; migrate the database."""
    settings.instance.mkdir(parents=True, exist_ok=True)
    store = config.get("STORE")
    if store is None:
        store = open_store(settings.database_url, migrate=True)
    models = config.get("FACE_MODELS")
    if models is None:
        from ecard.faces.models import FaceModels

        models = FaceModels()
        if _flag(config.get("LOAD_MODELS", "1")):
            # When loading fails /readyz reports it; liveness and registration answer 503.
            with contextlib.suppress(EcardError):
                models.load()
    pad = config.get("PAD_MODELS")
    if pad is None:
        from ecard.liveness.pad import PadModels

        pad = PadModels()
        if _flag(config.get("LOAD_MODELS", "1")):
            with contextlib.suppress(EcardError):
                pad.load()
    keys = config.get("KEYSTORE")
    keys_error = None
    if keys is None:
        try:
            keys = _open_keys(settings)
        except EcardError as exc:
            keys, keys_error = None, exc.message
    return Services(
        settings=settings,
        web=web,
        store=store,
        models=models,
        keys=keys,
        issuer=_issuer(config),
        keys_error=keys_error,
        pad=pad,
    )


def _issuer(config: Mapping[str, Any]) -> str:
    from ecard.tokens.cards import issuer_from_env

    return issuer_from_env({k: str(v) for k, v in config.items() if k.startswith("ECARD_")})


def _open_keys(settings: Settings) -> KeyStore:
    try:
        from ecard.tokens.keys import KeyStore
    except ModuleNotFoundError as exc:
        raise NotReadyError("The tokens package is not available.") from exc
    return KeyStore.open(settings.instance)
