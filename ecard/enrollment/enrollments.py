"""The enrollments: the state machine's steps over the store (no Flask here).

The states and the legal moves are in :mod:`ecard.enrollment.state`; every step below checks
its move against that table. The one-shot path (``challenge`` + an uploaded clip) counts an
attempt when the clip is analysed; the live capture (``ecard/capture.py``) counts it when the
capture starts, so abandoning captures until a replay gets lucky costs attempts too.

Every step runs in one write transaction that re-reads the enrollment row (``FOR UPDATE`` on
PostgreSQL; SQLite holds the write lock from ``BEGIN IMMEDIATE``), checks the state and expiry,
changes it, and adds an audit row. The database enforces what must hold under concurrency: one
live card per citizen (a partial unique index), one card per enrollment, unique status-list slots.

Time and randomness are parameters (``now``, ``rng``) so tests can drive them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import and_, delete, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ecard.cards.issuance import new_card
from ecard.cards.values import CardDraft, IssuedCard, Signer, card_info
from ecard.citizens import mask_id_number, mask_name, validate_id_number, validate_name
from ecard.enrollment.agreement import AGREEMENT_VERSION
from ecard.enrollment.state import OPEN, TERMINAL, EnrollmentState, transition
from ecard.errors import (
    AuthError,
    CaptureExpiredError,
    CaptureRunningError,
    CardConflictError,
    CitizenNotFoundError,
    EnrollmentEndedError,
    EnrollmentExpiredError,
    EnrollmentLockedError,
    NonceError,
    NotFoundError,
    StateError,
)
from ecard.store.audit import record
from ecard.store.models import AuditEvent, CaptureRow, Card, Citizen, Enrollment

if TYPE_CHECKING:
    from ecard.channels import ChannelIdentity
    from ecard.store import Store

S = EnrollmentState

ENROLLMENT_TTL = timedelta(minutes=15)
NONCE_TTL = timedelta(seconds=120)
MAX_LIVENESS_ATTEMPTS = 3


def hash_secret(value: str) -> str:
    """SHA-256 hex of a high-entropy bearer secret (enrollment token, nonce)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Authorized:
    enrollment_id: str
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class TimelineStep:
    at: datetime
    step: str
    outcome: str
    actor: str


@dataclass(frozen=True)
class EnrollmentView:
    """What the citizen and the channel may see of an enrollment (personal data masked)."""

    id: str
    state: EnrollmentState
    name_masked: str
    id_number_masked: str
    created_at: datetime
    expires_at: datetime
    attempts_left: int
    agreement_version: str | None
    consented_at: datetime | None
    challenge_blinks: int | None
    nonce_expires_at: datetime | None
    #: when the running live capture expires (state ``capturing``), else None
    capture_expires_at: datetime | None
    card_no: str | None
    reason: str | None
    timeline: tuple[TimelineStep, ...]
    #: ``issue`` (a new card) or ``recover`` (ecard/recovery.py: the live card's face check)
    purpose: Literal["issue", "recover"] = "issue"


@dataclass(frozen=True)
class ChallengeSpec:
    """A challenge as sent to the citizen; ``cues_ms`` empty means "blinks anywhere"."""

    nonce: str
    blinks: int
    cues_ms: tuple[int, ...]
    expires_at: datetime


@dataclass(frozen=True)
class LivenessTicket:
    """What the liveness step needs after the nonce is consumed (memory only)."""

    enrollment_id: str
    blinks: int
    cues_ms: tuple[int, ...]
    template: bytes


@dataclass(frozen=True)
class LivenessVerdict:
    live: bool
    blinks: int
    match: bool
    state: EnrollmentState
    reason: str | None
    attempts_left: int


# --- helpers -----------------------------------------------------------------------------------


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def random_challenge(rng: random.Random | secrets.SystemRandom) -> tuple[int, tuple[int, ...]]:
    """1-3 blinks cued at unpredictable moments: first 1.2-2.2 s in, then 1.6-2.6 s apart."""
    blinks = rng.randint(1, 3)
    cues: list[int] = []
    t = rng.randint(1200, 2200)
    for _ in range(blinks):
        cues.append(t)
        t += rng.randint(1600, 2600)
    return blinks, tuple(cues)


