"""The one Settings object: typed variables, one-line errors naming the variable, the public
origin, package data, private instance files, and no environment read outside ecard.config."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

from ecard.config import Settings, load_settings, parse_flag
from ecard.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


# --- values and defaults ---------------------------------------------------------------------


def test_defaults() -> None:
    s = load_settings({})
    assert s.instance == Path("./instance").resolve()
    assert (s.max_body_bytes, s.max_frames, s.max_clip_ms, s.max_frame_side) == (
        20 * 1024 * 1024,
        300,
        20_000,
        1920,
    )
    assert s.ratelimit_enabled is True and s.ratelimit_storage_url == "memory://"
    assert (s.bind, s.workers, s.worker_class, s.threads, s.log_level) == (
        "127.0.0.1:8000",
        2,
        "gthread",
        4,
        "info",
    )
    assert s.public_base == s.card_issuer == "http://127.0.0.1:8000"
    assert s.metrics_token is None and s.liveness_challenge is None and s.liveness_seed is None


def test_settings_are_frozen() -> None:
    s = load_settings({})
    with pytest.raises(ValueError, match="frozen"):
        s.max_frames = 1  # type: ignore[misc]


def test_a_mapping_never_mixes_with_the_process_environment(monkeypatch) -> None:
    monkeypatch.setenv("ECARD_MAX_FRAMES", "12")
    assert load_settings({}).max_frames == 300
    assert load_settings().max_frames == 12  # the environment, when no mapping is given
    assert Settings().max_frames == 300  # Settings() alone reads nothing


def test_values_are_typed() -> None:
    s = load_settings(
        {
            "ECARD_MAX_FRAMES": "10",
            "ECARD_RATELIMIT_ENABLED": "off",
            "ECARD_LOG_LEVEL": "WARNING",
            "ECARD_WORKERS": "3",
            "ECARD_PUBLIC_URL": "https://ecard.example/",
            "ECARD_METRICS_TOKEN": "t" * 20,
            "ECARD_DATABASE_URL": "",  # empty means not set
        }
    )
    assert s.max_frames == 10 and s.ratelimit_enabled is False and s.workers == 3
    assert s.log_level == "warning" and s.public_url == "https://ecard.example"
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("ecard.sqlite3")
    assert "t" * 20 not in repr(s)  # the token is a secret


@pytest.mark.parametrize(
    ("env", "base", "issuer"),
    [
        ({}, "http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ({"ECARD_BIND": "127.0.0.1:8123"}, "http://127.0.0.1:8123", "http://127.0.0.1:8123"),
        ({"ECARD_BIND": "0.0.0.0:8123"}, "http://127.0.0.1:8123", "http://127.0.0.1:8123"),
        ({"ECARD_BIND": "[::1]:9000"}, "http://[::1]:9000", "http://[::1]:9000"),
        (
            {"ECARD_BIND": "0.0.0.0:80", "ECARD_PUBLIC_URL": "https://ecard.example/"},
            "https://ecard.example",
            "https://ecard.example",
        ),
        (
            {"ECARD_PUBLIC_URL": "https://ecard.example", "ECARD_ISSUER": "https://id.example"},
            "https://ecard.example",
            "https://id.example",
        ),
    ],
)
def test_public_origin_and_issuer(env: dict[str, str], base: str, issuer: str) -> None:
    s = load_settings(env)
    assert (s.public_base, s.card_issuer) == (base, issuer)


# --- one line naming the variable ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ECARD_MAX_FRAMES", "abc", "ECARD_MAX_FRAMES must be a whole number, not 'abc'."),
        ("ECARD_MAX_FRAMES", "0", "ECARD_MAX_FRAMES must be at least 1, not '0'."),
        ("ECARD_MAX_BODY_BYTES", "1.5", "ECARD_MAX_BODY_BYTES must be a whole number"),
        ("ECARD_MAX_CLIP_MS", "99999999", "ECARD_MAX_CLIP_MS must be at most 600000"),
        ("ECARD_MAX_FRAME_SIDE", "-3", "ECARD_MAX_FRAME_SIDE must be at least 64"),
        ("ECARD_RATELIMIT_ENABLED", "maybe", "ECARD_RATELIMIT_ENABLED must be true or false"),
        ("ECARD_RATELIMIT_IP", "lots", "ECARD_RATELIMIT_IP must be a rate limit"),
        ("ECARD_RATELIMIT_STORAGE_URL", "redis", "ECARD_RATELIMIT_STORAGE_URL must be a"),
        ("ECARD_LIVENESS_CHALLENGE", "two", "ECARD_LIVENESS_CHALLENGE must be 'random' or a"),
        ("ECARD_LIVENESS_CHALLENGE", "99", "ECARD_LIVENESS_CHALLENGE must be between 0 and 10"),
        ("ECARD_LIVENESS_SEED", "seven", "ECARD_LIVENESS_SEED (tests only) must be a whole"),
        ("ECARD_PUBLIC_URL", "ecard.example", "ECARD_PUBLIC_URL must be an http:// or https://"),
        ("ECARD_ISSUER", "javascript:x", "ECARD_ISSUER must be an http:// or https://"),
        ("ECARD_BIND", "8000", "ECARD_BIND must be host:port"),
        ("ECARD_BIND", "127.0.0.1:70000", "ECARD_BIND must be host:port"),
        ("ECARD_WORKERS", "0", "ECARD_WORKERS must be at least 1"),
        ("ECARD_THREADS", "many", "ECARD_THREADS must be a whole number"),
        ("ECARD_WORKER_CLASS", "eventlet", "ECARD_WORKER_CLASS must be one of 'gthread' or"),
        ("ECARD_LOG_LEVEL", "loud", "ECARD_LOG_LEVEL must be one of 'debug'"),
        ("ECARD_METRICS_TOKEN", "short", "ECARD_METRICS_TOKEN must be at least 16 characters"),
        ("ECARD_STATUS_LIST_EXP_S", "86400", "ECARD_STATUS_LIST_EXP_S must be at most 3600"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({name: value})
    text = info.value.message
    assert text.startswith(message)
    assert "\n" not in text and "pydantic" not in text.lower()
    assert info.value.exit_code == 2


def test_secrets_are_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"ECARD_METRICS_TOKEN": "s3cr3t"})
    assert "s3cr3t" not in info.value.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[("0", False), ("false", False), ("no", False), ("off", False), (False, False)],
        *[("1", True), ("true", True), ("yes", True), ("on", True), (True, True)],
    ],
)
def test_flags_are_typed(value: object, expected: bool) -> None:
    """Finding 12 (part): ``TESTING="0"`` used to mean true (``bool("0")``)."""
    assert parse_flag("TESTING", value) is expected


def test_a_bad_flag_names_itself() -> None:
    with pytest.raises(ConfigError, match=r"^TESTING must be true or false"):
        parse_flag("TESTING", "perhaps")


def test_create_app_reads_testing_as_a_boolean(tmp_path: Path) -> None:
    from ecard.web import create_app

    base = {"ECARD_INSTANCE": str(tmp_path / "i"), "LOAD_MODELS": "0"}
    assert create_app({**base, "TESTING": "0"}).testing is False
    assert create_app({**base, "TESTING": "1"}).testing is True
    with pytest.raises(ConfigError, match=r"^LOAD_MODELS must be true or false"):
        create_app({**base, "LOAD_MODELS": "sometimes"})
    with pytest.raises(ConfigError, match=r"^ECARD_MAX_FRAMES must be a whole number"):
        create_app({**base, "ECARD_MAX_FRAMES": "abc"})


def test_create_app_takes_a_ready_settings_object(tmp_path: Path) -> None:
    from ecard.web import create_app

    settings = load_settings(
        {"ECARD_INSTANCE": str(tmp_path / "i"), "ECARD_PUBLIC_URL": "https://ecard.example"}
    )
    app = create_app(settings)
    svc = app.extensions["ecard"]
    assert svc.settings is settings and svc.web is settings
    assert svc.public_url == svc.issuer == "https://ecard.example"


# --- nothing reads the environment at import -------------------------------------------------

#: Where ecard touches os.environ, and why (everything else goes through ecard.config).
ALLOWED_ENVIRON = {
    "ecard/config.py": "load_settings: the one reader",
    "ecard/web/serve.py": "PROMETHEUS_MULTIPROC_DIR hand-off (prometheus_client reads it)",
    "ecard/liveness/media.py": "quiets OpenCV's logging before cv2 loads (a write, not a read)",
    "ecard/cli/__init__.py": "click's tab-completion variable, read in main(), not at import",
}


def test_only_the_config_module_reads_the_environment() -> None:
    found = {}
    for path in sorted((ROOT / "ecard").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if re.search(r"\bos\.environ\b|\bgetenv\(|from os import .*environ", text):
            found[str(path.relative_to(ROOT))] = True
    assert set(found) <= set(ALLOWED_ENVIRON), sorted(set(found) - set(ALLOWED_ENVIRON))


def test_importing_the_package_reads_no_variable() -> None:
    """With every path variable set to nonsense, importing still works and changes nothing."""
    code = (
        "import ecard.faces.models as m, ecard.faces.match as f, ecard.web.gunicorn_conf as g;"
        "print(m.MANIFEST_PATH.name, f.CALIBRATION_PATH.name, hasattr(g, 'bind'))"
    )
    env = {
        **os.environ,
        "ECARD_MODELS_MANIFEST": "/nonexistent/m.json",
        "ECARD_CALIBRATION": "/nonexistent/c.json",
        "ECARD_WORKERS": "not-a-number",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["manifest.json", "calibration.json", "False"]


# --- package data ----------------------------------------------------------------------------


def test_manifest_and_calibration_are_package_data() -> None:
    """A wheel installed outside the checkout finds both files through importlib.resources."""
    from ecard.faces.match import load_calibration
    from ecard.faces.models import MANIFEST_PATH, read_manifest

    data = files("ecard.faces") / "data"
    assert (data / "manifest.json").is_file() and (data / "calibration.json").is_file()
    assert Path(str(data / "manifest.json")) == MANIFEST_PATH
    assert read_manifest() and 0.4 < load_calibration().threshold < 0.6
    settings = load_settings({})
    assert settings.models_manifest == MANIFEST_PATH and settings.calibration.is_file()


def test_package_data_patterns_ship_the_files(tmp_path: Path) -> None:
    """setuptools (as a wheel build would) lists both files among the package's files."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]
    assert "*.json" in patterns.get("*", []) + patterns.get("ecard.faces.data", [])
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "-q",
            "egg_info",
            "--egg-base",
            str(tmp_path),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    sources = (tmp_path / "ecard.egg-info" / "SOURCES.txt").read_text().splitlines()
    assert "ecard/faces/data/manifest.json" in sources
    assert "ecard/faces/data/calibration.json" in sources


