"""The CLI contract of `ecard keys rotate`, `ecard verify`, `ecard scan`: exit 0 / 2 / 1, JSON
on stdout, exactly one line on stderr on failure, never a traceback."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecard.cli import main
from ecard.tokens.cards import CardClaims, issue_card
from ecard.tokens.keys import KeyStore
from ecard.tokens.qr import issue_qr, render_png

ISSUER = "http://127.0.0.1:8000"  # the CLI's default issuer


@pytest.fixture
def inst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "instance"
    monkeypatch.setenv("ECARD_INSTANCE", str(path))
    for var in ("ECARD_ISSUER", "ECARD_PUBLIC_URL"):
        monkeypatch.delenv(var, raising=False)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict], list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err.splitlines()


def fresh_card(inst: Path, **kw: object) -> str:
    claims = CardClaims(
        card_id="c_1",
        card_no="E310100000001",
        name="王五",
        id_number_masked="3101**********0011",
        status_idx=0,
        status_uri=f"{ISSUER}/api/v1/status-lists/1",
    )
    return issue_card(KeyStore.open(inst), claims, issuer=ISSUER, **kw)  # type: ignore[arg-type]


def test_keys_rotate_creates_then_rotates(inst: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, (first,), err = run(capsys, "keys", "rotate")
    assert code == 0 and err == [] and first["previous"] is None
    code, (second,), _ = run(capsys, "keys", "rotate")
    assert code == 0 and second["previous"] == first["kid"] and second["kid"] != first["kid"]
    code, listed, _ = run(capsys, "keys", "list")
    assert [(e["kid"], e["state"]) for e in listed] == [
        (first["kid"], "verify-only"),
        (second["kid"], "active"),
    ]
    code, _, _ = run(capsys, "keys", "retire", first["kid"])
    assert code == 0
    code, (jwks,), _ = run(capsys, "keys", "jwks")
    assert [k["kid"] for k in jwks["keys"]] == [second["kid"]]


def test_retire_the_active_key_is_bad_input(inst: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, (rotated,), _ = run(capsys, "keys", "rotate")
    code, out, err = run(capsys, "keys", "retire", rotated["kid"])
    assert code == 2 and out == [] and len(err) == 1 and err[0].startswith("ecard: key_active:")


def test_a_kid_starting_with_a_dash_is_a_kid(
    inst: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """base64url kids start with "-" one time in 64: never read as an unknown option."""
    run(capsys, "keys", "rotate")
    code, out, err = run(capsys, "keys", "retire", "-zNoSuchKid")
    assert code == 2 and out == [] and len(err) == 1
    assert "No such option" not in err[0] and err[0].startswith("ecard: "), err


def test_verify_a_good_card(inst: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = fresh_card(inst)
    code, (result,), err = run(capsys, "verify", token)
    assert code == 0 and err == []
    assert result["valid"] is True and result["claims"]["name"] == "王五"


def test_verify_with_a_jwks_file_and_stdin(
    inst: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = fresh_card(inst)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(KeyStore.open(inst).jwks()))
    monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
    code, (result,), _ = run(capsys, "verify", "-", "--jwks", str(jwks))
    assert code == 0 and result["kid"] == KeyStore.open(inst).signing_key().kid


@pytest.mark.parametrize(
    ("mangle", "code_name"),
    [
        (lambda t: t[:-6] + "AAAAAA", "token_bad_signature"),
        (lambda t: "garbage", "token_malformed"),
        (lambda t: t.replace(t.split(".")[0], "eyJhbGciOiJub25lIn0"), "token_wrong_type"),
    ],
)
def test_verify_a_bad_token_is_exit_2_with_one_line(
    inst: Path, capsys: pytest.CaptureFixture[str], mangle, code_name: str
) -> None:
    token = mangle(fresh_card(inst))
    code, out, err = run(capsys, "verify", token)
    assert code == 2 and out == [] and len(err) == 1
    assert err[0].startswith(f"ecard: {code_name}:")
    assert token not in err[0]


def test_verify_expired(inst: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import timedelta

    token = fresh_card(inst, now=time.time() - 7200, lifetime=timedelta(hours=1))
    code, _, err = run(capsys, "verify", token)
    assert code == 2 and err[0].startswith("ecard: token_expired:")


def test_verify_other_issuer(inst: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = fresh_card(inst)
    code, _, err = run(capsys, "verify", token, "--issuer", "https://other.example")
    assert code == 2 and err[0].startswith("ecard: token_bad_issuer:")


def test_verify_without_any_keys(inst: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "verify", "a.b.c")
    assert code == 2 and len(err) == 1 and "--jwks" in err[0]


def test_scan_a_picture(inst: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qr = issue_qr(KeyStore.open(inst), card_no="E310100000001", issuer=ISSUER)
    picture = tmp_path / "qr.png"
    picture.write_bytes(render_png(qr.token))
    code, (result,), err = run(capsys, "scan", str(picture))
    assert code == 0 and err == []
    assert result["valid"] is True and result["card_no"] == "E310100000001"


@pytest.mark.parametrize(
    ("content", "code_name"),
    [(b"", "unreadable_media"), (b"\x89PNG not really", "unreadable_media")],
)
def test_scan_bad_pictures(
    inst: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, code_name: str
) -> None:
    KeyStore.open(inst)
    picture = tmp_path / "x.png"
    picture.write_bytes(content)
    code, out, err = run(capsys, "scan", str(picture))
    assert code == 2 and out == [] and len(err) == 1 and err[0].startswith(f"ecard: {code_name}:")


def test_scan_a_card_qr_of_someone_else(
    inst: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    KeyStore.open(inst)
    qr = issue_qr(KeyStore.open(tmp_path / "other"), card_no="E1", issuer=ISSUER)
    picture = tmp_path / "qr.png"
    picture.write_bytes(render_png(qr.token))
    code, _, err = run(capsys, "scan", str(picture))
    assert code == 2 and err[0].startswith("ecard: token_bad_signature:")


def test_scan_missing_file(inst: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "scan", "/nonexistent/qr.png")
    assert code == 2 and len(err) == 1


def test_console_script_prints_no_traceback(inst: Path) -> None:
    exe = Path(sys.executable).with_name("ecard")
    proc = subprocess.run(
        [str(exe), "verify", "not-a-token"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.fixture
def issuer_site(inst: Path):
    """A real local HTTP server publishing the instance's JWKS and a status list token."""
    import http.server
    import threading

    from ecard.tokens.status import CardStatus, StatusList, issue_status_list_token

    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    keys = KeyStore.open(inst)

    def publish(**marks: int) -> None:
        sl = StatusList(16)
        for idx, status in marks.items():
            sl.set(int(idx[1:]), status)
        uri = f"{base}/api/v1/status-lists/1"
        pages["/api/v1/status-lists/1"] = issue_status_list_token(
            keys, sl, uri=uri, issuer=base
        ).encode()

    pages["/.well-known/jwks.json"] = json.dumps(keys.jwks()).encode()
    publish()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base, keys, publish, CardStatus
    server.shutdown()
    server.server_close()


