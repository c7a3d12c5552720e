"""``ecard serve``: gunicorn with the app preloaded (see :mod:`ecard.web.gunicorn_conf`)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from ecard.config import Settings, load_settings
from ecard.errors import ConfigError


class EcardServer(BaseApplication):
    """A gunicorn application that builds the Flask app with :func:`ecard.web.create_app`."""

    def __init__(self, settings: Settings, metrics_dir: Path | None = None) -> None:
        self.settings = settings
        self.metrics_dir = metrics_dir
        self.wsgi_app_obj: Any = None
        super().__init__()

    def load_config(self) -> None:
        from ecard.web import gunicorn_conf

        for key in dir(gunicorn_conf):
            if key.startswith("_") or key not in self.cfg.settings:
                continue
            self.cfg.set(key, getattr(gunicorn_conf, key))
        for key, value in gunicorn_conf.options(self.settings).items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        if self.wsgi_app_obj is None:
            from ecard.web import create_app
            from ecard.web.metrics import use_multiprocess_dir

            app = create_app(self.settings)
            if self.metrics_dir is not None:
                use_multiprocess_dir(app, self.metrics_dir)
            self.wsgi_app_obj = app
        return self.wsgi_app_obj


def serve_settings(
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """The settings ``ecard serve`` runs with: the environment (or ``env``), with ``--host``,
    ``--port`` and ``--workers`` over ``ECARD_BIND`` / ``ECARD_WORKERS``.

    Raises :class:`ConfigError` (exit 2, one line naming the variable) on a bad value.
    """
    base = load_settings(env)
    if host is None and port is None and workers is None:
        return base
    source = dict(os.environ if env is None else env)
    if host is not None or port is not None:
        h = base.bind_host if host is None else host
        h = f"[{h}]" if ":" in h and not h.startswith("[") else h
        source["ECARD_BIND"] = f"{h}:{base.bind_port if port is None else port}"
    if workers is not None:
        source["ECARD_WORKERS"] = str(workers)
    return load_settings(source)


def serve(
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> int:
    """Prepare the instance folder and run gunicorn in the foreground until interrupted.

    ``host``/``port``/``workers`` ``None``: ``ECARD_BIND`` / ``ECARD_WORKERS`` (defaults
    127.0.0.1:8000, 2). Links, ``enroll_url``, the issuer and status list URIs use
    ``ECARD_PUBLIC_URL``, else this address (so ``--port 8123`` gives URLs on 8123).
    """
    settings = serve_settings(host, port, workers, env)
    if settings.liveness_seed is not None:
        raise ConfigError(
            "ECARD_LIVENESS_SEED makes every live challenge predictable: it is for tests only, "
            "and ecard serve refuses it."
        )
    if settings.liveness_challenge is not None:
        print(
            f"warning: ECARD_LIVENESS_CHALLENGE={settings.liveness_challenge}: no cues, and the "
            "one-shot upload of a recorded clip is allowed (demos and tests only)",
            file=sys.stderr,
        )
    if settings.public_url is None and settings.listens_on_every_interface:
        print(
            f"warning: listening on every interface ({settings.bind}) without ECARD_PUBLIC_URL: "
            f"links and cards name {settings.public_base}; set ECARD_PUBLIC_URL to the address "
            "other machines use",
            file=sys.stderr,
        )
    settings.prepare_instance()
    metrics_dir = prepare_metrics_dir(settings)
    # prometheus_client reads this once, when first imported (lazily, by create_app): the
    # only environment hand-off of ecard (see ecard.web.metrics).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    EcardServer(settings, metrics_dir).run()
    return 0


def prepare_metrics_dir(settings: Settings) -> Path:
    """This node's Prometheus multi-process folder, emptied (samples of a previous run would
    add up with this one's) and private (0700)."""
    folder = settings.prometheus_dir
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    os.chmod(folder, 0o700)
    return folder
