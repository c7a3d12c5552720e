"""gunicorn settings for ``ecard serve`` (also usable: ``-c python:ecard.web.gunicorn_conf``).

The app is preloaded in the master so the face models (about 130 MB) are loaded once and shared
copy-on-write by the workers; each worker then drops inherited database connections. ``gthread``
workers keep connections alive for API clients; liveness uploads take seconds, hence the timeout.
"""

from __future__ import annotations

import os
from typing import Any

bind = os.environ.get("ECARD_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("ECARD_WORKERS", "2"))
worker_class = os.environ.get("ECARD_WORKER_CLASS", "gthread")
threads = int(os.environ.get("ECARD_THREADS", "4"))
preload_app = True
timeout = 120
graceful_timeout = 20
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = os.environ.get("ECARD_LOG_LEVEL", "info")
limit_request_line = 8190
#: gunicorn's control socket (a fixed path in $HOME) would clash between two servers.
control_socket_disable = True


def post_fork(server: Any, worker: Any) -> None:
    app = getattr(server.app, "wsgi_app_obj", None)
    if app is not None:
        app.extensions["ecard"].after_fork()


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
