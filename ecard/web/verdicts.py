"""The liveness verdict as the API answers it, for the one-shot upload and the live capture.

The verdict itself is decided and recorded by the domain
(:func:`ecard.enrollment.verify.decide_and_record`); this module counts its outcome in the
metrics and serialises it, once for both routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecard.web import metrics, schemas

if TYPE_CHECKING:
    from ecard.capture import CaptureVerdict
    from ecard.enrollment import LivenessVerdict


def liveness_answer(verdict: LivenessVerdict) -> schemas.LivenessResult:
    """The answer of ``POST .../liveness`` (and the common part of a capture's finish)."""
    metrics.LIVENESS.labels(outcome=verdict.reason or verdict.state).inc()
    return schemas.LivenessResult.model_validate(verdict, from_attributes=True)


def capture_answer(verdict: CaptureVerdict) -> schemas.CaptureVerdict:
    """The answer of ``POST .../capture/{id}/finish``: the verdict and the cues answered."""
    cues = schemas.CuesCount(asked=verdict.cues_asked, answered=verdict.cues_answered)
    return schemas.CaptureVerdict(**liveness_answer(verdict).model_dump(), cues=cues)
