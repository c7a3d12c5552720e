"""End-to-end harness: the real app served on a free 127.0.0.1 port, Debian's Chromium driven by
Playwright with a fake camera that plays a ``.y4m`` made from a real clip.

Everything started here is stopped here: the werkzeug server thread is shut down and joined, the
browser is closed by Playwright's context manager even when a test fails.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts" / "e2e"
#: The test-only seed of the live challenge (ECARD_LIVENESS_SEED): every capture of a server
#: started with it draws ``plan_live_challenge(random.Random(SEED))``, so a test clip can blink
#: on its cues. Without it (the default) the challenge is random, as in production.
LIVENESS_SEED = 6
#: The demo citizen's ID number: a valid GB 11643 number (check digit computed below).
ID_NUMBER_17 = "11010519491231002"


def chromium_args(y4m: Path) -> list[str]:
    return [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(
            "needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium; "
            ".ci/run installs it)"
        )
    pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e .[dev])")
    return CHROMIUM


@dataclass
class LiveServer:
    """The app served for real; ``url`` has no trailing slash."""

    url: str
    app: Any
    enroll_client: tuple[str, str]
    desk_client: tuple[str, str]

    @property
    def services(self) -> Any:
        return self.app.extensions["ecard"]

    def register_citizen(self, name: str, photo: Path) -> str:
        from ecard.citizens import add_citizen, check_digit

        id_number = ID_NUMBER_17 + check_digit(ID_NUMBER_17)
        svc = self.services
        add_citizen(
            svc.store, id_number=id_number, name=name, photo=photo.read_bytes(), models=svc.models
        )
        return id_number

    def start_enrollment(self, id_number: str, name: str) -> dict[str, Any]:
        """``POST /api/v1/enrollments`` as the city-service app does."""
        cid, secret = self.enroll_client
        auth = base64.b64encode(f"{cid}:{secret}".encode()).decode()
        req = urllib.request.Request(
            self.url + "/api/v1/enrollments",
            data=json.dumps({"id_number": id_number, "name": name}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 201
            body: dict[str, Any] = json.loads(resp.read())
        return body


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra ECARD_* settings of the served app; a test overrides it with
    ``@pytest.mark.parametrize("server_env", [{...}])``."""
    return {}


@pytest.fixture
def live_server(
    tmp_path: Path, face_models: Any, server_env: dict[str, str]
) -> Iterator[LiveServer]:
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        """No access log: request lines would carry the one-time enrollment token."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            return None

    from ecard.channels import add_channel
    from ecard.web import create_app

    # Bind first, so that the app knows its own URL: it is the issuer (``iss``, status list
    # URIs), as ECARD_PUBLIC_URL makes it in a deployment.
    holder: list[Any] = []
    server = make_server(
        "127.0.0.1",
        0,
        lambda environ, start: holder[0](environ, start),
        threaded=True,
        request_handler=QuietHandler,
    )
    url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    try:
        app = create_app(
            {
                "ECARD_INSTANCE": str(tmp_path / "instance"),
                "ECARD_PUBLIC_URL": url,
                # The flow makes a dozen PIN calls within a minute from one address.
                "ECARD_RATELIMIT_ENABLED": "0",
                "FACE_MODELS": face_models,
                **server_env,
            }
        )
        holder.append(app)
        store = app.extensions["ecard"].store
        city = add_channel(store, "Test city app", "enroll")
        desk = add_channel(store, "Test hospital", "scan")
        thread.start()
        yield LiveServer(
            url, app, (city.client_id, city.client_secret), (desk.client_id, desk.client_secret)
        )
    finally:
        if thread.is_alive():
            server.shutdown()
            thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="session")
def shared_file(shared_data: Path) -> Callable[..., Path]:
    """``shared_file("blink", "videos", name)``: a file under ../shared/data, or a skip (the
    root conftest's ``shared_data`` fixture skips when the whole folder is absent)."""

    def find(*parts: str) -> Path:
        path = shared_data.joinpath(*parts)
        if not path.exists():
            pytest.skip(f"needs ../shared/data ({path} is absent)")
        return path

    return find


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where a test saves its screenshots (tests/_artifacts/e2e/<test>/, git-ignored)."""
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    yield folder
