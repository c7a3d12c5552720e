"""The enrollment: from the channel's authorization to an issued card (no Flask here).

- :mod:`ecard.enrollment.state`: :class:`EnrollmentState` and the table of legal transitions
- :mod:`ecard.enrollment.agreement`: the agreement (version; texts as package data files)
- :mod:`ecard.enrollment.enrollments`: :class:`Enrollments`, the steps over the store
"""

from ecard.enrollment.agreement import AGREEMENT_VERSION, Agreement, agreement
from ecard.enrollment.enrollments import (
    ENROLLMENT_TTL,
    MAX_LIVENESS_ATTEMPTS,
    NONCE_TTL,
    Authorized,
    ChallengeSpec,
    Enrollments,
    EnrollmentView,
    LivenessTicket,
    LivenessVerdict,
    TimelineStep,
    hash_secret,
    random_challenge,
)
from ecard.enrollment.state import TERMINAL, TRANSITIONS, EnrollmentState, transition

__all__ = [
    "AGREEMENT_VERSION",
    "ENROLLMENT_TTL",
    "MAX_LIVENESS_ATTEMPTS",
    "NONCE_TTL",
    "TERMINAL",
    "TRANSITIONS",
    "Agreement",
    "Authorized",
    "ChallengeSpec",
    "EnrollmentState",
    "EnrollmentView",
    "Enrollments",
    "LivenessTicket",
    "LivenessVerdict",
    "TimelineStep",
    "agreement",
    "hash_secret",
    "random_challenge",
    "transition",
]
