"""`ecard match ID_PHOTO PHOTO_OR_VIDEO [MORE ...] [--json]`: the CLI contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sharedpaths import REPO, shared_path

from ecard.cli import main

pytestmark = pytest.mark.shared_data


def face(*parts: str) -> str:
    return str(shared_path("faces", *parts))


def run(capsys, *args: str) -> tuple[int, list[str], list[str]]:
    code = main(["match", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_one_json_line_per_file_in_order(capsys, face_models) -> None:
    files = [
        face("barack_obama", "fr__obama3.jpg"),
        face("joe_biden", "fr__biden.jpg"),
        face("barack_obama", "fr__knn_test_obama1.jpg"),
    ]
    code, out, err = run(capsys, face("barack_obama", "fr__obama.jpg"), *files, "--json")
    assert code == 0 and err == []
    lines = [json.loads(line) for line in out]
    assert [x["file"] for x in lines] == files
    assert [x["match"] for x in lines] == [True, False, True]
    for x in lines:
        assert isinstance(x["distance"], float) and x["threshold"] == lines[0]["threshold"]
        assert (x["distance"] <= x["threshold"]) == x["match"]


def test_file_without_usable_face_gets_an_error_line_and_the_rest_goes_on(
    capsys, tmp_path: Path, face_models
) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    files = [
        face("_multi_face", "fr__two_people.jpg"),
        str(empty),
        str(tmp_path / "missing.jpg"),
        face("barack_obama", "fr__obama3.jpg"),
    ]
    code, out, err = run(capsys, face("barack_obama", "fr__obama.jpg"), *files, "--json")
    lines = [json.loads(line) for line in out]
    assert [x["file"] for x in lines] == files
    assert [x.get("error") for x in lines] == [
        "multiple_faces",
        "empty_media",
        "unreadable_media",
        None,
    ]
    assert all(x["message"] for x in lines[:3])
    assert lines[3]["match"] is True
    assert code == 2 and len(err) == 1 and "3 of 4" in err[0]


@pytest.mark.parametrize(
    ("id_photo", "code_word"),
    [
        (("_multi_face", "fr__two_people.jpg"), "multiple_faces"),
        ("empty", "empty_media"),
        ("text", "unreadable_media"),
        ("missing", "unreadable_media"),
    ],
    ids=["two faces", "empty", "not an image", "missing"],
)
def test_bad_id_photo_is_exit_2_with_one_stderr_line(
    capsys, tmp_path: Path, id_photo, code_word: str, face_models
) -> None:
    if isinstance(id_photo, tuple):
        path = face(*id_photo)
    else:
        target = tmp_path / "id.jpg"
        if id_photo == "empty":
            target.write_bytes(b"")
        elif id_photo == "text":
            target.write_text("not a photo at all\n")
        path = str(target)
    code, out, err = run(capsys, path, face("barack_obama", "fr__obama3.jpg"), "--json")
    assert code == 2 and out == []
    assert len(err) == 1 and err[0].startswith(f"ecard: {code_word}:")


def test_clip_is_compared_through_its_liveness_samples(capsys, face_models) -> None:
    clip = str(shared_path("blink", "videos", "DinoMan-blink-detector__example.mp4"))
    code, out, _ = run(capsys, face("barack_obama", "fr__obama.jpg"), clip, "--json")
    line = json.loads(out[0])
    assert code == 0 and line["file"] == clip
    assert line["match"] is False and line["samples"] >= 1


def test_plain_output_is_one_readable_line_per_file(capsys, face_models) -> None:
    code, out, _ = run(
        capsys,
        face("angelina_jolie", "df__img1.jpg"),
        face("angelina_jolie", "df__img7.jpg"),
        face("scarlett_johansson", "df__img47.jpg"),
    )
    assert code == 0 and len(out) == 2
    assert out[0].endswith(")") and ": match (distance 0." in out[0]
    assert ": no match (distance " in out[1]


def test_console_script_exit_code_and_no_traceback(tmp_path: Path) -> None:
    """The installed entry point: usage errors and bad input are one line, exit 2."""
    bad = tmp_path / "id.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    proc = subprocess.run(
        [sys.executable, "-m", "ecard.cli", "match", str(bad), str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "ecard.cli", "match", str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_a_device_among_the_files_is_an_error_line_not_an_endless_read(capsys, face_models) -> None:
    """`/dev/zero` has size 0 and never ends: it is refused before it is read."""
    files = ["/dev/zero", face("barack_obama", "fr__obama3.jpg")]
    code, out, err = run(capsys, face("barack_obama", "fr__obama.jpg"), *files, "--json")
    lines = [json.loads(line) for line in out]
    assert lines[0] == {
        "file": "/dev/zero",
        "error": "unreadable_media",
        "message": "/dev/zero is not a regular file.",
    }
    assert lines[1]["match"] is True
    assert code == 2 and len(err) == 1 and "1 of 2" in err[0]
