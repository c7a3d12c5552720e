"""The blink challenge: a required count and, optionally, cued moments that blinks must follow.

Two modes. The one-shot upload (``Challenge``, ``challenge_met``; ``ECARD_LIVENESS_CHALLENGE=N``)
asks for a count and optionally cue times handed to the page up front. The live capture protocol
(docs/liveness-protocol.md) keeps a secret plan on the server (``plan_live_challenge``), reveals
each cue only when it is due (``cue_status``, once per batch) and judges the answers against the
times the cues were shown (``judge_live``): a blink answers a cue only if it starts after the
cue was shown, and a capture whose blinks hit the windows no more often than its own blink rate
explains is refused. Parameters and their measured strength: docs/challenge.md
(``bench/bench_challenge.py``).
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

from ecard.liveness.blinks import BlinkEvent


@dataclass(frozen=True)
class Challenge:
    """Blink at least ``blinks`` times; with cues, one blink must *start* inside each window
    ``[cue - early_ms, cue + tolerance_ms]`` (ms from the start of capture).

    ``tolerance_ms`` (default 1500) allows for reaction time (about 0.3-1 s for older people on
    a phone) and frame timing; ``early_ms`` (default 250) for a blink that anticipates the cue.
    Each blink answers at most one cue.
    """

    blinks: int
    cues_ms: tuple[int, ...] = ()
    tolerance_ms: int = 1500
    early_ms: int = field(default=250)

    def __post_init__(self) -> None:
        if self.blinks < 0 or self.blinks > 10:
            raise ValueError("A challenge asks for 0 to 10 blinks.")
        if len(self.cues_ms) > self.blinks:
            raise ValueError("There cannot be more cues than required blinks.")
        if list(self.cues_ms) != sorted(self.cues_ms) or any(c < 0 for c in self.cues_ms):
            raise ValueError("Cue times must be non-negative and in order.")
        if self.tolerance_ms <= 0 or self.early_ms < 0:
            raise ValueError("The cue window must be positive.")


def answered_cues(challenge: Challenge, events: Sequence[BlinkEvent]) -> list[int | None]:
    """For each cue, the index in ``events`` of the blink that answers it (or None)."""
    blinks = [i for i, e in enumerate(events) if e.is_blink]
    used: set[int] = set()
    answer: list[int | None] = []
    for cue in challenge.cues_ms:
        lo, hi = cue - challenge.early_ms, cue + challenge.tolerance_ms
        found = next((i for i in blinks if i not in used and lo <= events[i].start_ms <= hi), None)
        if found is not None:
            used.add(found)
        answer.append(found)
    return answer


def challenge_met(challenge: Challenge, events: Sequence[BlinkEvent]) -> bool:
    """Whether the blink events answer the challenge (count, and every cue when there are cues)."""
    if sum(e.is_blink for e in events) < challenge.blinks:
        return False
    return all(i is not None for i in answered_cues(challenge, events))


# --- the live challenge (issue 10: cues revealed live, timing judged by the server) -----------

CueAction = Literal["blink"]

#: first cue due this long after the capture's first frame, at the earliest / latest (ms): the
#: person settles in front of the camera first
FIRST_DUE_MS = (1500, 2500)
#: time between two cues' due times, at the least / most (ms); the least leaves the previous
#: window (``window_ms``) closed before the next cue can be revealed, plus a batch of latency
GAP_MS = (1900, 2500)
#: how many cues a live challenge has, at the least / most (both 5: 4 cues are too weak against
#: a replayed fast blinker, 6 make the capture longer; see docs/challenge.md)
CUES = (5, 5)


@dataclass(frozen=True)
class Cue:
    """One secret cue: reveal "``action`` now" once the capture's newest frame reaches ``due_ms``
    (ms since the capture's first frame, client time)."""

    due_ms: int
    action: CueAction = "blink"


@dataclass(frozen=True)
class LiveChallenge:
    """The server's secret plan for one live capture, and how its answers are judged.

    A blink answers cue *i* only if it *starts* in ``[shown + min_reaction_ms, shown +
    window_ms]``, where ``shown`` is the client time at which the cue was shown (estimated by
    the server), and each blink answers at most one cue. Defaults (see docs/challenge.md):

    * ``min_reaction_ms`` 250: nobody reacts faster; frames already sent when the cue went out
      precede ``shown``, so they can never answer it.
    * ``window_ms`` 1400: a reaction of up to 1.2 s (an older person on a phone) plus the time
      the reveal takes to reach the screen. 1300 fails people whose screen shows the cue late;
      1500 lets more replays through (docs/challenge.md).
    * ``tail_ms`` 300: the capture goes on this long after the last window closes, so a blink
      that started late in the window is seen whole.
    * ``alpha`` 0.05: the challenge is met only if the chance that blinks unrelated to the cues
      land in every window, given how many blinks the capture has (:func:`chance_of_hits`), is
      below ``alpha``: a person who blinks all the time hits every window by luck. A Poisson
      blinker of any rate passes at most ``alpha`` of challenges.
    * ``max_uncued`` 4: at most this many blinks that answer no cue (a person looking at a
      screen blinks about 10 times a minute; a recording of a fast blinker far more often).
    """

    cues: tuple[Cue, ...]
    min_reaction_ms: int = 250
    window_ms: int = 1400
    tail_ms: int = 300
    alpha: float = 0.05
    max_uncued: int = 4

    def __post_init__(self) -> None:
        if not 1 <= len(self.cues) <= 10:
            raise ValueError("A live challenge has 1 to 10 cues.")
        dues = [c.due_ms for c in self.cues]
        if dues != sorted(dues) or dues[0] < 0:
            raise ValueError("Cue due times must be non-negative and in order.")
        if not 0 <= self.min_reaction_ms < self.window_ms:
            raise ValueError("The reaction window must be non-empty.")
        if self.tail_ms < 0 or not 0.0 < self.alpha <= 1.0 or self.max_uncued < 0:
            raise ValueError("tail_ms, alpha or max_uncued out of range.")

    def to_dict(self) -> dict[str, object]:
        """JSON-able form, for the capture's (secret) server-side state."""
        return {
            "cues": [[c.due_ms, c.action] for c in self.cues],
            "min_reaction_ms": self.min_reaction_ms,
            "window_ms": self.window_ms,
            "tail_ms": self.tail_ms,
            "alpha": self.alpha,
            "max_uncued": self.max_uncued,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LiveChallenge:
        """Inverse of :meth:`to_dict`."""
        return cls(
            cues=tuple(Cue(int(d), _action(a)) for d, a in data["cues"]),
            min_reaction_ms=int(data["min_reaction_ms"]),
            window_ms=int(data["window_ms"]),
            tail_ms=int(data["tail_ms"]),
            alpha=float(data["alpha"]),
            max_uncued=int(data["max_uncued"]),
        )


def _action(name: object) -> CueAction:
    if name != "blink":
        raise ValueError(f"Unknown cue action {name!r}.")
    return "blink"


def plan_live_challenge(rng: random.Random | secrets.SystemRandom) -> LiveChallenge:
    """A secret plan: a count of cues drawn from :data:`CUES`, the first due at a random time in
    :data:`FIRST_DUE_MS`, then random gaps in :data:`GAP_MS` (ms). Use
    ``secrets.SystemRandom()`` in the service, a seeded ``random.Random`` in tests."""
    count = rng.randint(*CUES)
    t = rng.randint(*FIRST_DUE_MS)
    cues = []
    for _ in range(count):
        cues.append(Cue(t))
        t += rng.randint(*GAP_MS)
    return LiveChallenge(tuple(cues))


@dataclass(frozen=True)
class CueVerdict:
    """How a live capture answered its challenge.

    ``answered[i]``: cue *i* was answered by its own blink. ``blinks``: counted blinks starting
    within the capture; ``uncued``: those that answer no cue. ``chance``: the probability that
    ``blinks`` blink starts placed at random over the capture would hit every window
    (:func:`chance_of_hits`); computed only when every cue was answered, else 1.0. ``met``
    only if every cue was answered, ``chance < alpha`` and ``uncued <= max_uncued``;
    ``reason`` is then None, else ``"challenge_not_met"``.
    """

    met: bool
    reason: str | None
    answered: tuple[bool, ...]
    blinks: int
    uncued: int
    chance: float

    def to_dict(self) -> dict[str, object]:
        """JSON-able summary (``asked`` / ``answered`` counts rather than the tuple)."""
        return {
            "met": self.met,
            "reason": self.reason,
            "asked": len(self.answered),
            "answered": sum(self.answered),
            "blinks": self.blinks,
            "uncued": self.uncued,
            "chance": round(self.chance, 6),
        }


def cue_windows(
    challenge: LiveChallenge, shown_ms: Sequence[int | None]
) -> list[tuple[int, int] | None]:
    """Each cue's answer window ``(lo, hi)`` in client ms (None: the cue was never shown)."""
    out: list[tuple[int, int] | None] = []
    for i in range(len(challenge.cues)):
        s = shown_ms[i] if i < len(shown_ms) else None
        out.append(None if s is None else (s + challenge.min_reaction_ms, s + challenge.window_ms))
    return out


def _union_length(intervals: Sequence[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for lo, hi in sorted(intervals):
        if hi <= end:
            continue
        total += hi - max(lo, end)
        end = hi
    return total


def chance_of_hits(windows: Sequence[tuple[float, float]], span: float, blinks: int) -> float:
    """Probability that ``blinks`` points placed uniformly at random over ``[0, span]`` leave no
    window empty; windows ``(lo, hi)`` in the unit of ``span``, relative to its start and
    inside it (clip them first).

    This is the null hypothesis "the blinks are unrelated to the cues": for a Poisson blinker
    of *any* rate, the blink starts given their number are uniform, so the test needs no rate
    estimate. Inclusion-exclusion over the sets of windows left empty; exact also for
    overlapping windows (then it over-states the chance of a distinct blink per cue).
    """
    if not windows or span <= 0:
        return 1.0
    k = len(windows)
    ordered = sorted(windows)
    disjoint = all(a[1] <= b[0] for a, b in pairwise(ordered))
    # covered[mask]: length of the union of the windows in mask (a sum when they are disjoint)
    covered = [0.0] * (1 << k)
    sign = [1.0] * (1 << k)
    total = 1.0
    for mask in range(1, 1 << k):
        low = mask & -mask
        rest = mask ^ low
        sign[mask] = -sign[rest]
        if disjoint:
            lo, hi = windows[low.bit_length() - 1]
            covered[mask] = covered[rest] + (hi - lo)
        else:
            covered[mask] = _union_length([windows[i] for i in range(k) if mask >> i & 1])
        total += sign[mask] * max(0.0, 1.0 - covered[mask] / span) ** blinks
    return min(1.0, max(0.0, total))


def _answer(
    windows: Sequence[tuple[int, int] | None], starts: Sequence[int]
) -> tuple[list[bool], int]:
    """Match blinks to cues: each cue, in order, takes the earliest unused blink start in its
    window (optimal for windows in time order). Returns ``answered`` and the blinks used."""
    used: set[int] = set()
    answered: list[bool] = []
    for w in windows:
        found = None
        if w is not None:
            lo, hi = w
            found = next((j for j, s in enumerate(starts) if j not in used and lo <= s <= hi), None)
        if found is not None:
            used.add(found)
        answered.append(found is not None)
    return answered, len(used)


def judge_live(
    challenge: LiveChallenge,
    shown_ms: Sequence[int | None],
    events: Sequence[BlinkEvent],
    span_ms: tuple[int, int],
) -> CueVerdict:
    """Judge a live capture's answers to its challenge.

    ``shown_ms[i]``: the client time (ms since the capture's first frame) at which cue *i* was
    shown, as estimated by the server (None: never revealed). ``events``: the blink events of
    the whole capture (only ``kind == "blink"`` counts, and only blinks starting within the
    span). ``span_ms``: the capture's first and last frame times (ms). Each cue takes the
    earliest unused blink that starts in its window (:func:`cue_windows`); then the chance of
    hitting every window by luck (:func:`chance_of_hits`, windows clipped to the span) and the
    number of uncued blinks decide.
    """
    first, last = span_ms
    starts = sorted(e.start_ms for e in events if e.is_blink and first <= e.start_ms <= last)
    windows = cue_windows(challenge, shown_ms)
    answered, used = _answer(windows, starts)
    uncued = len(starts) - used
    chance = 1.0
    if all(answered):
        clipped = [
            (max(w[0], first) - first, min(w[1], last) - first) for w in windows if w is not None
        ]
        chance = chance_of_hits(clipped, last - first, len(starts))
    met = all(answered) and chance < challenge.alpha and uncued <= challenge.max_uncued
    return CueVerdict(
        met=met,
        reason=None if met else "challenge_not_met",
        answered=tuple(answered),
        blinks=len(starts),
        uncued=uncued,
        chance=chance,
    )


@dataclass(frozen=True)
class CueStatus:
    """The server's answer about cues to one batch.

    ``reveal_index``: the cue to reveal in this answer (record its ``shown_ms`` now), or None.
    ``cue_active``: a cue is showing: revealed (now or before), its window still open at the
    newest frame, and not yet answered; ``action`` is its action (None when no cue is active).
    ``done``: every cue was shown and its window plus ``tail_ms`` has passed: the client may
    stop recording and call finish.
    """

    reveal_index: int | None
    cue_active: bool
    action: CueAction | None
    done: bool


def cue_status(
    challenge: LiveChallenge,
    shown_ms: Sequence[int | None],
    newest_ts: int,
    events_so_far: Sequence[BlinkEvent],
) -> CueStatus:
    """Which cue is due now, whether one is active, whether the capture is done.

    ``shown_ms`` as for :func:`judge_live` (cues revealed so far; shorter than the plan is
    fine), ``newest_ts`` the newest frame's client time in ms, ``events_so_far`` the blink
    events analysed so far. Cues are revealed in order, one per batch, and never while the
    previous cue's window is still open (so one blink cannot fall in two windows)."""
    cues = challenge.cues
    shown = [shown_ms[i] if i < len(shown_ms) else None for i in range(len(cues))]
    reveal: int | None = None
    nxt = next((i for i, s in enumerate(shown) if s is None), None)
    if nxt is not None and newest_ts >= cues[nxt].due_ms:
        prev = shown[nxt - 1] if nxt > 0 else None
        if prev is None or newest_ts >= prev + challenge.window_ms:
            reveal = nxt
    active: int | None = reveal
    if active is None:
        starts = sorted(e.start_ms for e in events_so_far if e.is_blink)
        answered, _ = _answer(cue_windows(challenge, shown), starts)
        for i, s in enumerate(shown):
            if s is not None and newest_ts < s + challenge.window_ms and not answered[i]:
                active = i
    done = (
        reveal is None
        and nxt is None
        and all(s is not None for s in shown)
        and newest_ts
        >= max(s for s in shown if s is not None) + challenge.window_ms + challenge.tail_ms
    )
    return CueStatus(
        reveal_index=reveal,
        cue_active=active is not None,
        action=cues[active].action if active is not None else None,
        done=done,
    )
