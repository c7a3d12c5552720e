"""The live blink challenge: the secret plan, the judge, the per-batch cue status, its strength.

No models: blink events are synthetic. The strength figures are a seeded, smaller run of
bench/bench_challenge.py (the full run is 10,000 challenges per source).
"""

from __future__ import annotations

import dataclasses
import random
import secrets
from itertools import pairwise

import pytest

from bench import bench_challenge as bc
from ecard.liveness.blinks import BlinkEvent
from ecard.liveness.challenge import (
    CUES,
    FIRST_DUE_MS,
    GAP_MS,
    Challenge,
    Cue,
    LiveChallenge,
    challenge_met,
    chance_of_hits,
    cue_status,
    judge_live,
    plan_live_challenge,
)


def blink(start: int, kind: str = "blink", length: int = 150) -> BlinkEvent:
    return BlinkEvent(0, 0, start, start + length, kind, 0.5)  # type: ignore[arg-type]


def two_cues(**kw: int | float) -> LiveChallenge:
    """Two cues; ``alpha`` 1 unless given (two cues in 6.4 s are easily hit by luck, which
    :func:`test_chance_decides_when_blinks_are_frequent` covers)."""
    return LiveChallenge((Cue(2000), Cue(4500)), **({"alpha": 1.0} | kw))  # type: ignore[arg-type]


# --- the plan ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_plan_is_random_within_its_bounds(seed: int) -> None:
    plan = plan_live_challenge(random.Random(seed))
    dues = [c.due_ms for c in plan.cues]
    assert CUES[0] <= len(dues) <= CUES[1]
    assert FIRST_DUE_MS[0] <= dues[0] <= FIRST_DUE_MS[1]
    gaps = [b - a for a, b in pairwise(dues)]
    assert all(GAP_MS[0] <= g <= GAP_MS[1] for g in gaps)
    # the least gap leaves the previous window closed before the next cue is due
    assert GAP_MS[0] > plan.window_ms + bc.REVEAL_LAG_MS
    assert all(c.action == "blink" for c in plan.cues)


def test_plans_differ_and_system_random_works() -> None:
    plans = {plan_live_challenge(random.Random(s)).cues for s in range(50)}
    assert len(plans) == 50
    plan = plan_live_challenge(secrets.SystemRandom())
    assert len(plan.cues) >= CUES[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.alpha = 1.0  # type: ignore[misc]


def test_plan_round_trips_through_its_dict() -> None:
    plan = plan_live_challenge(random.Random(3))
    assert LiveChallenge.from_dict(plan.to_dict()) == plan
    bad = plan.to_dict() | {"cues": [[100, "wink"]]}
    with pytest.raises(ValueError, match="wink"):
        LiveChallenge.from_dict(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cues": ()},
        {"cues": (Cue(3000), Cue(2000))},
        {"cues": (Cue(-1),)},
        {"cues": (Cue(2000),), "min_reaction_ms": 1500, "window_ms": 1400},
        {"cues": (Cue(2000),), "alpha": 0.0},
        {"cues": (Cue(2000),), "max_uncued": -1},
    ],
)
def test_bad_plans_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LiveChallenge(**kwargs)  # type: ignore[arg-type]


# --- the chance of hitting every window -------------------------------------------------------


@pytest.mark.parametrize(
    ("windows", "span", "blinks", "expected"),
    [
        ([], 10.0, 3, 1.0),
        ([(0.0, 1.0)], 10.0, 0, 0.0),
        ([(0.0, 1.0)], 10.0, 1, 0.1),
        ([(2.0, 3.0)], 10.0, 3, 1 - 0.9**3),
        ([(0.0, 1.0), (5.0, 7.0)], 10.0, 1, 0.0),
        ([(0.0, 1.0), (5.0, 7.0)], 10.0, 2, 2 * 0.1 * 0.2),
        ([(0.0, 1.0), (5.0, 7.0)], 10.0, 4, 1 - 0.9**4 - 0.8**4 + 0.7**4),
        # overlapping windows: the union is what a point must avoid
        ([(0.0, 2.0), (1.0, 3.0)], 10.0, 1, 0.1),
    ],
)
def test_chance_of_hits(
    windows: list[tuple[float, float]], span: float, blinks: int, expected: float
) -> None:
    assert chance_of_hits(windows, span, blinks) == pytest.approx(expected)