# --- private instance files (finding 5) ------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_fresh_instance_is_private_whatever_the_umask(tmp_path: Path, loose_umask) -> None:
    from ecard.web import create_app

    instance = tmp_path / "instance"
    app = create_app({"ECARD_INSTANCE": str(instance), "LOAD_MODELS": "0"})
    svc = app.extensions["ecard"]
    with svc.store.write() as s:  # a write: SQLite's -wal and -shm exist now
        from sqlalchemy import text

        s.execute(text("SELECT 1"))
    assert _mode(instance) == 0o700
    db = instance / "ecard.sqlite3"
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        assert path.exists(), path
        assert _mode(path) == 0o600, (path, oct(_mode(path)))
    assert _mode(instance / "keys") == 0o700
    pems = list((instance / "keys").glob("*.pem"))
    assert pems and all(_mode(p) == 0o600 for p in pems)
    assert _mode(instance / "pin_pepper") == 0o600
    svc.store.close()


def test_an_existing_loose_instance_is_closed_again(tmp_path: Path, loose_umask) -> None:
    """An instance made by an older version (0755 folder, 0644 database and pepper)."""
    from ecard.store import open_store
    from ecard.tokens.pin import load_pepper

    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    os.chmod(instance, 0o755)
    db = instance / "ecard.sqlite3"
    old = open_store(f"sqlite:///{db}")
    old.close()
    load_pepper(instance)
    for path in (db, instance / "pin_pepper"):
        os.chmod(path, 0o644)
    from ecard.web import create_app

    app = create_app({"ECARD_INSTANCE": str(instance), "LOAD_MODELS": "0"})
    assert _mode(instance) == 0o700
    assert _mode(db) == 0o600 and _mode(instance / "pin_pepper") == 0o600
    app.extensions["ecard"].store.close()


def test_the_status_list_ttl_cannot_outlive_its_expiry() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"ECARD_STATUS_LIST_EXP_S": "300", "ECARD_STATUS_LIST_TTL_S": "600"})
    assert info.value.message.startswith("ECARD_STATUS_LIST_TTL_S (600) must not exceed")
    ok = load_settings({"ECARD_STATUS_LIST_EXP_S": "300", "ECARD_STATUS_LIST_TTL_S": "120"})
    assert (ok.status_list_exp_s, ok.status_list_ttl_s) == (300, 120)
