"""The blink challenge: a required count and, optionally, cued moments that blinks must follow.

The service picks the count and cue times at random when the capture starts and shows the cues on
the page; a recording made earlier blinks at other moments, so replaying it fails the check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
