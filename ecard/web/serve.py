"""``ecard serve``: gunicorn with the app preloaded (see :mod:`ecard.web.gunicorn_conf`)."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from ecard.config import load_settings
from ecard.errors import ConfigError


class EcardServer(BaseApplication):
    """A gunicorn application that builds the Flask app with :func:`ecard.web.create_app`."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.wsgi_app_obj: Any = None
        super().__init__()

    def load_config(self) -> None:
        from ecard.web import gunicorn_conf

        for key in dir(gunicorn_conf):
            if key.startswith("_") or key not in self.cfg.settings:
                continue
            self.cfg.set(key, getattr(gunicorn_conf, key))
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        if self.wsgi_app_obj is None:
            from ecard.web import create_app

            self.wsgi_app_obj = create_app()
        return self.wsgi_app_obj


def serve(host: str, port: int, workers: int | None = None) -> int:
    """Prepare the instance folder and run gunicorn in the foreground until interrupted."""
    settings = load_settings()
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
    settings.instance.mkdir(parents=True, exist_ok=True)
    metrics_dir = settings.instance / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    # Must be set before prometheus_client is imported (it is, lazily, by create_app).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    options: dict[str, Any] = {"bind": f"{host}:{port}"}
    if workers:
        options["workers"] = workers
    EcardServer(options).run()
    return 0
