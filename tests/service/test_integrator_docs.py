"""What an integrator reads and fetches: the public documents answer CORS, /openapi.json names
every operation, error, reason and state, the ``/`` page's example is keyboard-reachable, and
the examples of ``/`` and the README run as written against a real ``ecard serve``."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from ecard.errors import EcardError

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = {"Origin": "https://app.channel.example"}


# --- CORS on the public documents -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/.well-known/jwks.json", "/api/v1/status-lists/1"])
def test_public_documents_answer_cors_and_its_preflight(client, path: str) -> None:
    r = client.get(path, headers=ORIGIN)
    assert r.status_code in (200, 404)  # an unused list is 404, still readable cross-origin
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers
    pre = client.options(
        path,
        headers={
            **ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        },
    )
    assert pre.status_code == 204 and pre.data == b""
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in pre.headers["Access-Control-Allow-Methods"]
    assert pre.headers["Access-Control-Allow-Headers"] == "if-none-match"
    assert "Access-Control-Allow-Credentials" not in pre.headers


def test_a_status_list_in_use_is_served_with_cors(client, store, creds) -> None:
    from svc_helpers import issue_card

    card = issue_card(client, store, creds, seq=3)
    uri = _claims(card["card"])["status"]["status_list"]["uri"]
    r = client.get(uri.split("127.0.0.1:8000", 1)[-1], headers=ORIGIN)
    assert r.status_code == 200 and r.mimetype == "application/statuslist+jwt"
    assert r.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "path", ["/api/v1/cards/verify", "/api/v1/enrollments", "/api/v1/cards/me", "/healthz"]
)
def test_the_other_api_routes_have_no_cors(client, path: str) -> None:
    r = client.options(path, headers={**ORIGIN, "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = client.get(path, headers=ORIGIN)
    assert "Access-Control-Allow-Origin" not in r.headers


# --- the OpenAPI document ---------------------------------------------------------------------


def _operations(doc: dict) -> list[tuple[str, str, dict]]:
    return [(p, m, op) for p, item in doc["paths"].items() for m, op in item.items()]


def _all_errors() -> list[type[EcardError]]:
    seen: list[type[EcardError]] = []
    todo: list[type[EcardError]] = [EcardError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


def test_every_operation_has_a_unique_snake_case_operation_id(client) -> None:
    doc = client.get("/openapi.json").json
    ids = [op.get("operationId") for _, _, op in _operations(doc)]
    assert all(ids) and len(ids) == len(set(ids)), ids
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) for i in ids), ids
    by_route = {(p, m): op["operationId"] for p, m, op in _operations(doc)}
    assert by_route[("/api/v1/cards/verify", "post")] == "cards_verify"
    assert by_route[("/.well-known/jwks.json", "get")] == "wellknown_jwks"
    # stable: the same ids from a second application
    assert client.get("/openapi.json").json["paths"] == doc["paths"]


def test_the_document_names_the_configured_public_origin(tmp_path, store, unloaded_models) -> None:
    from svc_helpers import app_config

    from ecard.web import create_app

    cfg = app_config(tmp_path, store, unloaded_models, ECARD_PUBLIC_URL="https://ecard.example.cn")
    doc = create_app(cfg).test_client().get("/openapi.json").json
    assert [s["url"] for s in doc["servers"]] == ["https://ecard.example.cn"]


def test_every_error_code_reason_and_state_is_in_the_document(client) -> None:
    from ecard.enrollment.state import EnrollmentState
    from ecard.liveness.result import REASONS

    doc = client.get("/openapi.json").json
    schemas = doc["components"]["schemas"]
    codes = schemas["ErrorCode"]["enum"]
    for cls in _all_errors():
        assert cls.code in codes, cls.__name__
        assert schemas["ErrorCode"]["x-status"][cls.code] in {c.status for c in _all_errors()}
    assert schemas["ErrorCode"]["x-status"]["pin_locked"] == 423
    assert set(REASONS) | {"no_match", "consent_declined"} <= set(schemas["LivenessReason"]["enum"])
    assert schemas["EnrollmentState"]["enum"] == [s.value for s in EnrollmentState]
    assert "ErrorCode" in schemas["Error"]["properties"]["error"]["description"]


def test_the_main_request_bodies_have_valid_examples(client) -> None:
    from jsonschema_rs import Draft202012Validator

    doc = client.get("/openapi.json").json
    examples = {}
    for _, _, op in _operations(doc):
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        if "example" in body:
            examples[op["operationId"]] = body["example"]
            schema = {**body["schema"], "components": doc["components"]}
            assert Draft202012Validator(schema).is_valid(body["example"]), op["operationId"]
    assert {
        "enroll_authorize",
        "enroll_consent",
        "enroll_set_pin",
        "cards_verify",
        "cards_login",
        "hospital_scan",
        "hospital_confirm",
    } <= set(examples)


# --- the / page ---------------------------------------------------------------------------------


class _Pre(HTMLParser):
    """The <pre> blocks of a page: their attributes and text."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "pre":
            self._open, self._text = dict(attrs), []

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self._open is not None:
            self.blocks.append((self._open, "".join(self._text)))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)


def _pre_blocks(page: str) -> list[tuple[dict[str, str | None], str]]:
    parser = _Pre()
    parser.feed(page)
    return parser.blocks


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_offline_example_is_focusable_and_named(client, lang: str) -> None:
    page = client.get("/", headers={"Accept-Language": lang}).get_data(as_text=True)
    blocks = _pre_blocks(page)
    assert blocks, "the page shows its example"
    for attrs, _ in blocks:  # every scrollable code block (axe scrollable-region-focusable)
        assert attrs.get("tabindex") == "0", attrs
        assert (attrs.get("aria-label") or "").strip(), attrs
    example = dict((a.get("id"), a) for a, _ in blocks)["offline-example"]
    assert example["data-i18n-aria-label"] == "index.offline"


