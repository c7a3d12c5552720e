"""Tunable liveness policy and media limits, as frozen values with documented defaults.

Every default below was calibrated on ../shared/data/blink (see docs/liveness.md for the data,
the method and the resulting figures). None of them is an absolute eye-aspect-ratio threshold:
eye openness is always judged relative to the face's own open-eye baseline.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BlinkPolicy:
    """How a blink is recognised in an eye-openness series and when a clip counts as live.

    Openness values are divided by a rolling open-eye baseline (the ``baseline_percentile``-th
    percentile of the values within ``baseline_window_ms`` around each frame), so a face whose
    eyes are naturally narrow, a landmark scheme with other absolute values, or a slow drift
    (looking down, moving away) does not matter. A dip counts when its depth under the baseline
    and its prominence reach ``max(required depth, depth_noise_k * noise)``, where the required
    depth is ``min_depth`` at ``full_depth_fps`` and above, scaled down with the frame rate to no
    less than ``min_depth_floor``. Its *core* (the frames within ``core_fraction`` of the
    prominence from the deepest point) gives the closure's duration: up to ``max_blink_ms`` it is
    a blink, longer it is a deliberate closure (not a blink). A blink also falls from open eyes
    and reopens them: its minimum must be the required depth under the highest openness within
    ``open_window_ms`` before its core *and* within as long after it, so a dip into eyes that
    stay narrowed (looking down, squinting) is not one. See docs/liveness.md.
    """

    #: width of the rolling window for the open-eye baseline, in ms
    baseline_window_ms: int = 5000
    #: percentile of openness in that window taken as "eyes open"
    baseline_percentile: float = 90.0
    #: frames at least this close to the baseline count as open when measuring the noise
    min_drop: float = 0.12
    #: smallest relative depth of the deepest frame of a counted closure (at full_depth_fps+)
    min_depth: float = 0.32
    #: at lower frame rates the required depth shrinks in proportion, down to this floor
    min_depth_floor: float = 0.22
    full_depth_fps: float = 20.0
    #: the depth must also exceed this many robust standard deviations of the noise
    depth_noise_k: float = 4.5
    #: how far (ms) each side of a dip is searched for the open level it falls from
    prominence_window_ms: int = 1500
    #: frames within this fraction of the depth from the minimum form the closure's core
    core_fraction: float = 0.25
    #: shortest blink (ms, at half depth); one frame at 30 fps is jitter, at 12 fps it is a blink
    min_blink_ms: int = 60
    #: longest core of a blink in ms; longer closures are deliberate, not blinks
    max_blink_ms: int = 600
    #: longest dip (ms, at half depth) around a blink: slower dips are gaze or posture changes
    max_dip_ms: int = 1200
    #: longest fall (ms) from nearly open to the deepest frame: a blink shuts in about 0.1 s
    max_fall_ms: int = 400
    #: on each side of a blink's core, its minimum must be the required depth under the highest
    #: openness within this many ms (the eyes were open just before and reopen just after)
    open_window_ms: int = 400
    #: missing frames (no face) bridged inside one closure
    max_gap_frames: int = 1
    #: blinks needed for ``live`` when no challenge is given
    min_blinks: int = 1
    #: largest face-descriptor distance between the start, middle and end samples of one clip;
    #: above it the clip is refused as ``face_changed``
    same_face_distance: float = 0.45
    #: a second face counts when it is at least this fraction of the main face's height ...
    second_face_min_height: float = 0.5
    #: ... and is seen in at least this fraction of the detection passes
    second_face_min_share: float = 0.2
    #: the face must be found in at least this fraction of the frames
    min_face_share: float = 0.6


@dataclass(frozen=True)
class MediaLimits:
    """What the service refuses before heavy work (HTTP 413/422, CLI exit 2).

    Defaults fit a phone selfie clip of up to 30 s at 30 fps and up to 1920 x 1920 pixels.
    """

    max_bytes: int = 50 * 1024 * 1024
    max_frames: int = 900
    max_duration_ms: int = 30_000
    max_width: int = 1920
    max_height: int = 1920
    #: fewer decodable frames than this is ``too_few_frames``
    min_frames: int = 2
