"""gunicorn settings for ``ecard serve``.

The app is preloaded in the master so the face models (about 130 MB) are loaded once and shared
copy-on-write by the workers; each worker then drops inherited database connections. ``gthread``
workers keep connections alive for API clients; liveness uploads take seconds, hence the timeout.

The fixed values are module constants (so ``gunicorn -c python:ecard.web.gunicorn_conf`` still
picks them up); what an operator sets (bind, workers, worker class, threads, log level) comes
from :class:`ecard.config.Settings` through :func:`options`. Nothing here reads the environment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecard.config import Settings

preload_app = True
timeout = 120
graceful_timeout = 20
keepalive = 5
#: Access logs are off: the pages' URLs carry enrollment tokens.
accesslog = None
errorlog = "-"
limit_request_line = 8190
#: gunicorn's control socket (a fixed path in $HOME) would clash between two servers.
control_socket_disable = True


def options(settings: Settings) -> dict[str, Any]:
    """The operator's gunicorn settings (``ECARD_BIND``, ``ECARD_WORKERS``, ...)."""
    return {
        "bind": settings.bind,
        "workers": settings.workers,
        "worker_class": settings.worker_class,
        "threads": settings.threads,
        "loglevel": settings.log_level,
    }


def post_fork(server: Any, worker: Any) -> None:
    app = getattr(server.app, "wsgi_app_obj", None)
    if app is not None:
        app.extensions["ecard"].after_fork()


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: its live gauges leave the node's multi-process folder."""
    if getattr(server.app, "metrics_dir", None) is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, path=str(server.app.metrics_dir))
