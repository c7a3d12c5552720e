"""The service commands: channels, citizens, db upgrade, demo (exit codes per CONTRACT.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from svc_helpers import make_id_number

from ecard.cli import main


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    inst = tmp_path / "instance"
    monkeypatch.setenv("ECARD_INSTANCE", str(inst))
    monkeypatch.delenv("ECARD_DATABASE_URL", raising=False)
    return inst


def test_channels_add_prints_credentials_once(instance: Path, capsys) -> None:
    assert main(["channels", "add", "City app", "--scopes", "enroll,verify"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"client_id", "client_secret"} and len(out["client_secret"]) >= 40
    from ecard.channels import authenticate
    from ecard.store import open_store

    store = open_store(f"sqlite:///{instance / 'ecard.sqlite3'}")
    ident = authenticate(store, out["client_id"], out["client_secret"])
    assert ident.scopes == {"enroll", "verify"}
    raw = (instance / "ecard.sqlite3").read_bytes() + (instance / "ecard.sqlite3-wal").read_bytes()
    assert out["client_secret"].encode() not in raw  # only its hash is stored
    store.close()
    assert main(["channels", "add", "City app", "--scopes", "scan"]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("scopes", ["", "enroll,admin", "read"])
def test_channels_add_refuses_unknown_scopes(instance: Path, capsys, scopes: str) -> None:
    assert main(["channels", "add", "X", "--scopes", scopes]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ecard: bad_input:") and err.count("\n") == 1


def test_citizens_add_refuses_a_bad_id_number_before_reading_faces(instance, tmp_path, capsys):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"not used")
    code = main(
        [
            "citizens",
            "add",
            "--id-number",
            "110105194912310021",
            "--name",
            "A",
            "--photo",
            str(photo),
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.startswith("ecard: invalid_id_number:")
    assert main(["citizens", "add", "--id-number", "x", "--name", "A", "--photo", "/nope.jpg"]) == 2


def test_db_upgrade_is_idempotent(instance: Path, capsys) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0
    assert (instance / "ecard.sqlite3").exists()


@pytest.mark.shared_data
def test_citizens_add_import_and_demo(instance: Path, tmp_path: Path, shared_data: Path, capsys):
    faces = shared_data / "faces"
    photo = faces / "barack_obama" / "fr__obama.jpg"
    n1, n2, n3 = make_id_number(1), make_id_number(2), make_id_number(3)
    assert main(["citizens", "add", "--id-number", n1, "--name", "B O", "--photo", str(photo)]) == 0
    assert json.loads(capsys.readouterr().out)["added"] is True

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photo.read_bytes())
    (folder / "two.jpg").write_bytes((faces / "_multi_face" / "fr__two_people.jpg").read_bytes())
    csv = tmp_path / "registry.csv"
    csv.write_text(f"id_number,name,photo\n{n1},B O,a.jpg\n{n2},C D,two.jpg\n{n3},E F,a.jpg\n")
    assert main(["citizens", "import", str(csv), "--photos", str(folder)]) == 2
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["skipped"] == "already_exists"
    assert lines[1]["error"] == "multiple_faces"
    assert lines[2]["added"] is True
    assert lines[3] == {"added": 1, "skipped": 1, "failed": 1}

    assert main(["demo"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["demo"]) == 0
    assert json.loads(capsys.readouterr().out) == first  # idempotent: same credentials
    assert first["citizen"]["id_number"] == "11010519491231002X"


@pytest.mark.shared_data
def test_demo_enroll_link_and_own_photo(instance: Path, shared_data: Path, capsys) -> None:
    """`make serve` prints a working enrollment link; `--photo` puts the newcomer's face in."""
    from sqlalchemy import select

    from ecard.enrollment import Enrollments
    from ecard.faces.match import FaceTemplate, match_template, template_from_photo
    from ecard.faces.models import shared_models
    from ecard.store import open_store
    from ecard.store.models import Citizen, Enrollment

    assert main(["demo", "--enroll", "--port", "8123"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    url = out["enroll_url"]
    assert url.startswith("http://127.0.0.1:8123/enroll/") and url in captured.err
    store = open_store(f"sqlite:///{instance / 'ecard.sqlite3'}")
    try:
        with store.read() as s:
            enrollment_id = s.scalars(select(Enrollment.id)).one()
        Enrollments(store).check_token(enrollment_id, url.rsplit("/", 1)[1])  # the link opens it
        assert Enrollments(store).view(enrollment_id).state == "authorized"

        own = shared_data / "faces" / "barack_obama" / "fr__obama.jpg"
        assert main(["demo", "--photo", str(own)]) == 0
        again = json.loads(capsys.readouterr().out)
        assert again["channel"] == out["channel"] and "enroll_url" not in again
        with store.read() as s:
            row = s.scalars(select(Citizen)).one()
            stored = FaceTemplate.from_bytes(row.template)
        assert row.photo == own.read_bytes()
        second = shared_data / "faces" / "barack_obama" / "fr__obama2.jpg"
        probe = template_from_photo(second.read_bytes(), models=shared_models())
        assert match_template(stored, [probe.encoding]).match  # now the newcomer's own face
    finally:
        store.close()

    assert main(["demo", "--photo", "/nope.jpg"]) == 2


@pytest.mark.parametrize(
    ("env_bind", "argv", "bind"),
    [
        (None, [], "127.0.0.1:8000"),
        ("127.0.0.1:8765", [], "127.0.0.1:8765"),
        ("127.0.0.1:8765", ["--port", "8123"], "127.0.0.1:8123"),
        ("127.0.0.1:8765", ["--host", "::1"], "[::1]:8765"),
        (None, ["--host", "localhost", "--port", "9000", "--workers", "3"], "localhost:9000"),
    ],
)
def test_serve_listens_on_ecard_bind_unless_told_otherwise(
    instance: Path, monkeypatch: pytest.MonkeyPatch, env_bind, argv: list[str], bind: str
) -> None:
    """`--host`/`--port` override ECARD_BIND (they used to default to 127.0.0.1:8000 and hide
    it); the issuer and links follow the same address."""
    from ecard.web.serve import EcardServer

    seen: list = []
    monkeypatch.setattr(EcardServer, "run", lambda self: seen.append(self.settings))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # serve() sets it; restored after
    if env_bind is not None:
        monkeypatch.setenv("ECARD_BIND", env_bind)
    assert main(["serve", *argv]) == 0
    (settings,) = seen
    assert settings.bind == bind
    assert settings.card_issuer == f"http://{bind}".replace("0.0.0.0", "127.0.0.1")
    assert settings.workers == (3 if "--workers" in argv else 2)


@pytest.mark.shared_data
def test_demo_links_follow_the_configured_origin(
    instance: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("ECARD_BIND", "127.0.0.1:8444")
    assert main(["demo", "--enroll"]) == 0
    assert json.loads(capsys.readouterr().out)["enroll_url"].startswith(
        "http://127.0.0.1:8444/enroll/"
    )
    monkeypatch.setenv("ECARD_PUBLIC_URL", "https://ecard.example/")
    assert main(["demo", "--enroll", "--port", "9000"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["enroll_url"].startswith("https://ecard.example/enroll/")
    assert "Hospital desk: https://ecard.example/hospital" in captured.err
