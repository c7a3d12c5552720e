"""Bad usage and bad input on every `ecard` command: exit 2 and exactly one line on stderr,
never a traceback (CONTRACT.md, Command line). Nothing here loads the face models: click refuses
these before any work starts."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sharedpaths import REPO

from ecard.cli import main

HEAVY = ("numpy", "cv2", "dlib", "PIL", "sqlalchemy", "flask", "gunicorn", "jwt")


@pytest.fixture
def inst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in [v for v in os.environ if v.startswith("ECARD_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("ECARD_INSTANCE", str(tmp_path / "instance"))
    return tmp_path / "instance"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Placeholders in the tables: an existing file, a file that is not an EAR series, an
    existing folder, a missing path."""
    (tmp_path / "some.txt").write_text("0.3\n0.3\n0.3\n")
    (tmp_path / "bad.txt").write_text("0.3\nabc\n")
    (tmp_path / "latin1.csv").write_bytes(b"id_number,name,photo\n1,Jos\xe9,a.jpg\n")
    (tmp_path / "wide.csv").write_text("id_number,name,photo\n" + "x" * 200_000 + "\n")
    (tmp_path / "folder").mkdir()
    return {
        "FILE": str(tmp_path / "some.txt"),
        "NOT_A_SERIES": str(tmp_path / "bad.txt"),
        "LATIN1_CSV": str(tmp_path / "latin1.csv"),
        "WIDE_CSV": str(tmp_path / "wide.csv"),
        "DIR": str(tmp_path / "folder"),
        "MISSING": str(tmp_path / "missing.jpg"),
    }


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A case that is not refused must fail the test, not start gunicorn."""

    def refuse(*args: object, **kwargs: object) -> int:
        raise AssertionError("ecard serve started with a bad argument")

    monkeypatch.setattr("ecard.web.serve.serve", refuse)


COMMANDS = {"keys", "citizens", "channels", "db", "liveness", "blinks", "match", "verify"}
COMMANDS |= {"scan", "demo", "serve", "retire", "add", "import"}

# (argv, a word the one line must contain). FILE, DIR and MISSING are replaced by paths.
BAD_USAGE: list[tuple[list[str], str]] = [
    ([], "Missing command"),
    (["nope"], "No such command 'nope'"),
    (["--bogus"], "No such option '--bogus'"),
    (["keys"], "Missing command (one of: jwks, list, retire, rotate)"),
    (["keys", "burn"], "No such command 'burn'"),
    (["keys", "retire"], "Missing argument 'KID'"),
    (["citizens"], "Missing command"),
    (["channels"], "Missing command"),
    (["db"], "Missing command"),
    (["db", "downgrade"], "No such command 'downgrade'"),
    # liveness
    (["liveness"], "Missing argument 'VIDEO'"),
    (["liveness", "MISSING"], "does not exist"),
    (["liveness", "FILE", "--blinks", "11"], "'--blinks': must be a whole number between 0 and 10"),
    (["liveness", "FILE", "--blinks", "-1"], "--blinks"),
    (["liveness", "FILE", "--blinks", "2.5"], "--blinks"),
    (["liveness", "FILE", "--blinks", "two"], "--blinks"),
    (["liveness", "FILE", "--blinks"], "'--blinks' requires an argument"),
    (["liveness", "FILE", "--frames", "3"], "No such option '--frames'"),
    # blinks
    (["blinks", "FILE"], "Missing option '--fps'"),
    (["blinks", "FILE", "--fps", "0"], "'--fps': must be above 0 and at most 1000"),
    (["blinks", "FILE", "--fps", "-30"], "--fps"),
    (["blinks", "FILE", "--fps", "nan"], "--fps"),
    (["blinks", "FILE", "--fps", "inf"], "--fps"),
    (["blinks", "FILE", "--fps", "1e400"], "--fps"),
    (["blinks", "FILE", "--fps", "1001"], "--fps"),
    (["blinks", "FILE", "--fps", "thirty"], "--fps"),
    (["blinks", "MISSING", "--fps", "30"], "does not exist"),
    (["blinks", "DIR", "--fps", "30"], "is a directory"),
    # match
    (["match"], "Missing argument 'ID_PHOTO'"),
    (["match", "FILE"], "Missing argument 'PHOTO_OR_VIDEO...'"),
    # verify, scan
    (["verify"], "Missing argument 'TOKEN'"),
    (["verify", "a.b.c", "--jwks"], "'--jwks' requires an argument"),
    (["scan"], "Missing argument 'IMAGE'"),
    (["scan", "MISSING"], "does not exist"),
    (["scan", "DIR"], "is a directory"),
    # citizens, channels
    (["citizens", "add", "--name", "A", "--photo", "FILE"], "Missing option '--id-number'"),
    (["citizens", "add", "--id-number", "1", "--photo", "FILE"], "Missing option '--name'"),
    (["citizens", "add", "--id-number", "1", "--name", "A"], "Missing option '--photo'"),
    (["citizens", "add", "--id-number", "1", "--name", "A", "--photo", "MISSING"], "--photo"),
    (["citizens", "import", "MISSING", "--photos", "DIR"], "does not exist"),
    (["citizens", "import", "FILE"], "Missing option '--photos'"),
    (["citizens", "import", "FILE", "--photos", "FILE"], "is a file"),
    (["channels", "add", "X"], "Missing option '--scopes'"),
    (["channels", "add", "--scopes", "scan"], "Missing argument 'NAME'"),
    # demo, serve
    (["demo", "--port", "0"], "'--port': must be a whole number between 1 and 65535"),
    (["demo", "--port", "http"], "--port"),
    (["demo", "--photo", "MISSING"], "--photo"),
    (["serve", "--port", "0"], "'--port': must be a whole number between 1 and 65535"),
    (["serve", "--port", "65536"], "--port"),
    (["serve", "--port", "80a"], "--port"),
    (["serve", "--workers", "0"], "'--workers': must be a whole number between 1 and"),
    (["serve", "--workers", "100000"], "--workers"),
    (["serve", "--host"], "'--host' requires an argument"),
    (["serve", "--host", "a b"], "'--host': must be a host name or an IP address"),
    (["serve", "--host", "evil.example/x?"], "--host"),
    (["demo", "--host", "-x"], "--host"),
]


@pytest.mark.parametrize(
    ("argv", "needle"), BAD_USAGE, ids=[" ".join(a) or "(nothing)" for a, _ in BAD_USAGE]
)
def test_bad_usage_is_exit_2_with_one_line(
    inst: Path,
    files: dict[str, str],
    no_server: None,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    needle: str,
) -> None:
    code = main([files.get(a, a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2 and out == ""
    assert len(lines) == 1 and lines[0].strip(), err
    assert lines[0].startswith("ecard: error: ") and needle in lines[0]
    assert "Usage:" not in err and "Traceback" not in err
    path = ["ecard"]
    for word in argv:
        if word not in COMMANDS:
            break
        path.append(word)
    assert f"(see '{' '.join(path)} --help')" in lines[0]  # where to read more, on the line


PHOTO_ZERO = ["--photo", "/dev/zero"]
ADD = ["citizens", "add", "--id-number", "11010519491231002X"]

# Values only the domain can judge: the command starts, and refuses with the error's code.
BAD_INPUT: list[tuple[list[str], str]] = [
    (["blinks", "NOT_A_SERIES", "--fps", "30"], "ecard: bad_series:"),
    (["channels", "add", "X", "--scopes", "admin"], "ecard: bad_input:"),
    (["channels", "add", "X", "--scopes", ""], "ecard: bad_input:"),
    (
        ["citizens", "add", "--id-number", "110105194912310021", "--name", "A", "--photo", "FILE"],
        "ecard: invalid_id_number:",
    ),
    (
        [*ADD, "--name", "Zh\x1b[2Jang", "--photo", "FILE"],
        "ecard: invalid_name:",
    ),
    (
        [*ADD, "--name", "\u202egnahZ", "--photo", "FILE"],
        "ecard: invalid_name:",
    ),
    (["keys", "retire", "no-such-kid"], "ecard: bad_input: No signing keys"),
    (["keys", "jwks"], "ecard: bad_input: No signing keys"),
    (["verify", "a.b.c"], "--jwks FILE_OR_URL"),
    (["verify", "a.b.c", "--jwks", "MISSING"], "ecard: bad_input: No such file"),
    (["verify", "a.b.c", "--jwks", "DIR"], "ecard: bad_input: Is a directory"),
    (["verify", "a.b.c", "--jwks", "FILE"], "ecard: token_malformed:"),
    # endless or huge files are refused after the command's bound, not read to the end
    (["verify", "a.b.c", "--jwks", "/dev/zero"], "ecard: bad_input: The JWKS file is larger"),
    (["citizens", "import", "FILE", "--photos", "DIR"], "ecard: bad_input: some.txt: missing"),
    (["citizens", "import", "LATIN1_CSV", "--photos", "DIR"], "latin1.csv is not UTF-8 text"),
    (["citizens", "import", "/dev/zero", "--photos", "DIR"], "/dev/zero is not a regular file"),
    (["citizens", "import", "WIDE_CSV", "--photos", "DIR"], "wide.csv is not a readable CSV file"),
    (["scan", "/dev/zero"], "ecard: media_too_large:"),
    (["liveness", "/dev/zero"], "ecard: unreadable_media: /dev/zero is not a regular file"),
    (["match", "/dev/zero", "FILE"], "ecard: unreadable_media: /dev/zero is not a regular file"),
    (["blinks", "/dev/zero", "--fps", "30"], "ecard: bad_series: The EAR series is larger"),
    (
        ["citizens", "add", "--id-number", "11010519491231002X", "--name", "A", *PHOTO_ZERO],
        "ecard: media_too_large: The photo is larger",
    ),
    (["demo", "--photo", "/dev/zero"], "ecard: media_too_large: The photo is larger"),
]


@pytest.mark.parametrize(("argv", "start"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_exit_2_with_the_error_code(
    inst: Path, files: dict[str, str], capsys: pytest.CaptureFixture[str], argv, start: str
) -> None:
    code = main([files.get(a, a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2 and out == ""
    assert len(lines) == 1 and start in lines[0] and "Traceback" not in err


@pytest.mark.parametrize(
    "stdin",
    [
        io.TextIOWrapper(io.BytesIO(b"\xff\xfe\x00 not text"), encoding="utf-8"),
        io.StringIO("a" * 70_000),
    ],
    ids=["binary", "endless"],
)
def test_a_token_on_stdin_that_is_no_token(
    inst: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin
) -> None:
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["verify", "-"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ecard: token_malformed: The token on stdin")


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("ECARD_LIVENESS_CHALLENGE", "two"),
        ("ECARD_LIVENESS_CHALLENGE", "99"),
        ("ECARD_BIND", "localhost"),
        ("ECARD_WORKERS", "0"),
        ("ECARD_PUBLIC_URL", "ftp://ecard.example"),
    ],
)
def test_a_bad_setting_is_exit_2_naming_the_variable(
    inst: Path,
    no_server: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    var: str,
    value: str,
) -> None:
    monkeypatch.setenv(var, value)
    for argv in (["keys", "list"], ["serve"], ["verify", "a.b.c"]):
        assert main(argv) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"ecard: config_error: {var} ")
    # The command line is parsed first: help and usage errors need no settings.
    assert main(["--help"]) == 0 and "Commands:" in capsys.readouterr().out
    assert main(["liveness", "--help"]) == 0 and "--blinks" in capsys.readouterr().out
    assert main(["serve", "--port", "0"]) == 2
    assert capsys.readouterr().err.startswith("ecard: error: Invalid value for '--port'")


def test_help_is_on_stdout_and_exit_0(inst: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for command in ("liveness", "match", "blinks", "citizens", "channels", "keys", "verify"):
        assert command in out
    for argv in (["keys", "-h"], ["serve", "--help"], ["citizens", "add", "--help"]):
        assert main(argv) == 0
        assert capsys.readouterr().out.startswith(f"Usage: ecard {' '.join(argv[:-1])}")


def test_interrupted_is_exit_130_and_quiet(
    inst: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr("ecard.tokens.keys.KeyStore.load", interrupted)
    assert main(["keys", "list"]) == 130
    assert capsys.readouterr() == ("", "")


def test_unexpected_error_is_exit_1_one_line_without_its_message(
    inst: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object) -> object:
        raise RuntimeError("secret-material-in-a-message")

    monkeypatch.setattr("ecard.tokens.keys.KeyStore.load", broken)
    assert main(["keys", "list"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("ecard: internal_error: unexpected RuntimeError")
    assert "secret-material" not in err and "Traceback" not in err
    with pytest.raises(RuntimeError):  # for a bug report, on request
        main(["--traceback", "keys", "list"])


def test_a_reader_that_leaves_early_is_quiet(
    inst: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ecard keys list | head -1`: no "Broken pipe" error blamed on the user's input."""

    class GoneReader(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", GoneReader())
    assert main(["keys", "rotate"]) == 1
    assert capsys.readouterr().err == ""


def test_console_script_usage_error_is_one_line(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("ecard")
    env = {**os.environ, "ECARD_INSTANCE": str(tmp_path / "i")}
    proc = subprocess.run(
        [str(exe), "liveness", str(tmp_path / "none.mp4"), "--blinks", "99"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("ecard: error: ")


def test_help_and_usage_errors_import_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from ecard.cli import main\n"
        "main(['--help']); main(['liveness', '--help']); main(['serve', '--port', '0'])\n"
        "main(['citizens', 'add', '--help'])\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    env = {**os.environ, "ECARD_INSTANCE": str(tmp_path / "i")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "argv",
    [
        ["liveness", "DIR"],
        ["match", "FILE", "FILE"],
        ["citizens", "add", "--id-number", "11010519491231002X", "--name", "A", "--photo", "FILE"],
    ],
    ids=["liveness", "match", "citizens add"],
)
def test_the_face_commands_load_the_models_from_ecard_models_dir(
    inst: Path,
    files: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    """ECARD_MODELS_DIR is the one place the CLI takes its model files from: a folder without
    them is exit 1 (not bad input), one line naming the missing model."""
    (tmp_path / "no-models").mkdir()
    monkeypatch.setenv("ECARD_MODELS_DIR", str(tmp_path / "no-models"))
    assert main([files.get(a, a) for a in argv]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ecard: model_missing:")


def test_the_error_line_never_carries_terminal_controls(
    inst: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file name with ESC sequences or a bidi override is shown escaped, not obeyed."""
    name = str(tmp_path / "x\x1b[2J\x07\u202egpj.exe")
    assert main(["verify", "a.b.c", "--jwks", name]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("ecard: bad_input: No such file")
    assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    assert "\\u001b[2J\\u0007\\u202egpj.exe" in line


def test_version_and_tab_completion(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("ecard"))
    env = {**os.environ, "ECARD_INSTANCE": str(tmp_path / "i")}
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and version.stdout.startswith("ecard ")
    asked = {**env, "_ECARD_COMPLETE": "bash_complete", "COMP_WORDS": "ecard ke", "COMP_CWORD": "1"}
    done = subprocess.run([exe], capture_output=True, text=True, env=asked, timeout=60)
    assert done.returncode == 0 and done.stdout.split() == ["plain,keys"]
    assert not (tmp_path / "i").exists()  # completion runs no command