# --- enrollment --------------------------------------------------------------------------------


class Enrollments:
    """The enrollment state machine over a :class:`~ecard.store.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def authorize(
        self, channel: ChannelIdentity, id_number: str, name: str, *, now: datetime | None = None
    ) -> Authorized:
        """Start an enrollment for a registry citizen; the token is returned once, stored hashed."""
        now = _now(now)
        number = validate_id_number(id_number)
        clean = validate_name(name)
        token = secrets.token_urlsafe(32)
        eid = secrets.token_hex(12)
        with self.store.write() as s:
            citizen = s.scalars(select(Citizen).where(Citizen.id_number == number)).first()
            if citizen is None or not hmac.compare_digest(
                citizen.name.casefold().encode(), clean.casefold().encode()
            ):
                raise CitizenNotFoundError()
            s.add(
                Enrollment(
                    id=eid,
                    citizen_id=citizen.id,
                    channel_id=channel.id,
                    token_hash=hash_secret(token),
                    state=S.AUTHORIZED,
                    created_at=now,
                    expires_at=now + ENROLLMENT_TTL,
                    attempts=0,
                )
            )
            s.flush()
            record(
                s,
                actor=f"channel:{channel.client_id}",
                action="authorize",
                outcome="authorized",
                enrollment_id=eid,
                now=now,
            )
        return Authorized(eid, token, now + ENROLLMENT_TTL)

    # -- access ----------------------------------------------------------------------------------

    def check_token(self, enrollment_id: str, token: str, *, now: datetime | None = None) -> None:
        """401 unless ``token`` is this enrollment's bearer token (unknown ids look the same).

        The token works only while the enrollment is open: once it has ended it opens nothing
        any more (no card number, no steps): 410 ``enrollment_ended`` after issuance or a
        declined agreement, 410 ``enrollment_expired`` after its 15 minutes, 423
        ``enrollment_locked`` after the last failed attempt.
        """
        with self.store.read() as s:
            row = s.execute(
                select(Enrollment.token_hash, Enrollment.state, Enrollment.expires_at).where(
                    Enrollment.id == enrollment_id
                )
            ).first()
        if row is None or not hmac.compare_digest(row.token_hash, hash_secret(token)):
            raise AuthError("The enrollment token is not valid for this enrollment.")
        now = _now(now)
        if row.state == S.EXPIRED or (row.state in OPEN and row.expires_at <= now):
            self._expire_if_due(enrollment_id, now)
            raise EnrollmentExpiredError()
        if row.state == S.LOCKED:
            raise EnrollmentLockedError()
        if row.state in TERMINAL:
            raise EnrollmentEndedError()

    def id_number_of(self, enrollment_id: str) -> str:
        """The citizen's full ID number (for the PIN policy: no birth date or ID digits)."""
        with self.store.read() as s:
            number = s.scalar(
                select(Citizen.id_number)
                .join(Enrollment, Enrollment.citizen_id == Citizen.id)
                .where(Enrollment.id == enrollment_id)
            )
        if number is None:
            raise NotFoundError("No such enrollment.")
        return str(number)

    def template_of(self, enrollment_id: str) -> bytes:
        """The registry face template of the enrollment's citizen (for the liveness match)."""
        with self.store.read() as s:
            template = s.scalar(
                select(Citizen.template)
                .join(Enrollment, Enrollment.citizen_id == Citizen.id)
                .where(Enrollment.id == enrollment_id)
            )
        if template is None:
            raise NotFoundError("No such enrollment.")
        return bytes(template)

    def channel_of(self, enrollment_id: str) -> int:
        with self.store.read() as s:
            channel_id = s.scalar(
                select(Enrollment.channel_id).where(Enrollment.id == enrollment_id)
            )
        if channel_id is None:
            raise NotFoundError("No such enrollment.")
        return int(channel_id)

    def view(self, enrollment_id: str, *, now: datetime | None = None) -> EnrollmentView:
        """What the citizen and the channel see. Cue times are never shown (the live capture
        keeps them secret; the one-shot "N blinks anywhere" challenge has none)."""
        now = _now(now)
        self._expire_if_due(enrollment_id, now)
        with self.store.read() as s:
            row = s.get(Enrollment, enrollment_id)
            if row is None:
                raise NotFoundError("No such enrollment.")
            citizen = s.get_one(Citizen, row.citizen_id)
            card_no = s.scalar(select(Card.card_no).where(Card.enrollment_id == row.id))
            events = s.scalars(
                select(AuditEvent)
                .where(AuditEvent.enrollment_id == row.id)
                .order_by(AuditEvent.at, AuditEvent.id)
            ).all()
            capture_expires = (
                s.scalar(select(CaptureRow.expires_at).where(CaptureRow.enrollment_id == row.id))
                if row.state == S.CAPTURING
                else None
            )
            return EnrollmentView(
                id=row.id,
                state=S(row.state),
                name_masked=mask_name(citizen.name),
                id_number_masked=mask_id_number(citizen.id_number),
                created_at=row.created_at,
                expires_at=row.expires_at,
                attempts_left=max(0, MAX_LIVENESS_ATTEMPTS - row.attempts),
                agreement_version=row.agreement_version,
                consented_at=row.consented_at,
                challenge_blinks=row.challenge_blinks if row.state == S.CHALLENGED else None,
                nonce_expires_at=row.nonce_expires_at if row.nonce_hash else None,
                capture_expires_at=capture_expires,
                card_no=card_no,
                reason=row.reason,
                timeline=tuple(TimelineStep(e.at, e.action, e.outcome, e.actor) for e in events),
                purpose="recover" if row.purpose == "recover" else "issue",
            )

    def _expire_if_due(self, enrollment_id: str, now: datetime) -> None:
        with self.store.read() as s:
            row = s.execute(
                select(Enrollment.state, Enrollment.expires_at).where(
                    Enrollment.id == enrollment_id
                )
            ).first()
        if row is None or row.state in TERMINAL:
            return
        if row.expires_at > now:
            if row.state == S.CAPTURING:
                self.expire_capture_if_due(enrollment_id, now=now)
            return  # the common case: no write transaction needed
        with self.store.write() as s:
            res = s.execute(
                update(Enrollment)
                .where(
                    Enrollment.id == enrollment_id,
                    Enrollment.expires_at <= now,
                    Enrollment.state.in_(OPEN),
                )
                .values(state=S.EXPIRED, finished_at=now, nonce_hash=None, reason="timeout")
            )
            if res.rowcount:  # type: ignore[attr-defined]
                s.execute(delete(CaptureRow).where(CaptureRow.enrollment_id == enrollment_id))
                record(
                    s,
                    actor="system",
                    action="expire",
                    outcome="expired",
                    enrollment_id=enrollment_id,
                    now=now,
                )

    # -- live capture (ecard/capture.py keeps the capture rows) -------------------------------

    def lock(self, s: Session, enrollment_id: str, now: datetime) -> Enrollment:
        """The enrollment row locked for update in ``s``; 404 / 410 / 423 as for every step."""
        return self._locked_row(s, enrollment_id, now)

    def begin_capture(self, s: Session, row: Enrollment, capture_id: str, now: datetime) -> int:
        """Move a locked enrollment to ``capturing`` and count the attempt; returns attempts left.

        Allowed from ``consented`` (and ``challenged``: the unused one-shot nonce is dropped).
        The caller has already expired any capture that timed out.
        """
        if row.state == S.CAPTURING:
            raise CaptureRunningError()
        target = transition(
            row.state, S.CAPTURING, f"A capture is not possible in state {row.state}."
        )
        if row.attempts >= MAX_LIVENESS_ATTEMPTS:
            raise EnrollmentLockedError()
        row.attempts += 1
        row.state, row.reason = target, None
        row.nonce_hash = row.nonce_expires_at = None
        row.challenge_blinks = row.challenge_cues = None
        record(
            s,
            actor="citizen",
            action="capture",
            outcome="capturing",
            enrollment_id=row.id,
            detail=f"capture {capture_id}, attempt {row.attempts}",
            now=now,
        )
        return max(0, MAX_LIVENESS_ATTEMPTS - row.attempts)

    def expire_capture_if_due(
        self, enrollment_id: str, *, now: datetime | None = None, force: bool = False
    ) -> bool:
        """Delete the enrollment's capture once expired (``force``: whatever its time) and move
        the enrollment back to ``consented``, or to ``locked`` when that was the last attempt
        (the attempt stays used). Returns whether a capture was expired."""
        now = _now(now)
        due = and_(
            CaptureRow.enrollment_id == enrollment_id,
            true() if force else CaptureRow.expires_at <= now,
        )
        with self.store.read() as s:
            if s.scalar(select(CaptureRow.id).where(due)) is None:
                return False  # the common case: nothing to clean, no write transaction
        with self.store.write() as s:
            row = s.get(Enrollment, enrollment_id, with_for_update=True)
            gone = s.execute(delete(CaptureRow).where(due).returning(CaptureRow.id)).all()
            if row is None or not gone:
                return False
            if row.state == S.CAPTURING:
                if row.attempts >= MAX_LIVENESS_ATTEMPTS:
                    row.state, row.finished_at = transition(row.state, S.LOCKED), now
                else:
                    row.state = transition(row.state, S.CONSENTED)
                row.reason = "capture_expired"
            for (capture_id,) in gone:
                record(
                    s,
                    actor="system",
                    action="capture_expire",
                    outcome="locked" if row.state == S.LOCKED else "expired",
                    enrollment_id=enrollment_id,
                    detail=f"capture {capture_id}",
                    now=now,
                )
        return True

    def expire_due_captures(self, *, now: datetime | None = None, limit: int = 50) -> int:
        """Sweep: expire up to ``limit`` timed-out captures of any enrollment (indexed, cheap)."""
        now = _now(now)
        with self.store.read() as s:
            due = s.scalars(
                select(CaptureRow.enrollment_id).where(CaptureRow.expires_at <= now).limit(limit)
            ).all()
        return sum(self.expire_capture_if_due(eid, now=now) for eid in due)

    def _locked_row(self, s: Session, enrollment_id: str, now: datetime) -> Enrollment:
        row = s.get(Enrollment, enrollment_id, with_for_update=True)
        if row is None:
            raise NotFoundError("No such enrollment.")
        if row.state == S.EXPIRED or (row.state in OPEN and row.expires_at <= now):
            raise EnrollmentExpiredError()
        if row.state == S.LOCKED:
            raise EnrollmentLockedError()
        return row

    def expire_if_due(self, enrollment_id: str, *, now: datetime | None = None) -> None:
        """Record the enrollment's expiry, and its capture's, when their time has come."""
        self._expire_if_due(enrollment_id, _now(now))

    def _step(self, enrollment_id: str, now: datetime) -> None:
        """Raise 410 (after recording the expiry) when the enrollment has timed out."""
        self._expire_if_due(enrollment_id, now)

    # -- steps -----------------------------------------------------------------------------------

    def consent(
        self,
        enrollment_id: str,
        agree: bool,
        *,
        agreement_version: str | None = None,
        now: datetime | None = None,
    ) -> EnrollmentState:
        """Record the consent with the agreement version and time; returns the new state.

        Declining (``agree`` False) ends the enrollment: state ``failed``, reason
        ``consent_declined`` (the channel sees it; a new enrollment can start any time).
        """
        now = _now(now)
        self._step(enrollment_id, now)
        if not agree:
            with self.store.write() as s:
                row = self._locked_row(s, enrollment_id, now)
                failed = transition(
                    row.state, S.FAILED, f"Consent was already given (state: {row.state})."
                )
                row.state, row.reason, row.finished_at = failed, "consent_declined", now
                record(
                    s,
                    actor="citizen",
                    action="consent",
                    outcome="declined",
                    enrollment_id=enrollment_id,
                    detail=f"agreement {AGREEMENT_VERSION}",
                    now=now,
                )
            return S.FAILED
        if agreement_version is not None and agreement_version != AGREEMENT_VERSION:
            raise StateError(
                f"The agreement has changed (now version {AGREEMENT_VERSION}); read it again."
            )
        with self.store.write() as s:
            row = self._locked_row(s, enrollment_id, now)
            row.state = transition(
                row.state, S.CONSENTED, f"Consent was already given (state: {row.state})."
            )
            row.agreement_version = AGREEMENT_VERSION
            row.consented_at = now
            record(
                s,
                actor="citizen",
                action="consent",
                outcome="consented",
                enrollment_id=enrollment_id,
                detail=f"agreement {AGREEMENT_VERSION}",
                now=now,
            )
        return S.CONSENTED

    def challenge(
        self,
        enrollment_id: str,
        fixed_blinks: int | None,
        *,
        rng: random.Random | secrets.SystemRandom | None = None,
        now: datetime | None = None,
    ) -> ChallengeSpec:
        """A fresh single-use challenge (replaces any earlier unused one).

        ``fixed_blinks`` None: 1-3 blinks at random cue times; N: at least N blinks, no cues.
        """
        now = _now(now)
        self._step(enrollment_id, now)
        r = rng or secrets.SystemRandom()
        if fixed_blinks is None:
            blinks, cues = random_challenge(r)
        else:
            blinks, cues = fixed_blinks, ()
        nonce = secrets.token_urlsafe(24)
        expires = now + NONCE_TTL
        with self.store.write() as s:
            row = self._locked_row(s, enrollment_id, now)
            if row.state == S.CAPTURING:
                raise CaptureRunningError()
            row.state = transition(
                row.state, S.CHALLENGED, f"A challenge is not possible in state {row.state}."
            )
            row.nonce_hash = hash_secret(nonce)
            row.nonce_expires_at = expires
            row.challenge_blinks = blinks
            row.challenge_cues = json.dumps(list(cues))
            record(
                s,
                actor="citizen",
                action="challenge",
                outcome="challenged",
                enrollment_id=enrollment_id,
                detail=f"{blinks} blink(s), {'cued' if cues else 'anywhere'}",
                now=now,
            )
        return ChallengeSpec(nonce, blinks, cues, expires)

    def ensure_state(
        self, enrollment_id: str, state: EnrollmentState | str, *, now: datetime | None = None
    ) -> None:
        """Cheap check before a heavy upload is parsed: 409/410/423 when not in ``state``."""
        now = _now(now)
        self._step(enrollment_id, now)
        with self.store.read() as s:
            row = s.get(Enrollment, enrollment_id)
        if row is None:
            raise NotFoundError("No such enrollment.")
        if row.state == S.EXPIRED:  # 410 as every other step answers, not 409
            raise EnrollmentExpiredError()
        if row.state == S.LOCKED:
            raise EnrollmentLockedError()
        if row.state != state:
            raise StateError(f"This step needs state {state}; the enrollment is {row.state}.")

    def take_nonce(
        self, enrollment_id: str, nonce: str, *, now: datetime | None = None
    ) -> LivenessTicket:
        """Consume the challenge nonce (single use, atomic) and hand out what liveness needs."""
        now = _now(now)
        self._step(enrollment_id, now)
        with self.store.write() as s:
            row = self._locked_row(s, enrollment_id, now)
            if row.state != S.CHALLENGED:
                raise StateError(f"Ask for a challenge first (state: {row.state}).")
            if (
                row.nonce_hash is None
                or row.nonce_expires_at is None
                or row.nonce_expires_at <= now
                or not hmac.compare_digest(row.nonce_hash, hash_secret(nonce))
            ):
                raise NonceError()
            row.nonce_hash = None
            citizen = s.get_one(Citizen, row.citizen_id)
            cues = tuple(json.loads(row.challenge_cues or "[]"))
            return LivenessTicket(row.id, int(row.challenge_blinks or 0), cues, citizen.template)

    def record_liveness(
        self,
        enrollment_id: str,
        *,
        live: bool,
        blinks: int,
        match: bool,
        reason: str | None,
        capture_id: str | None = None,
        detail: str | None = None,
        now: datetime | None = None,
    ) -> LivenessVerdict:
        """Record one attempt's verdict: verified when live and matching; locked after the
        third failure.

        The one-shot upload (state ``challenged``) counts the attempt here. A live capture
        (``capture_id``, state ``capturing``) counted it when it started; its row is deleted in
        the same transaction. ``detail`` is added to the audit row (no biometric data).
        """
        now = _now(now)
        with self.store.write() as s:
            row = s.get(Enrollment, enrollment_id, with_for_update=True)
            if row is None:
                raise NotFoundError("No such enrollment.")
            if capture_id is None:
                if row.state != S.CHALLENGED:
                    raise StateError(f"The enrollment changed meanwhile (state: {row.state}).")
                row.attempts += 1
            else:
                gone = s.execute(
                    delete(CaptureRow)
                    .where(CaptureRow.id == capture_id, CaptureRow.enrollment_id == row.id)
                    .returning(CaptureRow.id)
                ).all()
                if not gone or row.state != S.CAPTURING:
                    raise CaptureExpiredError()
            ok = live and match
            if ok:
                row.state = transition(row.state, S.VERIFIED)
                row.verified_at, row.reason = now, None
            elif row.attempts >= MAX_LIVENESS_ATTEMPTS:
                row.state, row.finished_at = transition(row.state, S.LOCKED), now
                row.reason = reason or ("no_match" if live else "not_live")
            else:
                row.state = transition(row.state, S.CONSENTED)
                row.reason = reason or ("no_match" if live else "not_live")
            row.challenge_blinks = row.challenge_cues = None
            prefix = f"capture {capture_id}, " if capture_id else ""
            suffix = f" {detail}" if detail else ""
            record(
                s,
                actor="citizen",
                action="liveness",
                outcome="verified" if ok else (row.reason or "failed"),
                enrollment_id=enrollment_id,
                detail=(
                    f"{prefix}attempt {row.attempts}: live={live} blinks={blinks} match={match}"
                    f"{suffix}"
                )[:200],
                now=now,
            )
            return LivenessVerdict(
                live=live,
                blinks=blinks,
                match=match,
                state=S(row.state),
                reason=None if ok else row.reason,
                attempts_left=max(0, MAX_LIVENESS_ATTEMPTS - row.attempts),
            )

    def issue(
        self,
        enrollment_id: str,
        pin_hash: str,
        sign: Signer,
        *,
        now: datetime | None = None,
    ) -> IssuedCard:
        """Issue the card of a verified enrollment; any earlier live card of the citizen is revoked.

        Two concurrent calls give one card: the enrollment row is locked and its state checked,
        and the partial unique index refuses a second live card for the citizen.
        """
        now = _now(now)
        self._step(enrollment_id, now)
        try:
            with self.store.write() as s:
                row = self._locked_row(s, enrollment_id, now)
                if row.purpose == "recover":  # ecard/recovery.py: the existing card's new PIN
                    raise StateError("A recovery sets a new PIN on the existing card.")
                issued = transition(
                    row.state, S.ISSUED, f"The card can be issued only once verified ({row.state})."
                )
                citizen = s.get_one(Citizen, row.citizen_id)
                card = new_card(s, citizen, enrollment_id=row.id, pin_hash=pin_hash, now=now)
                row.state, row.finished_at, row.nonce_hash = issued, now, None
                record(
                    s,
                    actor="citizen",
                    action="issue",
                    outcome="issued",
                    enrollment_id=row.id,
                    card_id=card.id,
                    now=now,
                )
                info = card_info(card, citizen)
                token = sign(CardDraft(**asdict(info), jti=card.jti))
        except IntegrityError:
            raise CardConflictError() from None
        return IssuedCard(info, token)
