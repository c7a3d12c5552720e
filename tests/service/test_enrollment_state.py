"""The enrollment state machine's table (ecard/enrollment/state.py), the liveness decision
(ecard/enrollment/verify.py) and the agreement data files: refused moves answer the typed
409 ``wrong_state`` through the domain and the API alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from svc_helpers import bearer, insert_citizen, start_enrollment

from ecard.enrollment import Enrollments
from ecard.enrollment.agreement import AGREEMENT_DIGEST, AGREEMENT_VERSION, agreement
from ecard.enrollment.state import (
    OPEN,
    TERMINAL,
    TRANSITIONS,
    EnrollmentState,
    can_move,
    sources,
    transition,
)
from ecard.enrollment.verify import decide
from ecard.errors import EcardError, StateError
from ecard.store import Store
from ecard.store.models import ENROLLMENT_STATES

S = EnrollmentState

#: Every legal move, spelled out once more by hand: the table must say exactly this.
LEGAL = {
    (S.AUTHORIZED, S.CONSENTED),
    (S.AUTHORIZED, S.FAILED),
    (S.CONSENTED, S.CHALLENGED),
    (S.CONSENTED, S.CAPTURING),
    (S.CHALLENGED, S.CHALLENGED),
    (S.CHALLENGED, S.CAPTURING),
    (S.CHALLENGED, S.VERIFIED),
    (S.CHALLENGED, S.CONSENTED),
    (S.CHALLENGED, S.LOCKED),
    (S.CAPTURING, S.VERIFIED),
    (S.CAPTURING, S.CONSENTED),
    (S.CAPTURING, S.LOCKED),
    (S.VERIFIED, S.ISSUED),
} | {(s, S.EXPIRED) for s in (S.AUTHORIZED, S.CONSENTED, S.CHALLENGED, S.CAPTURING, S.VERIFIED)}


def test_states_are_the_store_column_values() -> None:
    assert tuple(S) == ENROLLMENT_STATES
    assert set(TRANSITIONS) == set(S)


def test_the_table_is_exactly_the_legal_moves() -> None:
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == LEGAL
    assert {S.ISSUED, S.EXPIRED, S.FAILED, S.LOCKED} == set(TERMINAL)
    assert not OPEN & TERMINAL and set(S) == OPEN | TERMINAL
    assert sources(S.ISSUED) == {S.VERIFIED}
    assert sources(S.CAPTURING) == {S.CONSENTED, S.CHALLENGED}


@pytest.mark.parametrize(("current", "target"), [(a, b) for a in S for b in S])
def test_every_illegal_move_is_refused_with_the_typed_error(current: S, target: S) -> None:
    if (current, target) in LEGAL:
        assert can_move(current.value, target) and transition(current.value, target) is target
        return
    assert not can_move(current.value, target)
    with pytest.raises(StateError) as err:
        transition(current.value, target, f"no {current} -> {target}")
    assert isinstance(err.value, EcardError)
    assert (err.value.status, err.value.code) == (409, "wrong_state")
    assert err.value.message == f"no {current} -> {target}"


def test_the_domain_refuses_steps_out_of_order(store: Store) -> None:
    from ecard.channels import add_channel, authenticate

    made = add_channel(store, name="t", scopes="enroll")
    ident = authenticate(store, made.client_id, made.client_secret)
    number = insert_citizen(store, name="Li Lei")
    enr = Enrollments(store)
    eid = enr.authorize(ident, number, "Li Lei").enrollment_id
    with pytest.raises(StateError, match="only once verified"):  # authorized -> issued
        enr.issue(eid, "pin-hash", lambda draft: "token")
    with pytest.raises(StateError, match="A challenge is not possible"):  # authorized -> challenged
        enr.challenge(eid, 2)
    assert enr.consent(eid, True) == S.CONSENTED
    with pytest.raises(StateError, match="Consent was already given"):  # consented -> consented
        enr.consent(eid, True)
    with pytest.raises(StateError, match="Consent was already given"):  # consented -> failed
        enr.consent(eid, False)
    assert enr.view(eid).state == "consented"


def test_the_api_answers_a_refused_move_with_409(client: Any, store: Store, creds: Any) -> None:
    enr = start_enrollment(client, creds, insert_citizen(store))
    eid, tok = enr["enrollment_id"], enr["enrollment_token"]
    r = client.post(f"/api/v1/enrollments/{eid}/challenge", headers=bearer(tok))
    assert (r.status_code, r.json["error"]) == (409, "wrong_state"), r.json
    assert "authorized" in r.json["message"]


def test_the_agreement_texts_are_package_data_of_this_version() -> None:
    a = agreement()
    assert a.version == AGREEMENT_VERSION and set(a.texts) == {"en", "zh-CN"}
    assert a.text == a.texts["en"] and "social security card" in a.text
    # a text changed without a new version would be consented to under the old one
    assert a.digest() == AGREEMENT_DIGEST, "agreement text changed: bump AGREEMENT_VERSION"


# --- the liveness decision (ecard/enrollment/verify.py) --------------------------------------


@dataclass(frozen=True)
class _Result:
    live: bool
    blinks: int
    reason: str | None
    samples: tuple[Any, ...] = field(default=())

    def best_samples(self, k: int = 3) -> tuple[Any, ...]:
        return self.samples[:k]


def test_a_failed_attempt_never_compares_the_face() -> None:
    class Boom(bytes):
        pass

    not_live = decide(_Result(False, 0, "not_enough_blinks"), None)  # type: ignore[arg-type]
    assert (not_live.live, not_live.match, not_live.reason) == (False, False, "not_enough_blinks")
    refused = decide(_Result(True, 2, None), None, refused="challenge_not_met")  # type: ignore[arg-type]
    assert (refused.live, refused.match, refused.reason) == (False, False, "challenge_not_met")
    assert refused.blinks == 2
    nothing = decide(None, None, refused="multiple_faces")
    assert (nothing.live, nothing.blinks, nothing.reason) == (False, 0, "multiple_faces")
    assert decide(None, None).reason == "no_face"
    # live, but no face descriptors to compare: no match (and no template is read)
    empty = decide(_Result(True, 2, None), Boom(b"x"))  # type: ignore[arg-type]
    assert (empty.live, empty.match, empty.reason) == (True, False, "no_match")
