"""Service throughput: ``POST /api/v1/cards/verify`` under gunicorn, driven by wrk on loopback.

Measures, in one run on one server: requests/s and latency percentiles of the verify endpoint
(HTTP Basic channel auth, ES256 signature check, card status read from the database, rate-limit
bookkeeping) and of ``GET /healthz`` (the trivial baseline of the same app), their ratio, and
the memory of each worker with the face models loaded (RSS, and PSS which splits the pages the
workers share with the preloading master).

Run: ``.venv/bin/python -m bench.bench_service`` (needs ``wrk``: ``apt-get install -y wrk``).
Environment: ``BENCH_SECONDS`` per round (default 5), ``BENCH_ROUNDS`` (default 3; the median
round is reported), ``BENCH_CONNECTIONS`` (default 32),
``ECARD_WORKERS`` / ``ECARD_THREADS`` (gunicorn, default 2 x 4).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def hello_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A bare WSGI app: what gunicorn alone can serve on this machine (no Flask, no ecard)."""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "15")])
    return [b'{"status":"ok"}']


def _bare_gunicorn(seconds: int, conns: int) -> dict[str, float]:
    port = _free_port()
    workers = os.environ.get("ECARD_WORKERS", "2")
    threads = os.environ.get("ECARD_THREADS", "4")
    kind = os.environ.get("ECARD_WORKER_CLASS", "gthread")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            workers,
            "-k",
            kind,
            "--threads",
            threads,
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--no-control-socket",
            "bench.bench_service:hello_app",
        ],
        cwd=REPO,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/")
        return _wrk(f"http://127.0.0.1:{port}/", seconds, conns, None)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(instance: Path) -> tuple[str, str]:
    """A channel and one issued card in a fresh instance: (Basic header, card token)."""
    import base64

    from ecard.cards.signing import card_signer
    from ecard.channels import add_channel
    from ecard.citizens import check_digit
    from ecard.config import load_settings
    from ecard.enrollment import Enrollments
    from ecard.store import open_store
    from ecard.store.models import Citizen
    from ecard.tokens.keys import KeyStore
    from ecard.tokens.pin import PinHasher

    settings = load_settings({"ECARD_INSTANCE": str(instance)})
    instance.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database_url)
    keys = KeyStore.open(instance)
    creds = add_channel(store, "bench", "enroll,verify")
    number = "11010519850317001" + check_digit("11010519850317001")
    with store.write() as s:
        s.add(
            Citizen(
                id_number=number,
                name="Bench Person",
                photo=b"",
                template=b"",
                created_at=datetime.now(UTC),
            )
        )
    from ecard.channels import authenticate

    enr = Enrollments(store)
    auth = enr.authorize(
        authenticate(store, creds.client_id, creds.client_secret), number, "Bench Person"
    )
    enr.consent(auth.enrollment_id, True)
    spec = enr.challenge(auth.enrollment_id, 1)
    enr.take_nonce(auth.enrollment_id, spec.nonce)
    enr.record_liveness(auth.enrollment_id, live=True, blinks=1, match=True, reason=None)
    signer = card_signer(keys, issuer="http://127.0.0.1:8000")
    issued = enr.issue(auth.enrollment_id, PinHasher.open(instance).hash("480613"), signer)
    store.close()
    basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
    return f"Basic {basic}", issued.token


def _wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"server did not become ready at {url}")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def _wrk(url: str, seconds: int, conns: int, script: Path | None) -> dict[str, float]:
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50_ms": pct["50"],
        "p99_ms": pct["99"],
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median throughput (its own latencies, not mixed with other runs)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def _memory(master_pid: int) -> list[dict[str, float]]:
    out = []
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        pss = int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1)) / 1024  # type: ignore[union-attr]
        out.append({"pid": float(pid), "rss_mb": rss, "pss_mb": pss})
    return out


def main() -> None:
    if shutil.which("wrk") is None:
        print("bench_service: wrk is not installed (apt-get install -y wrk); skipped")
        return
    seconds = int(os.environ.get("BENCH_SECONDS", "5"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    conns = int(os.environ.get("BENCH_CONNECTIONS", "32"))
    with tempfile.TemporaryDirectory(prefix="ecard-bench-") as tmp:
        instance = Path(tmp) / "instance"
        auth, card = _prepare(instance)
        port = _free_port()
        env = {
            **os.environ,
            "ECARD_INSTANCE": str(instance),
            "ECARD_RATELIMIT_IP": "10000000 per minute",
            "ECARD_RATELIMIT_ENABLED": os.environ.get("ECARD_RATELIMIT_ENABLED", "1"),
            "ECARD_RATELIMIT_CHANNEL": "10000000 per minute",
            "ECARD_LOG_LEVEL": "warning",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ecard.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=REPO,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base + "/readyz")
            script = Path(tmp) / "verify.lua"
            script.write_text(
                'wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(json.dumps({'token': card}))}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "{auth}"\n'
            )
            # One request by hand: the answer must be a valid card, not an error.
            req = urllib.request.Request(
                base + "/api/v1/cards/verify",
                data=json.dumps({"token": card}).encode(),
                headers={"Content-Type": "application/json", "Authorization": auth},
            )
            with urllib.request.urlopen(req) as r:
                assert json.load(r)["valid"] is True
            _wrk(base + "/healthz", 2, conns, None)  # warm-up
            # Alternate the two endpoints and keep the median round: the machine is shared.
            trivials, verifies = [], []
            for _ in range(rounds):
                trivials.append(_wrk(base + "/healthz", seconds, conns, None))
                verifies.append(_wrk(base + "/api/v1/cards/verify", seconds, conns, script))
            trivial, verify = _median(trivials), _median(verifies)
            memory = _memory(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    workers = os.environ.get("ECARD_WORKERS", "2")
    threads = os.environ.get("ECARD_THREADS", "4")
    kind = os.environ.get("ECARD_WORKER_CLASS", "gthread")
    load = os.getloadavg()[0]
    print(
        f"gunicorn {kind} {workers} workers x {threads} threads; wrk -t2 -c{conns}, "
        f"median of {rounds} alternating {seconds} s rounds; load average {load:.1f}"
    )
    for name, r in (("GET /healthz (trivial)", trivial), ("POST /api/v1/cards/verify", verify)):
        print(
            f"  {name:28s} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms"
            f"  p99 {r['p99_ms']:6.2f} ms  non-2xx {int(r['non_2xx'])}"
        )
    print(
        "  rounds req/s: healthz "
        + " ".join(f"{r['rps']:.0f}" for r in trivials)
        + ", verify "
        + " ".join(f"{r['rps']:.0f}" for r in verifies)
    )
    print(f"  verify / trivial throughput ratio: {verify['rps'] / trivial['rps']:.2f}")
    bare = _bare_gunicorn(seconds, conns)
    print(
        f"  {'bare WSGI app, same gunicorn':28s} {bare['rps']:8.0f} req/s"
        f"  p50 {bare['p50_ms']:6.2f} ms  p99 {bare['p99_ms']:6.2f} ms  (the server's own ceiling)"
    )
    for m in memory:
        print(f"  worker {int(m['pid'])}: RSS {m['rss_mb']:.0f} MB, PSS {m['pss_mb']:.0f} MB")
    ok = verify["rps"] >= 1500 and verify["p99_ms"] <= 50
    print(f"  target (>= 1500 req/s, p99 <= 50 ms): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