def test_chance_of_hits_matches_a_simulation() -> None:
    rng = random.Random(1)
    windows = [(1.0, 2.0), (4.0, 5.2), (7.0, 8.0)]
    n, hits = 20_000, 0
    for _ in range(n):
        pts = [rng.uniform(0, 10) for _ in range(6)]
        hits += all(any(lo <= p <= hi for p in pts) for lo, hi in windows)
    assert chance_of_hits(windows, 10.0, 6) == pytest.approx(hits / n, abs=0.01)


# --- the judge --------------------------------------------------------------------------------

SHOWN = [2100, 4600]
SPAN = (0, 6400)


@pytest.mark.parametrize(
    ("starts", "answered", "met"),
    [
        ([2700, 5200], (True, True), True),
        ([2100 + 250, 4600 + 1400], (True, True), True),  # window edges are inside
        ([2100 + 249, 5200], (False, True), False),  # faster than any reaction
        ([2000, 5200], (False, True), False),  # before the cue was shown
        ([1500, 2050, 5200], (False, True), False),
        ([2700 + 1400, 5200], (False, True), False),  # after the window
        ([2700], (True, False), False),
        ([], (False, False), False),
    ],
)
def test_judge_windows(starts: list[int], answered: tuple[bool, ...], met: bool) -> None:
    v = judge_live(two_cues(), SHOWN, [blink(s) for s in starts], SPAN)
    assert v.answered == answered
    assert v.met is met
    assert v.reason == (None if met else "challenge_not_met")


def test_a_blink_answers_one_cue_only() -> None:
    # cues shown 300 ms apart (a plan never does this): one blink lies in both windows
    ch = LiveChallenge((Cue(2000), Cue(2300)))
    v = judge_live(ch, [2000, 2300], [blink(2700)], (0, 5000))
    assert v.answered == (True, False) and not v.met
    v = judge_live(ch, [2000, 2300], [blink(2400), blink(2700)], (0, 5000))
    assert v.answered == (True, True)


def test_never_shown_cue_is_not_answered() -> None:
    v = judge_live(two_cues(), [2100, None], [blink(2700), blink(5200)], SPAN)
    assert v.answered == (True, False) and not v.met and v.chance == 1.0
    v = judge_live(two_cues(), [2100], [blink(2700), blink(5200)], SPAN)
    assert v.answered == (True, False)


def test_only_blinks_inside_the_capture_count() -> None:
    events = [blink(2700, "long_closure"), blink(5200, "truncated"), blink(5200)]
    v = judge_live(two_cues(), SHOWN, events, SPAN)
    assert v.answered == (False, True) and v.blinks == 1
    v = judge_live(two_cues(), SHOWN, [blink(2700), blink(5200), blink(7000)], SPAN)
    assert v.met and v.blinks == 2 and v.uncued == 0


def test_uncued_blinks_count_against_the_clip() -> None:
    cued = [blink(2700), blink(5200)]
    few = judge_live(two_cues(max_uncued=2), SHOWN, [*cued, blink(500), blink(4000)], SPAN)
    assert few.uncued == 2 and few.met
    many = [*cued, blink(300), blink(900), blink(1500), blink(3800), blink(6200)]
    v = judge_live(two_cues(max_uncued=4), SHOWN, many, SPAN)
    assert v.answered == (True, True) and v.uncued == 5 and not v.met


def test_default_plan_met_by_cued_blinks_alone() -> None:
    plan = plan_live_challenge(random.Random(8))
    shown = [c.due_ms + 150 for c in plan.cues]
    end = shown[-1] + plan.window_ms + plan.tail_ms
    v = judge_live(plan, shown, [blink(s + 600) for s in shown], (0, end))
    assert v.met and v.chance < 0.01
    # the same blinks just before each cue was shown: none answers
    v = judge_live(plan, shown, [blink(s - 50) for s in shown], (0, end))
    assert not any(v.answered)


def test_chance_decides_when_blinks_are_frequent() -> None:
    # every window hit, few uncued blinks allowed by count, but many blinks overall: luck
    many = [blink(t) for t in range(200, 6400, 600)]
    v = judge_live(two_cues(max_uncued=20, alpha=0.05), SHOWN, many, SPAN)
    assert all(v.answered) and v.chance > 0.05 and not v.met
    v = judge_live(two_cues(max_uncued=20, alpha=1.0), SHOWN, many, SPAN)
    assert v.met
    d = v.to_dict()
    assert d["asked"] == 2 and d["answered"] == 2 and d["blinks"] == len(many)


