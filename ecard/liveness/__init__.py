"""Blink-based liveness: frames in, a LivenessResult out (no Flask, no database).

Importing this package is cheap: OpenCV and dlib load inside the functions that need them.
"""

from ecard.liveness.analyze import analyze_frames, analyze_video
from ecard.liveness.blinks import BlinkEvent, detect_blinks, parse_series
from ecard.liveness.challenge import Challenge, challenge_met
from ecard.liveness.policy import BlinkPolicy, MediaLimits
from ecard.liveness.result import FaceSample, LivenessResult

__all__ = [
    "BlinkEvent",
    "BlinkPolicy",
    "Challenge",
    "FaceSample",
    "LivenessResult",
    "MediaLimits",
    "analyze_frames",
    "analyze_video",
    "challenge_met",
    "detect_blinks",
    "parse_series",
]