def test_verify_against_a_jwks_url_with_status(
    issuer_site, capsys: pytest.CaptureFixture[str]
) -> None:
    base, keys, publish, card_status = issuer_site
    claims = CardClaims(
        card_id="c_1",
        card_no="E310100000001",
        name="王五",
        id_number_masked="3101**********0011",
        status_idx=1,
        status_uri=f"{base}/api/v1/status-lists/1",
    )
    token = issue_card(keys, claims, issuer=base)
    jwks_url = f"{base}/.well-known/jwks.json"
    code, (result,), err = run(capsys, "verify", token, "--jwks", jwks_url, "--issuer", base)
    assert code == 0 and err == [] and result["status"] == "valid"
    publish(i1=card_status.SUSPENDED)
    code, (result,), err = run(capsys, "verify", token, "--jwks", jwks_url, "--issuer", base)
    assert code == 2 and result["status"] == "suspended" and result["valid"] is False
    assert err == ["ecard: card_suspended: the card is suspended."]
    code, _, err = run(capsys, "verify", token, "--jwks", base + "/missing.json", "--issuer", base)
    assert code == 1 and len(err) == 1 and err[0].startswith("ecard: fetch_failed:")


def test_concurrent_rotations_from_separate_processes(inst: Path) -> None:
    """Four `ecard keys rotate` at once: the flock keeps the index whole, one key active."""
    exe = Path(sys.executable).with_name("ecard")
    procs = [
        subprocess.Popen([str(exe), "keys", "rotate"], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    kids = [json.loads(p.communicate(timeout=120)[0])["kid"] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    entries = KeyStore(inst).load().entries()
    assert sorted(e.kid for e in entries) == sorted(kids)
    assert [e.state for e in entries].count("active") == 1
    for e in entries:
        assert (inst / "keys" / f"{e.kid}.pem").exists()