# --- the per-batch status ---------------------------------------------------------------------

PLAN = LiveChallenge((Cue(2000), Cue(4500)))


@pytest.mark.parametrize(
    ("shown", "newest", "events", "reveal", "active", "done"),
    [
        ([], 1999, [], None, False, False),
        ([], 2000, [], 0, True, False),
        ([2100], 2400, [], None, True, False),
        ([2100], 2900, [blink(2700)], None, False, False),  # answered: prompt off
        ([2100], 3600, [], None, False, False),  # window closed unanswered
        ([2100], 4600, [blink(2700)], 1, True, False),
        ([2100, 4600], 4600 + 1399, [], None, True, False),
        ([2100, 4600], 4600 + 1400, [], None, False, False),
        ([2100, 4600], 4600 + 1400 + 300, [], None, False, True),
        ([2100, None], 4600 + 1700, [], 1, True, False),
    ],
)
def test_cue_status(
    shown: list[int | None],
    newest: int,
    events: list[BlinkEvent],
    reveal: int | None,
    active: bool,
    done: bool,
) -> None:
    s = cue_status(PLAN, shown, newest, events)
    assert (s.reveal_index, s.cue_active, s.done) == (reveal, active, done)
    assert s.action == ("blink" if active else None)


def test_next_cue_waits_for_the_previous_window() -> None:
    # the first cue was revealed late (slow batches): the second is due but must wait
    s = cue_status(PLAN, [4000], 4600, [])
    assert s.reveal_index is None and s.cue_active
    assert cue_status(PLAN, [4000], 5400, []).reveal_index == 1


def test_timeline_reveals_every_cue_in_order() -> None:
    rng = random.Random(5)
    for _ in range(200):
        tl = bc.draw_timeline(rng)
        dues = [c.due_ms for c in tl.challenge.cues]
        assert len(tl.shown_ms) == len(dues)
        assert all(s >= d for s, d in zip(tl.shown_ms, dues, strict=True))
        gaps = [b - a for a, b in pairwise(tl.shown_ms)]
        assert all(g >= tl.challenge.window_ms for g in gaps)
        assert tl.span_ms[1] >= tl.shown_ms[-1] + tl.challenge.window_ms + tl.challenge.tail_ms
        assert tl.span_ms[1] <= 16_000  # short enough for an older person


# --- strength (seeded, smaller than the bench's run) ------------------------------------------

DURATIONS = [83, 120, 167, 233]


@pytest.fixture(scope="module")
def timelines() -> list[bc.Timeline]:
    rng = random.Random(10)
    return [bc.draw_timeline(rng) for _ in range(1500)]


def rate(source: bc.Source, timelines: list[bc.Timeline], name: str) -> float:
    return bc.pass_rate(source, timelines, name) / len(timelines)


def test_cooperative_person_passes(timelines: list[bc.Timeline]) -> None:
    assert rate(bc.cooperative(DURATIONS), timelines, "coop") >= 0.96


@pytest.mark.parametrize("per_min", [10, 30, 60, 120])
def test_poisson_blinker_replay_fails(timelines: list[bc.Timeline], per_min: int) -> None:
    assert rate(bc.poisson(per_min, DURATIONS), timelines, f"p{per_min}") <= 0.015


def test_looped_short_clip_is_the_worst_case(timelines: list[bc.Timeline]) -> None:
    # DinoMan's 3 s clip (blinks at 0.56 and 1.48 s) looped: a regular 40/min blinker whose
    # two close blinks cover ~65 % of the phases of a window; blink cues alone let ~3 % through
    clip = bc.Clip("dino-like", 2960, ((560, 120, True), (1480, 40, True)))
    r = rate(bc.replay(clip), timelines, "dino")
    assert 0.005 <= r <= 0.06
    # today's one-shot random challenge lets most of these replays through
    assert bc.today_rate(bc.replay(clip), 500, "dino") / 500 >= 0.5


def test_today_challenge_is_weak_against_a_fast_blinker() -> None:
    ok = bc.today_rate(bc.poisson(60, DURATIONS), 1000, "today60") / 1000
    assert ok >= 0.6
    assert challenge_met(Challenge(1, (1000,)), [blink(1200)])


def test_wilson_upper() -> None:
    assert bc.wilson_upper(0, 10_000) == pytest.approx(0.000384, abs=1e-5)
    assert bc.wilson_upper(100, 10_000) == pytest.approx(0.01215, abs=1e-4)
