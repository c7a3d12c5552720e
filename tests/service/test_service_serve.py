"""`ecard serve` for real: gunicorn with the preloaded app, a fresh instance folder, metrics
aggregated over the workers (behind their token), links on the address it listens on, and a bad
setting refused in one line with exit 2."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from svc_helpers import free_port, http_get, wait_ready

pytestmark = pytest.mark.slow


def test_ecard_serve_creates_the_instance_and_serves(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    port = free_port()
    token = "metrics-" + "t" * 24
    env = {
        **os.environ,
        "ECARD_INSTANCE": str(instance),
        "ECARD_LOG_LEVEL": "warning",
        "ECARD_METRICS_TOKEN": token,
    }
    for name in ("ECARD_DATABASE_URL", "ECARD_PUBLIC_URL", "ECARD_ISSUER", "ECARD_BIND"):
        env.pop(name, None)
    server = subprocess.Popen(
        [sys.executable, "-m", "ecard.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        body = wait_ready(server, base)
        assert json.loads(body)["status"] == "ready"
        assert (instance / "ecard.sqlite3").exists() and (instance / "keys").is_dir()
        for _ in range(6):  # whichever worker answers, /metrics adds all workers up
            assert http_get(base + "/healthz")[0] == 200
        assert http_get(base + "/metrics")[0] == 401  # finding 13: not for anyone
        status, text = http_get(base + "/metrics", {"Authorization": f"Bearer {token}"})
        assert status == 200
        line = next(
            ln
            for ln in text.decode().splitlines()
            if ln.startswith('ecard_http_requests_total{endpoint="/healthz"')
        )
        assert float(line.rsplit(" ", 1)[1]) == 6.0
        node = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())
        assert stat.S_IMODE((instance / f"prometheus-{node}").stat().st_mode) == 0o700
        # Finding 9: links name the address served (--port), whatever the Host header says.
        status, page = http_get(base + "/", {"Host": "evil.example"})
        assert status == 200 and b"evil.example" not in page and base.encode() in page
        status, body = http_get(base + "/api/v1/nothing")
        assert status == 404 and json.loads(body)["error"] == "not_found"
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stderr:
            server.stderr.close()
    assert server.returncode == 0


def test_ecard_serve_refuses_the_test_only_challenge_seed(tmp_path: Path) -> None:
    """A seeded challenge is predictable: a recording timed to its cues would pass every time."""
    env = {**os.environ, "ECARD_INSTANCE": str(tmp_path / "i"), "ECARD_LIVENESS_SEED": "7"}
    done = subprocess.run(
        [sys.executable, "-m", "ecard.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2  # a bad setting is the operator's input
    assert "ECARD_LIVENESS_SEED" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "i").exists()  # refused before anything was prepared


@pytest.mark.parametrize(
    ("name", "value"),
    [("ECARD_MAX_FRAMES", "abc"), ("ECARD_WORKERS", "0"), ("ECARD_RATELIMIT_ENABLED", "maybe")],
)
def test_ecard_serve_refuses_a_bad_setting_in_one_line(tmp_path: Path, name: str, value: str):
    env = {**os.environ, "ECARD_INSTANCE": str(tmp_path / "i"), name: value}
    done = subprocess.run(
        [sys.executable, "-m", "ecard.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert name in done.stderr and repr(value) in done.stderr
    assert "Traceback" not in done.stderr and "pydantic" not in done.stderr.lower()
    assert not (tmp_path / "i").exists()
