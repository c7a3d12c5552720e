"""The liveness step's decision: liveness + registry match + the verdict recorded, in one place.

Both liveness paths end here: the one-shot upload (``POST .../liveness``, after
:meth:`Enrollments.take_nonce`) and the live capture (:meth:`ecard.capture.Captures.finish`).
The rules:

* the attempt is live only when the analysis says so and nothing else refused it (the live
  capture's cues not answered, no face found);
* the registry ID photo is compared only for a live attempt, on the best-quality live face
  descriptors (:meth:`LivenessResult.best_samples`), so a failed attempt tells nothing about
  the face;
* the outcome is recorded in the enrollment (verified, back to consented, or locked after the
  last attempt) by :meth:`Enrollments.record_liveness`, which returns the frozen verdict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ecard.enrollment.enrollments import Enrollments, LivenessVerdict
    from ecard.liveness.result import LivenessResult

#: How many of the best live face descriptors the registry match decides on.
MATCH_SAMPLES = 3


@dataclass(frozen=True)
class Decision:
    """What one attempt shows, before it is recorded."""

    live: bool
    blinks: int
    match: bool
    #: None when verified; else the code the citizen sees (``not_live``, ``no_match``, ...)
    reason: str | None


def matches_registry(template: bytes, result: LivenessResult, k: int = MATCH_SAMPLES) -> bool:
    """Whether the ``k`` best live descriptors of ``result`` match the registry ``template``."""
    from ecard.faces.match import FaceTemplate, match_template

    encodings = [s.encoding for s in result.best_samples(k)]
    if not encodings:
        return False
    return bool(match_template(FaceTemplate.from_bytes(template), encodings).match)


def decide(
    result: LivenessResult | None,
    template: bytes | None,
    *,
    refused: str | None = None,
) -> Decision:
    """Decide one attempt. ``result`` None: nothing could be analysed (``refused`` says why,
    else ``no_face``); ``refused``: a reason found outside the analysis (the live capture's
    cues not answered). ``template`` is the registry template, compared only when live."""
    if result is None:
        return Decision(False, 0, False, refused or "no_face")
    blinks = int(result.blinks)
    if not result.live:
        return Decision(False, blinks, False, result.reason or refused or "not_live")
    if refused is not None:
        return Decision(False, blinks, False, refused)
    match = template is not None and matches_registry(template, result)
    return Decision(True, blinks, match, None if match else "no_match")


def decide_and_record(
    enrollments: Enrollments,
    enrollment_id: str,
    result: LivenessResult | None,
    *,
    template: bytes | None = None,
    refused: str | None = None,
    capture_id: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> LivenessVerdict:
    """:func:`decide` the attempt and record it in the enrollment; returns the frozen verdict.

    ``template`` None: the registry template of the enrollment's citizen is read when needed
    (only for a live attempt). ``capture_id`` and ``detail`` as for
    :meth:`Enrollments.record_liveness`.
    """
    if template is None and result is not None and result.live and refused is None:
        template = enrollments.template_of(enrollment_id)
    decision = decide(result, template, refused=refused)
    return enrollments.record_liveness(
        enrollment_id, **asdict(decision), capture_id=capture_id, detail=detail, now=now
    )
