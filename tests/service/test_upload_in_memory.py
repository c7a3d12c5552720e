"""Finding 4: an uploaded clip never becomes a named file (it used to be written to
``/tmp/ecard-clip-*.bin`` while analysed, and left there when the process died).

Patching ``tempfile`` (test_service_flow.py) catches only that module; here a Python audit hook
sees every file the process opens for writing by *any* Python route (``open``, ``os.open``,
``tempfile``, ``shutil``), and ``TMPDIR`` points at an empty folder that must stay empty (what a
C library honouring ``TMPDIR`` would write there shows too).
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from svc_helpers import Clients, app_config, bearer, clip_frames, id_photo, make_id_number

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_armed: list[list[str]] = []  # while a list is in here, write-opens are recorded into it


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _armed:
        return
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writing:
            _armed[-1].append(f"open {path!r} {mode or flags}")
    elif event in ("tempfile.mkstemp", "tempfile.mkdtemp", "os.mkdir", "shutil.copyfile"):
        _armed[-1].append(f"{event} {args!r}")


sys.addaudithook(_hook)  # cannot be removed; does nothing unless armed


@pytest.fixture
def file_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every file opened for writing while the test body runs, plus what appears in TMPDIR."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    writes: list[str] = []
    _armed.append(writes)
    try:
        yield writes
    finally:
        _armed.remove(writes)


def test_the_hook_sees_a_named_temporary_file(file_writes: list[str]) -> None:
    """The check itself: the old code's NamedTemporaryFile(prefix="ecard-clip-") is seen."""
    with tempfile.NamedTemporaryFile(prefix="ecard-clip-", suffix=".bin") as fh:
        fh.write(b"clip")
    assert any("ecard-clip-" in w for w in file_writes), file_writes
    file_writes.clear()


def _mp4(frames: list[Any], path: Path, fps: float = 23.86) -> bytes:
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path.read_bytes()


def test_clip_bytes_are_decoded_without_a_file(tmp_path: Path) -> None:
    import numpy as np

    from ecard.liveness.media import iter_video
    from ecard.liveness.policy import MediaLimits

    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(20)]
    data = _mp4(frames, tmp_path / "clip.mp4")
    writes: list[str] = []
    _armed.append(writes)
    try:
        decoded = list(iter_video(data, MediaLimits()))
    finally:
        _armed.remove(writes)
    assert len(decoded) == 20 and decoded[0][0].shape == (240, 320, 3)
    assert writes == []


@pytest.mark.shared_data
@pytest.mark.slow
def test_a_clip_upload_writes_no_file(
    tmp_path: Path, face_models: Any, shared_data: Path, file_writes: list[str]
) -> None:
    from werkzeug.datastructures import FileStorage, MultiDict
    from werkzeug.test import encode_multipart

    from ecard.citizens import add_citizen
    from ecard.store import open_store
    from ecard.web import create_app

    clip = shared_data / "blink" / "videos" / "repeating-Blink-Detector__video.mp4"
    frames = clip_frames(clip, {*range(100), 205})
    store = open_store(f"sqlite:///{tmp_path / 'ecard.sqlite3'}")
    try:
        app = create_app(app_config(tmp_path, store, face_models))
        client = app.test_client()
        creds = Clients(store)
        number = make_id_number(7)
        add_citizen(
            store,
            id_number=number,
            name="Zhang Wei",
            photo=id_photo(frames[205], face_models),
            models=face_models,
        )
        video = _mp4([frames[i] for i in range(100)], tmp_path / "clip.mp4")
        r = client.post(
            "/api/v1/enrollments",
            json={"id_number": number, "name": "Zhang Wei"},
            headers=creds.channel,
        )
        assert r.status_code == 201, r.json
        eid, tok = r.json["enrollment_id"], r.json["enrollment_token"]
        client.post(f"/api/v1/enrollments/{eid}/consent", json={"agree": True}, headers=bearer(tok))
        ch = client.post(f"/api/v1/enrollments/{eid}/challenge", headers=bearer(tok))
        assert ch.status_code == 200, ch.json
        fields = MultiDict([("nonce", ch.json["nonce"])])
        fields.add("video", FileStorage(io.BytesIO(video), "clip.mp4"))
        boundary, body = encode_multipart(fields)
        assert len(body) > 500 * 1024  # werkzeug would spool a part this large to a file
        file_writes.clear()  # from here on: the upload and its analysis only
        r = client.post(
            f"/api/v1/enrollments/{eid}/liveness",
            data=body,
            content_type=f"multipart/form-data; boundary={boundary}",
            headers=bearer(tok),
        )
        assert r.status_code == 200, r.json
        assert r.json["live"] is True  # the clip was analysed
        assert file_writes == []
        assert list(Path(tempfile.gettempdir()).iterdir()) == []  # the empty TMPDIR
    finally:
        store.close()
