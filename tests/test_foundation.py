"""The foundation: model manifest and loading, settings, the CLI's error contract."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ecard.config import load_settings
from ecard.errors import ConfigError, ModelIntegrityError, ModelMissingError
from ecard.faces.models import FaceModels, models_dir, read_manifest


def test_manifest_lists_every_file_with_hash_and_licence():
    entries = read_manifest()
    assert {e.file for e in entries if e.required} == {
        "shape_predictor_68_face_landmarks.dat",
        "dlib_face_recognition_resnet_model_v1.dat",
    }
    for e in entries:
        assert len(e.sha256) == 64 and e.size > 0 and e.licence and e.source


def test_models_load_and_find_a_face(face_models):
    import numpy as np

    assert face_models.ready
    # A blank image has no face; the detector answers an empty list, not an error.
    assert face_models.detect(np.zeros((120, 160), dtype=np.uint8)) == []


def test_missing_model_file_is_a_typed_error(tmp_path: Path):
    models = FaceModels(folder=tmp_path)
    with pytest.raises(ModelMissingError, match="missing"):
        models.load()
    assert not models.ready


def test_altered_model_file_is_refused(tmp_path: Path):
    src = models_dir()
    for entry in read_manifest():
        if entry.required:
            shutil.copy(src / entry.file, tmp_path / entry.file)
    target = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF  # same size, one byte flipped
    target.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        FaceModels(folder=tmp_path).load()


def test_import_is_cheap():
    code = (
        "import sys, ecard, ecard.cli, ecard.faces.models;"
        "print('dlib' in sys.modules, 'cv2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"ECARD_LIVENESS_CHALLENGE": "random"}, None),
        ({"ECARD_LIVENESS_CHALLENGE": "2"}, 2),
    ],
)
def test_settings_challenge(env, expected):
    assert load_settings(env).liveness_challenge == expected


@pytest.mark.parametrize("value", ["two", "-1", "99"])
def test_settings_reject_bad_challenge(value):
    with pytest.raises(ConfigError):
        load_settings({"ECARD_LIVENESS_CHALLENGE": value})


def test_settings_default_database_is_sqlite_in_instance(tmp_path):
    s = load_settings({"ECARD_INSTANCE": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path / 'ecard.sqlite3'}"


def test_cli_usage_error_is_one_line_exit_2():
    out = subprocess.run(
        [sys.executable, "-m", "ecard.cli", "no-such-command"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_manifest_is_json():
    path = Path(__file__).resolve().parents[1] / "ecard" / "faces" / "data" / "manifest.json"
    assert json.loads(path.read_text())["files"]
