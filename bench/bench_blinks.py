"""Blink detection on the Eyeblink8 EAR series: precision and recall per video and overall.

Data: ../shared/data/blink/eyeblink8_mediapipe_ear (MediaPipe EAR, one value per frame at 30 fps,
and the official blink labels). A detected blink is a hit when it overlaps a labelled blink run
within +/-2 frames; each labelled run is found at most once. Two label alignments are scored:

* *PROVENANCE offsets*: label index i is EAR line i + OFFSET, one offset per video, as the
  curator estimated them (PROVENANCE.md);
* *estimated alignment*: a piecewise-constant offset fitted to each video's labels and EAR dips
  by :func:`estimate_alignment` (no hand-entered numbers). It reproduces PROVENANCE's offset on
  videos 02-04 and finds where video01's labels drift (frames missing from its label track).

Run: ``.venv/bin/python -m bench.bench_blinks`` (also part of ``make bench``). The regression
test in tests/test_blinks.py scores with the same functions.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecard.liveness import detect_blinks, parse_series
from ecard.liveness.blinks import rolling_baseline

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ECARD_SHARED_DATA", REPO.parent / "shared" / "data"))
FOLDER = DATA / "blink" / "eyeblink8_mediapipe_ear"
#: label index i is EAR line i + OFFSET (PROVENANCE.md)
OFFSETS = {
    "eb8_video01_26122013_223310": 0,
    "eb8_video02_26122013_224532": 59,
    "eb8_video03_26122013_230103": 0,
    "eb8_video04_26122013_230654": 89,
}
TOLERANCE = 2
FPS = 30.0
#: the dip signal of the alignment is the drop under the rolling median of +/- this many frames
ALIGN_HALF_WINDOW = 75

#: an alignment: (first label index, offset) pieces, in order; label i is EAR line i + offset
Alignment = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Score:
    labelled: int
    found: int
    hits: int  # detected blinks that overlap a labelled run
    matched: int  # labelled runs overlapped by a detected blink

    def __add__(self, other: Score) -> Score:
        return Score(
            self.labelled + other.labelled,
            self.found + other.found,
            self.hits + other.hits,
            self.matched + other.matched,
        )

    @property
    def precision(self) -> float:
        return self.hits / max(self.found, 1)

    @property
    def recall(self) -> float:
        return self.matched / max(self.labelled, 1)


def load(video: str) -> tuple[list[float | None], list[int]]:
    """The EAR series and the 0/1 label line of one video."""
    values = parse_series((FOLDER / f"{video}__mediapipe_ear.txt").read_text())
    labels = [int(x) for x in (FOLDER / f"{video}__tag_blink_labels.txt").read_text().split()]
    return values, labels


def label_runs(labels: list[int], offset: int | Alignment) -> list[tuple[int, int]]:
    """Runs of 1 in the label line, as EAR frame ranges (offset: one, or per label index)."""
    pieces = ((0, offset),) if isinstance(offset, int) else offset
    runs, i = [], 0
    while i < len(labels):
        if labels[i]:
            j = i
            while j + 1 < len(labels) and labels[j + 1]:
                j += 1
            shift = [o for start, o in pieces if i >= start][-1]
            runs.append((i + shift, j + shift))
            i = j + 1
        else:
            i += 1
    return runs


def estimate_alignment(values: list[float | None], labels: list[int]) -> Alignment:
    """Piecewise cross-correlation of the labelled blink runs with the EAR dips.

    The label track has ``extra = len(values) - len(labels)`` frames fewer than the series, so
    each labelled run sits at some offset in ``[0, extra]``, and since frames can only go missing
    the offset never decreases along the video. The dip signal is the relative drop of the EAR
    under its rolling median (+/- 2.5 s); a run's score at an offset is the sum of that signal
    under its shifted frames. A dynamic program picks the non-decreasing offset per run that
    maximises the total score, each change of offset costing one typical labelled blink's
    evidence (the median over runs of their best score), so a break is kept only when the runs
    after it agree on it. Returns the pieces as (first label index, offset).
    """
    v = np.array([math.nan if x is None else float(x) for x in values], dtype=np.float64)
    base = rolling_baseline(v, ALIGN_HALF_WINDOW, 50.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dip = np.nan_to_num(np.clip(1.0 - v / base, 0.0, None))
    extra = len(v) - len(labels)
    runs = label_runs(labels, 0)
    if extra <= 0 or not runs:
        return ((0, 0),)
    n_off = extra + 1
    score = np.array([[dip[a + o : b + o + 1].sum() for o in range(n_off)] for a, b in runs])
    penalty = float(np.median(score.max(axis=1)))
    total = score[0].copy()
    back = np.zeros((len(runs), n_off), dtype=np.int64)
    for k in range(1, len(runs)):
        best_before = np.maximum.accumulate(total)  # best total with an offset <= o
        arg_before = np.zeros(n_off, dtype=np.int64)
        for o in range(1, n_off):
            arg_before[o] = o if total[o] > total[arg_before[o - 1]] else arg_before[o - 1]
        new = np.empty(n_off)
        for o in range(n_off):
            change = best_before[o - 1] - penalty if o > 0 else -math.inf
            if total[o] >= change:
                new[o], back[k, o] = total[o] + score[k, o], o
            else:
                new[o], back[k, o] = change + score[k, o], arg_before[o - 1]
        total = new
    path = [int(np.argmax(total))]
    for k in range(len(runs) - 1, 0, -1):
        path.append(int(back[k, path[-1]]))
    path.reverse()
    pieces: list[tuple[int, int]] = []
    for (a, _), o in zip(runs, path, strict=True):
        if not pieces or pieces[-1][1] != o:
            pieces.append((0 if not pieces else a, o))
    return tuple(pieces)


def score(video: str, offset: int | Alignment) -> Score:
    """Blinks found by ``detect_blinks`` (default policy) against the labels of one video."""
    values, labels = load(video)
    truth = label_runs(labels, offset)
    found = [e for e in detect_blinks(values, fps=FPS) if e.is_blink]

    def overlaps(e_start: int, e_end: int, a: int, b: int) -> bool:
        return e_start <= b + TOLERANCE and e_end >= a - TOLERANCE

    hits = sum(any(overlaps(e.start, e.end, a, b) for a, b in truth) for e in found)
    matched = {k for e in found for k, (a, b) in enumerate(truth) if overlaps(e.start, e.end, a, b)}
    return Score(len(truth), len(found), hits, len(matched))


def alignments() -> dict[str, Alignment]:
    """The estimated alignment of every video."""
    return {video: estimate_alignment(*load(video)) for video in OFFSETS}


def table(title: str, offsets: dict[str, int | Alignment]) -> Score:
    print(title)
    print(f"  {'video':<30} {'labelled':>8} {'found':>6} {'precision':>9} {'recall':>7}")
    total = Score(0, 0, 0, 0)
    for video, offset in offsets.items():
        s = score(video, offset)
        total += s
        print(f"  {video:<30} {s.labelled:>8} {s.found:>6} {s.precision:>9.3f} {s.recall:>7.3f}")
    print(
        f"  {'overall':<30} {total.labelled:>8} {total.found:>6} "
        f"{total.precision:>9.3f} {total.recall:>7.3f}"
    )
    return total


def main() -> int:
    if not FOLDER.is_dir():
        print(f"skipped: {FOLDER} is absent")
        return 0
    table("labels at PROVENANCE's offsets:", dict(OFFSETS))
    estimated = alignments()
    print("alignment estimated by piecewise cross-correlation (label index: offset):")
    for video, pieces in estimated.items():
        shown = ", ".join(f"from {start}: +{o}" for start, o in pieces)
        note = "same as PROVENANCE" if pieces == ((0, OFFSETS[video]),) else "differs"
        print(f"  {video:<30} {shown} ({note})")
    table("labels at the estimated alignment:", dict(estimated))
    return 0


if __name__ == "__main__":
    sys.exit(main())
