"""The heavy objects of one service process, built once in ``create_app`` and kept in
``app.extensions["ecard"]``: settings, store, face models, signing keys and the DB guards.

Tests swap any of them by passing a ready object in the config mapping (``STORE``,
``FACE_MODELS``, ``PAD_MODELS``, ``KEYSTORE``; ``LOAD_MODELS`` false: do not load the models).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ecard.channels import AuthCache
from ecard.config import Settings, parse_flag
from ecard.errors import EcardError, NotReadyError
from ecard.store import Store, open_store
from ecard.store.audit import DbAttemptCounter, DbReplayGuard

if TYPE_CHECKING:
    from ecard.cards import Cards
    from ecard.faces.models import FaceModels
    from ecard.liveness.pad import PadModels
    from ecard.tokens.keys import KeyStore
    from ecard.tokens.pin import PinGuard, PinHasher


#: The HTTP-side settings (limits, rate limits, public origin) are fields of the one
#: :class:`~ecard.config.Settings`; the name stays for the type hints of the upload readers.
WebSettings = Settings


@dataclass
class Services:
    """What every request needs; one per process (gunicorn preloads it before forking)."""

    settings: Settings
    store: Store
    models: FaceModels
    keys: KeyStore | None
    #: The ``iss`` of issued cards and the base of status list URIs
    #: (:attr:`Settings.card_issuer <ecard.config.Settings.card_issuer>`).
    issuer: str = "http://127.0.0.1:8000"
    #: The one public origin of links and ``enroll_url`` (ECARD_PUBLIC_URL, else the address
    #: ``ecard serve`` listens on): never the request's Host header.
    public_url: str = "http://127.0.0.1:8000"
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

    @property
    def web(self) -> Settings:
        """The limits and rate limits (fields of :attr:`settings`)."""
        return self.settings

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

            self.pad = PadModels(manifest=self.settings.models_manifest)
        if not self.pad.ready:
            try:
                self.pad.load()
            except EcardError as exc:
                raise NotReadyError("The presentation-attack models are not loaded.") from exc
        return self.pad

    def after_fork(self) -> None:
        """Called in each gunicorn worker: no DB connection is shared across processes."""
        self.store.after_fork()


def build_services(settings: Settings, objects: Mapping[str, Any] | None = None) -> Services:
    """Create (or take from ``objects``) the store, models and keys; migrate the database.

    ``objects`` holds the test-only keys of ``create_app``'s mapping: ready ``STORE``,
    ``FACE_MODELS``, ``PAD_MODELS``, ``KEYSTORE`` and the ``LOAD_MODELS`` flag.
    """
    objects = objects or {}
    settings.prepare_instance()  # 0700, whatever the umask
    load_models = parse_flag("LOAD_MODELS", objects.get("LOAD_MODELS", True))
    store = objects.get("STORE")
    if store is None:
        store = open_store(settings.database_url, migrate=True)
    models = objects.get("FACE_MODELS")
    if models is None:
        from ecard.faces.models import FaceModels

        models = FaceModels(folder=settings.models_dir, manifest=settings.models_manifest)
        if load_models:
            # When loading fails /readyz reports it; liveness and registration answer 503.
            with contextlib.suppress(EcardError):
                models.load()
    pad = objects.get("PAD_MODELS")
    if pad is None:
        from ecard.liveness.pad import PadModels

        pad = PadModels(manifest=settings.models_manifest)
        if load_models:
            with contextlib.suppress(EcardError):
                pad.load()
    keys = objects.get("KEYSTORE")
    keys_error = None
    if keys is None:
        try:
            keys = _open_keys(settings)
        except EcardError as exc:
            keys, keys_error = None, exc.message
    return Services(
        settings=settings,
        store=store,
        models=models,
        keys=keys,
        issuer=settings.card_issuer,
        public_url=settings.public_base,
        keys_error=keys_error,
        pad=pad,
    )


def _open_keys(settings: Settings) -> KeyStore:
    try:
        from ecard.tokens.keys import KeyStore
    except ModuleNotFoundError as exc:
        raise NotReadyError("The tokens package is not available.") from exc
    return KeyStore.open(settings.instance)
