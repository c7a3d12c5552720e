"""The EAR-series blink logic, the challenge check and `ecard blinks` (no models needed)."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
from sharedpaths import REPO, shared_path

from ecard.cli import main
from ecard.errors import SeriesError
from ecard.liveness import BlinkEvent, BlinkPolicy, Challenge, challenge_met, detect_blinks
from ecard.liveness.blinks import parse_series


def series(n: int, closures: dict[int, int], *, open_level: float = 0.3, seed: int = 1) -> list:
    """An open-eye series with small jitter and closures {start_frame: length_in_frames}."""
    rng = np.random.default_rng(seed)
    values = open_level + rng.normal(0, 0.006, n)
    for start, length in closures.items():
        shape = np.concatenate([[0.6], np.full(max(0, length - 2), 0.35), [0.6]])[:length]
        values[start : start + length] = open_level * shape
    return [float(v) for v in values]


def blinks_of(values, **kw) -> list[BlinkEvent]:
    return [e for e in detect_blinks(values, **kw) if e.is_blink]


def test_finds_blinks_whatever_the_open_level():
    # the same closures at dlib-like (0.3) and MediaPipe-like (0.12) levels: no fixed threshold
    for level in (0.3, 0.12, 2.5):
        found = blinks_of(series(300, {50: 5, 150: 4, 240: 6}, open_level=level), fps=30)
        assert [(e.start, e.end) for e in found] == [(50, 54), (150, 153), (240, 245)]


def test_deliberate_long_closure_is_not_a_blink():
    events = detect_blinks(series(300, {40: 5, 120: 60}), fps=30)
    assert [e.kind for e in events] == ["blink", "long_closure"]


def test_closures_cut_by_the_clip_edges_are_not_counted():
    values = series(200, {0: 4, 100: 5, 196: 4})
    assert [e.kind for e in detect_blinks(values, fps=30)] == ["truncated", "blink", "truncated"]


def test_one_frame_flicker_at_30fps_is_jitter_but_one_frame_at_12fps_is_a_blink():
    values = series(120, {60: 1})
    values[60] = 0.3 * 0.5
    assert blinks_of(values, fps=30) == []
    assert len(blinks_of(values, fps=12)) == 1


def test_slow_drift_from_looking_down_is_not_a_blink():
    # EAR drifts from 0.30 to 0.22 over two seconds (head pitching down), then back
    values = series(240, {})
    drift = np.concatenate([np.linspace(0, 0.08, 60), np.full(60, 0.08), np.linspace(0.08, 0, 60)])
    values = [
        v - d
        for v, d in zip(values, np.concatenate([np.zeros(30), drift, np.zeros(30)]), strict=True)
    ]
    assert blinks_of(values, fps=30) == []


def test_a_dip_into_a_gaze_shift_is_not_a_blink():
    # the lids drop in one frame to 0.62 of open for 170 ms, then stay at 0.8 for 2 s (looking
    # down): deep under the baseline, but only 22 % under the level the eyes settle at
    values = np.array(series(300, {}))
    values[100:105] *= 0.62
    values[105:165] *= 0.8
    assert detect_blinks(list(values), fps=30) == ()


def test_a_blink_while_looking_down_is_a_blink():
    # eyes narrowed to 0.7 of open for 3 s (slowly), with a blink inside: it falls from and
    # returns to the narrowed level, far enough below it
    values = np.array(series(300, {}))
    narrowed = np.concatenate([np.linspace(1, 0.7, 30), np.full(90, 0.7), np.linspace(0.7, 1, 30)])
    values[60:210] *= narrowed
    values[130:134] = 0.3 * np.array([0.4, 0.15, 0.15, 0.4])
    assert [(e.start, e.end) for e in blinks_of(list(values), fps=30)] == [(130, 133)]


def test_a_face_missing_around_a_dip_makes_it_truncated():
    values: list[float | None] = list(series(120, {60: 3}))
    values[59] = None
    events = detect_blinks(values, fps=30)
    assert [e.kind for e in events] == ["truncated"]


def test_timestamps_instead_of_fps():
    values = series(90, {40: 2})
    times = [i * 66.7 for i in range(90)]  # a browser at 15 fps
    (event,) = blinks_of(values, times_ms=times)
    assert event.start == 40 and event.start_ms == round(40 * 66.7)


@pytest.mark.parametrize(
    "kwargs",
    [{"fps": 0}, {"fps": -5}, {"fps": math.nan}, {}, {"times_ms": [0, 10, 5, 20]}],
)
def test_bad_rate_or_times_are_series_errors(kwargs):
    with pytest.raises(SeriesError):
        detect_blinks([0.3, 0.3, 0.3, 0.3], **kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.3\n0.25\nNone\n0.31\n", [0.3, 0.25, None, 0.31]),
        ("0.3\r\nnan\r\n0.2\n\n\n", [0.3, None, 0.2]),
        ("  0.3  \nNONE\n", [0.3, None]),
    ],
)
def test_parse_series(text, expected):
    assert parse_series(text) == expected


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", None),
        ("\n\n", None),
        ("0.3\nabc\n", 2),
        ("0.3\n0.2 0.1\n", 2),
        ("inf\n", 1),
        ("0.3\n-0.2\n", 2),
        ("0.3\n\n0.2\n", 2),
    ],
)
def test_garbage_series_is_refused(text, line):
    with pytest.raises(SeriesError) as err:
        parse_series(text)
    if line is not None:
        assert f"Line {line}" in err.value.message


def test_no_face_anywhere_gives_no_blinks():
    assert detect_blinks([None] * 50, fps=30) == ()


# --- challenge --------------------------------------------------------------------------------


def event(start_ms: int, kind: str = "blink") -> BlinkEvent:
    return BlinkEvent(start_ms // 33, start_ms // 33 + 3, start_ms, start_ms + 100, kind, 0.6)  # type: ignore[arg-type]


def test_challenge_count_only():
    assert challenge_met(Challenge(blinks=2), [event(500), event(3000)])
    assert not challenge_met(Challenge(blinks=2), [event(500), event(3000, "long_closure")])


def test_challenge_cues_met_and_missed():
    ch = Challenge(blinks=2, cues_ms=(1000, 4000))
    assert challenge_met(ch, [event(1400), event(4900)])
    assert not challenge_met(ch, [event(1400), event(6000)])  # second blink too late
    assert not challenge_met(ch, [event(1400), event(2000)])  # both answer the first cue
    assert challenge_met(ch, [event(300), event(800), event(4100)])  # 250 ms early is fine


def test_one_blink_cannot_answer_two_cues():
    ch = Challenge(blinks=2, cues_ms=(1000, 1200))
    assert not challenge_met(ch, [event(1300)])
    assert challenge_met(ch, [event(1100), event(1500)])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"blinks": -1},
        {"blinks": 11},
        {"blinks": 1, "cues_ms": (100, 200)},
        {"blinks": 2, "cues_ms": (300, 100)},
        {"blinks": 1, "tolerance_ms": 0},
    ],
)
def test_bad_challenges_are_refused(kwargs):
    with pytest.raises(ValueError):
        Challenge(**kwargs)


# --- Eyeblink8 series and the CLI -------------------------------------------------------------


def eyeblink8_bench():
    """bench/bench_blinks.py, whose scoring and label alignment the regression tests reuse."""
    folder = shared_path("blink", "eyeblink8_mediapipe_ear")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # pytest run as a script: the repo root is not on the path
    from bench import bench_blinks

    assert folder == bench_blinks.FOLDER
    return bench_blinks


#: per video at PROVENANCE's offsets: the precision and recall reached on 2026-12-02 (rounded
#: down), docs/blinks-eyeblink8.md. video01's labels drift after label ~9,600: it is scored
#: overall at the estimated alignment below.
EYEBLINK8 = {
    "eb8_video02_26122013_224532": (0.976, 0.965),  # 84/86, 84/87
    "eb8_video03_26122013_230103": (1.000, 0.923),  # 60/60, 60/65
    "eb8_video04_26122013_230654": (1.000, 0.967),  # 30/30, 30/31
}


@pytest.mark.parametrize("video", sorted(EYEBLINK8))
def test_eyeblink8_labelled_blinks_are_found(video):
    bench = eyeblink8_bench()
    result = bench.score(video, bench.OFFSETS[video])
    min_precision, min_recall = EYEBLINK8[video]
    assert result.precision >= min_precision
    assert result.recall >= min_recall


def test_eyeblink8_label_alignment_is_estimated_from_the_data():
    # piecewise cross-correlation of labels and EAR dips: PROVENANCE's offset wherever it holds,
    # and video01's drift (its label track lost 72 frames between labels ~9,400 and ~9,630)
    bench = eyeblink8_bench()
    aligned = bench.alignments()
    for video in EYEBLINK8:
        assert aligned[video] == ((0, bench.OFFSETS[video]),)
    (first, drift) = aligned["eb8_video01_26122013_223310"]
    assert first == (0, 0) and 9400 <= drift[0] <= 9700 and drift[1] in (72, 73)


def test_eyeblink8_overall_precision_and_recall_regression():
    # reached on 2026-12-02 (docs/blinks-eyeblink8.md): 212/221 detections are labelled blinks,
    # 209/218 labelled blinks are found at the estimated alignment; 0.923 / 0.922 at
    # PROVENANCE's offsets, where video01's drifted labels cannot be matched
    bench = eyeblink8_bench()
    aligned = bench.alignments()
    total = sum((bench.score(v, aligned[v]) for v in bench.OFFSETS), bench.Score(0, 0, 0, 0))
    assert total.precision >= 0.959 and total.recall >= 0.958
    raw = sum((bench.score(v, o) for v, o in bench.OFFSETS.items()), bench.Score(0, 0, 0, 0))
    assert raw.precision >= 0.923 and raw.recall >= 0.922


def test_cli_blinks_json(tmp_path, capsys):
    path = tmp_path / "ear.txt"
    path.write_text("\n".join(str(v) for v in series(300, {50: 5, 150: 4})) + "\n")
    assert main(["blinks", str(path), "--fps", "30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(b["start"], b["end"]) for b in out["blinks"]] == [(50, 54), (150, 153)]


@pytest.mark.parametrize(
    ("content", "args"),
    [
        (b"0.3\nabc\n", ["--fps", "30"]),
        (b"", ["--fps", "30"]),
        (b"\xff\xfe\x00garbage", ["--fps", "30"]),
        (b"0.3\n0.3\n", ["--fps", "0"]),
    ],
)
def test_cli_blinks_bad_input_exits_2_with_one_line(tmp_path, capsys, content, args):
    path = tmp_path / "ear.txt"
    path.write_bytes(content)
    assert main(["blinks", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ecard: ")


def test_cli_blinks_missing_file_exits_2(tmp_path, capsys):
    assert main(["blinks", str(tmp_path / "nope.txt"), "--fps", "30"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_default_policy_is_documented_and_frozen():
    policy = BlinkPolicy()
    with pytest.raises(AttributeError):
        policy.min_depth = 0.1  # type: ignore[misc]
    assert 0 < policy.min_depth_floor <= policy.min_depth < 1
