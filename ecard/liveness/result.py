"""What a liveness check returns: frozen values, JSON-able without biometric data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ecard.liveness.blinks import BlinkEvent

#: the stable codes ``LivenessResult.reason`` takes (None when live)
REASONS = (
    "no_blink",  # a face, but too few blinks: not live, try again
    "challenge_not_met",  # blinks, but not at the cued moments (or too few for the challenge)
    "no_face",  # the face was missing from too many frames
    "multiple_faces",  # a second face stayed in view
    "face_changed",  # the clip shows more than one person (identity binding, docs/liveness.md)
    "presentation_attack",  # paper or a screen, not a live face (docs/liveness.md)
)


@dataclass(frozen=True)
class FaceSample:
    """One well-chosen frame's 128-d face descriptor (sharp, frontal, eyes open).

    Memory only: never logged, stored or serialised; ``quality`` is in 0..1.
    """

    t_ms: int
    encoding: npt.NDArray[np.float64] = field(repr=False, compare=False)
    quality: float


@dataclass(frozen=True)
class LivenessResult:
    """The answer for one clip. ``faces_found`` counts the frames in which a face was found."""

    live: bool
    blinks: int
    events: tuple[BlinkEvent, ...]
    frames: int
    faces_found: int
    reason: str | None
    duration_ms: int
    challenge_met: bool | None = None
    face_distance: float | None = None
    samples: tuple[FaceSample, ...] = field(default=(), repr=False, compare=False)
    #: face descriptors computed for identity binding, and the track segments they cover
    descriptors: int = 0
    identity_parts: int = 0

    def best_samples(self, k: int = 3) -> tuple[FaceSample, ...]:
        """The ``k`` best-quality live descriptors (the registry match decides on these)."""
        return tuple(sorted(self.samples, key=lambda s: s.quality, reverse=True)[:k])

    def to_dict(self) -> dict[str, object]:
        """JSON-able summary: no frames, landmarks or face descriptors."""
        return {
            "live": self.live,
            "blinks": self.blinks,
            "frames": self.frames,
            "faces_found": self.faces_found,
            "reason": self.reason,
            "duration_ms": self.duration_ms,
            "challenge_met": self.challenge_met,
            "face_distance": None if self.face_distance is None else round(self.face_distance, 3),
            "descriptors": self.descriptors,
            "identity_parts": self.identity_parts,
            "events": [e.to_dict() for e in self.events],
        }