# --- the examples, run against a real `ecard serve` ---------------------------------------------


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _readme_block(lang: str, contains: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)
    found = [b for b in blocks if contains in b]
    assert len(found) == 1, (lang, contains)
    return found[0]


def _run_python(code: str, card_token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"card_token = {card_token!r}\n" + code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_the_examples_of_the_page_and_the_readme_run_against_ecard_serve(tmp_path: Path) -> None:
    """``ecard demo`` then ``ecard serve --port N`` (no ECARD_PUBLIC_URL), as ``make serve``
    does. The README's curl walk-through runs with the printed credentials and the port
    substituted, except its liveness upload (it needs a recorded clip of the citizen, whose ID
    photo is someone else: that step is recorded through the domain, as the other service tests
    do); it yields the card. The ``/`` example runs verbatim with that card, the README's
    offline example with the port substituted: both accept it, and refuse it once suspended."""
    from svc_helpers import free_port, http_get, wait_ready

    from ecard.enrollment import Enrollments
    from ecard.store import open_store

    if shutil.which("curl") is None or shutil.which("jq") is None:
        pytest.skip("the README walk-through needs curl and jq")
    instance = tmp_path / "instance"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ECARD_INSTANCE": str(instance),
        "ECARD_LOG_LEVEL": "warning",
        "ECARD_LIVENESS_CHALLENGE": "2",
        "ECARD_RATELIMIT_ENABLED": "0",
    }
    for name in ("ECARD_DATABASE_URL", "ECARD_PUBLIC_URL", "ECARD_ISSUER", "ECARD_BIND"):
        env.pop(name, None)
    ecard = [sys.executable, "-m", "ecard.cli"]
    demo = subprocess.run(
        [*ecard, "demo"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    channel = json.loads(demo.stdout)["channel"]
    server = subprocess.Popen(
        [*ecard, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(server, base)

        # the README's curl walk-through, up to the camera step ...
        walk = _readme_block("sh", "curl")
        walk = walk.replace(
            "client_id:client_secret", f"{channel['client_id']}:{channel['client_secret']}"
        ).replace("http://127.0.0.1:8000", base)
        lines = walk.splitlines()
        camera = next(i for i, ln in enumerate(lines) if "video=@clip.mp4" in ln)
        first = "\n".join(lines[:camera]) + '\necho "NONCE=$NONCE"\n'
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", first],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
        out = run.stdout
        enr = json.loads((tmp_path / "enr.json").read_text())
        assert '"state":"consented"' in out.replace(" ", "")
        nonce = re.search(r"NONCE=(\S+)\s*$", out)
        assert nonce and nonce.group(1) != "null", out
        # ... the liveness upload needs a clip of this citizen: recorded through the domain
        store = open_store(f"sqlite:///{instance / 'ecard.sqlite3'}")
        try:
            domain = Enrollments(store)
            domain.take_nonce(enr["enrollment_id"], nonce.group(1))
            domain.record_liveness(
                enr["enrollment_id"], live=True, blinks=2, match=True, reason=None
            )
        finally:
            store.close()
        # ... and the PIN step, as written
        rest = "\n".join(ln for ln in lines[camera + 2 :] if ln.strip())
        run = subprocess.run(
            [
                "bash",
                "-euo",
                "pipefail",
                "-c",
                f"EID={enr['enrollment_id']}; TOK={enr['enrollment_token']}\n{rest}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
        issued = json.loads(run.stdout)
        token = issued["card"]

        # the card names the address the server was started on (issue 11)
        claims = _claims(token)
        assert claims["iss"] == base
        assert claims["status"]["status_list"]["uri"].startswith(base + "/api/v1/status-lists/")

        # the / page's example, verbatim
        status, page = http_get(base + "/")
        assert status == 200
        blocks = _pre_blocks(page.decode())
        assert [a.get("id") for a, _ in blocks] == ["offline-example"]  # the page's only code
        page_code = html.unescape(blocks[0][1])
        assert base in page_code and "127.0.0.1:8000" not in page_code
        readme_code = _readme_block("python", "OfflineVerifier").replace(
            "http://127.0.0.1:8000", base
        )
        expected = {
            "page": f"Demo Citizen {issued['card_no']} valid accept",
            "readme": f"accept: {issued['card_no']} Demo Citizen",
        }
        for name, code in (("page", page_code), ("readme", readme_code)):
            ran = _run_python(code, token)
            assert ran.returncode == 0 and ran.stderr == "", (name, ran.stderr)
            assert ran.stdout.strip() == expected[name], (name, ran.stdout)

        # reported lost: both examples refuse it (the status list is fetched afresh)
        r = subprocess.run(
            [
                "curl",
                "-s",
                "-f",
                "-H",
                f"Authorization: Bearer {token}",
                "-H",
                "Content-Type: application/json",
                "-d",
                '{"pin": "480613"}',
                base + "/api/v1/cards/suspend",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, r.stdout
        ran = _run_python(page_code, token)
        assert ran.returncode == 0 and ran.stdout.strip().endswith("suspended refuse"), ran
        ran = _run_python(readme_code, token)
        assert ran.returncode == 0 and ran.stdout.strip() == "refuse: suspended", ran
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stderr is not None:
            server.stderr.close()
