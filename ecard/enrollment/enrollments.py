"""The enrollment state machine and the card lifecycle, over the store (no Flask here).

::

    authorized -consent-> consented -challenge-> challenged -liveness ok-> verified -PIN-> issued
         |                 ^  |  ^                   |  (failed, attempts left)
         |                 |  |  +-------------------+
         |                 |  +-capture-> capturing -finish ok-> verified
         |                 +-------------------+ (failed or capture expired, attempts left)
         +-> expired (15 min, from any open state)   +-> locked (third failed attempt)
         +-> failed (consent declined)

The one-shot path (``challenge`` + an uploaded clip) counts an attempt when the clip is analysed;
the live capture (``ecard/capture.py``) counts it when the capture starts, so abandoning
captures until a replay gets lucky costs attempts too.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import and_, bindparam, delete, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ecard.citizens import mask_id_number, mask_name, validate_id_number, validate_name
from ecard.errors import (
    AuthError,
    CaptureExpiredError,
    CaptureRunningError,
    CardConflictError,
    CardStateError,
    CitizenNotFoundError,
    EnrollmentExpiredError,
    EnrollmentLockedError,
    NonceError,
    NotFoundError,
    PinLockedError,
    StateError,
    WrongPinError,
)
from ecard.store.audit import record
from ecard.store.db import FastScalar
from ecard.store.models import AuditEvent, CaptureRow, Card, Citizen, Enrollment, StatusListRow

if TYPE_CHECKING:
    from ecard.channels import ChannelIdentity
    from ecard.store import Store
    from ecard.tokens.pin import PinGuard, PinHasher

#: The agreement the citizen accepts; its version is recorded with the consent.
AGREEMENT_VERSION = "2026-11"
#: The agreement in each language the pages offer; one version covers every translation.
AGREEMENT_TEXTS: dict[str, str] = {
    "en": (
        "I ask for an electronic social security card. I agree that ecard compares a short video "
        "of my face with the photo on my ID record to check that I am the holder. The video and "
        "the face measurements taken from it are used only for this check and deleted as soon as "
        "it ends; the service keeps a record of each step (time and result) but no images."
    ),
    "zh-CN": (
        "本人申请电子社会保障卡。本人同意 ecard 将本人面部的短视频与本人身份登记照片进行比对，"
        "以确认本人为持卡人。该视频及从中提取的面部特征仅用于本次核验，核验结束后立即删除；"
        "服务仅保留每一步骤的记录（时间和结果），不保留任何图像。"
    ),
}
AGREEMENT_TEXT = AGREEMENT_TEXTS["en"]
ENROLLMENT_TTL = timedelta(minutes=15)
NONCE_TTL = timedelta(seconds=120)
MAX_LIVENESS_ATTEMPTS = 3
CARD_LIFETIME = timedelta(days=5 * 365)
#: Entries per status list; a new list starts when one is full.
STATUS_LIST_SIZE = 100_000

TERMINAL = frozenset({"issued", "expired", "failed", "locked"})
CardStatus = Literal["active", "suspended", "revoked"]


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
    state: str
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
    state: str
    reason: str | None
    attempts_left: int


@dataclass(frozen=True)
class CardDraft:
    """Everything the signer needs for a new card token (claims are built by ecard.tokens)."""

    card_id: str
    card_no: str
    name: str
    id_number_masked: str
    status_list: int
    status_idx: int
    issued_at: datetime
    expires_at: datetime
    jti: str


@dataclass(frozen=True)
class CardInfo:
    id: str
    card_no: str
    citizen_id: int
    name: str
    id_number_masked: str
    status: str
    status_list: int
    status_idx: int
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class IssuedCard:
    card: CardInfo
    token: str


Signer = Callable[[CardDraft], str]


# --- helpers -----------------------------------------------------------------------------------


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def new_card_no(rng: random.Random | secrets.SystemRandom | None = None) -> str:
    """12 digits: 11 random plus a Luhn check digit (catches one mistyped digit at a desk)."""
    r = rng or secrets.SystemRandom()
    body = [r.randrange(1, 10)] + [r.randrange(10) for _ in range(10)]
    total = 0
    for i, d in enumerate(reversed(body)):
        v = d * 2 if i % 2 == 0 else d
        total += v - 9 if v > 9 else v
    return "".join(map(str, body)) + str((10 - total % 10) % 10)


def random_challenge(rng: random.Random | secrets.SystemRandom) -> tuple[int, tuple[int, ...]]:
    """1-3 blinks cued at unpredictable moments: first 1.2-2.2 s in, then 1.6-2.6 s apart."""
    blinks = rng.randint(1, 3)
    cues: list[int] = []
    t = rng.randint(1200, 2200)
    for _ in range(blinks):
        cues.append(t)
        t += rng.randint(1600, 2600)
    return blinks, tuple(cues)


def _card_info(card: Card, citizen: Citizen) -> CardInfo:
    return CardInfo(
        id=card.id,
        card_no=card.card_no,
        citizen_id=card.citizen_id,
        name=citizen.name,
        id_number_masked=mask_id_number(citizen.id_number),
        status=card.status,
        status_list=card.status_list,
        status_idx=card.status_idx,
        issued_at=card.issued_at,
        expires_at=card.expires_at,
    )


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
                    state="authorized",
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

    def check_token(self, enrollment_id: str, token: str) -> None:
        """401 unless ``token`` is this enrollment's bearer token (unknown ids look the same)."""
        with self.store.read() as s:
            stored = s.scalar(select(Enrollment.token_hash).where(Enrollment.id == enrollment_id))
        if stored is None or not hmac.compare_digest(stored, hash_secret(token)):
            raise AuthError("The enrollment token is not valid for this enrollment.")

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
                if row.state == "capturing"
                else None
            )
            return EnrollmentView(
                id=row.id,
                state=row.state,
                name_masked=mask_name(citizen.name),
                id_number_masked=mask_id_number(citizen.id_number),
                created_at=row.created_at,
                expires_at=row.expires_at,
                attempts_left=max(0, MAX_LIVENESS_ATTEMPTS - row.attempts),
                agreement_version=row.agreement_version,
                consented_at=row.consented_at,
                challenge_blinks=row.challenge_blinks if row.state == "challenged" else None,
                nonce_expires_at=row.nonce_expires_at if row.nonce_hash else None,
                capture_expires_at=capture_expires,
                card_no=card_no,
                reason=row.reason,
                timeline=tuple(TimelineStep(e.at, e.action, e.outcome, e.actor) for e in events),
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
            if row.state == "capturing":
                self.expire_capture_if_due(enrollment_id, now=now)
            return  # the common case: no write transaction needed
        with self.store.write() as s:
            res = s.execute(
                update(Enrollment)
                .where(
                    Enrollment.id == enrollment_id,
                    Enrollment.expires_at <= now,
                    Enrollment.state.not_in(TERMINAL),
                )
                .values(state="expired", finished_at=now, nonce_hash=None, reason="timeout")
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
        if row.state == "capturing":
            raise CaptureRunningError()
        if row.state not in ("consented", "challenged"):
            raise StateError(f"A capture is not possible in state {row.state}.")
        if row.attempts >= MAX_LIVENESS_ATTEMPTS:
            raise EnrollmentLockedError()
        row.attempts += 1
        row.state, row.reason = "capturing", None
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
            if row.state == "capturing":
                if row.attempts >= MAX_LIVENESS_ATTEMPTS:
                    row.state, row.finished_at = "locked", now
                else:
                    row.state = "consented"
                row.reason = "capture_expired"
            for (capture_id,) in gone:
                record(
                    s,
                    actor="system",
                    action="capture_expire",
                    outcome="locked" if row.state == "locked" else "expired",
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
        if row.state == "expired" or (row.state not in TERMINAL and row.expires_at <= now):
            raise EnrollmentExpiredError()
        if row.state == "locked":
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
    ) -> str:
        """Record the consent with the agreement version and time; returns the new state.

        Declining (``agree`` False) ends the enrollment: state ``failed``, reason
        ``consent_declined`` (the channel sees it; a new enrollment can start any time).
        """
        now = _now(now)
        self._step(enrollment_id, now)
        if not agree:
            with self.store.write() as s:
                row = self._locked_row(s, enrollment_id, now)
                if row.state != "authorized":
                    raise StateError(f"Consent was already given (state: {row.state}).")
                row.state, row.reason, row.finished_at = "failed", "consent_declined", now
                record(
                    s,
                    actor="citizen",
                    action="consent",
                    outcome="declined",
                    enrollment_id=enrollment_id,
                    detail=f"agreement {AGREEMENT_VERSION}",
                    now=now,
                )
            return "failed"
        if agreement_version is not None and agreement_version != AGREEMENT_VERSION:
            raise StateError(
                f"The agreement has changed (now version {AGREEMENT_VERSION}); read it again."
            )
        with self.store.write() as s:
            row = self._locked_row(s, enrollment_id, now)
            if row.state != "authorized":
                raise StateError(f"Consent was already given (state: {row.state}).")
            row.state = "consented"
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
        return "consented"

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
            if row.state == "capturing":
                raise CaptureRunningError()
            if row.state not in ("consented", "challenged"):
                raise StateError(f"A challenge is not possible in state {row.state}.")
            row.state = "challenged"
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

    def ensure_state(self, enrollment_id: str, state: str, *, now: datetime | None = None) -> None:
        """Cheap check before a heavy upload is parsed: 409/410/423 when not in ``state``."""
        now = _now(now)
        self._step(enrollment_id, now)
        with self.store.read() as s:
            row = s.get(Enrollment, enrollment_id)
        if row is None:
            raise NotFoundError("No such enrollment.")
        if row.state == "locked":
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
            if row.state != "challenged":
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
                if row.state != "challenged":
                    raise StateError(f"The enrollment changed meanwhile (state: {row.state}).")
                row.attempts += 1
            else:
                gone = s.execute(
                    delete(CaptureRow)
                    .where(CaptureRow.id == capture_id, CaptureRow.enrollment_id == row.id)
                    .returning(CaptureRow.id)
                ).all()
                if not gone or row.state != "capturing":
                    raise CaptureExpiredError()
            ok = live and match
            if ok:
                row.state, row.verified_at, row.reason = "verified", now, None
            elif row.attempts >= MAX_LIVENESS_ATTEMPTS:
                row.state, row.finished_at = "locked", now
                row.reason = reason or ("no_match" if live else "not_live")
            else:
                row.state = "consented"
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
                state=row.state,
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
                if row.state != "verified":
                    raise StateError(f"The card can be issued only once verified ({row.state}).")
                citizen = s.get_one(Citizen, row.citizen_id)
                revoked = s.execute(
                    update(Card)
                    .where(Card.citizen_id == citizen.id, Card.status != "revoked")
                    .values(status="revoked", changed_at=now)
                    .returning(Card.id)
                ).all()
                list_id, idx = _allocate_status_slot(s)
                card = Card(
                    id=secrets.token_hex(16),
                    card_no=new_card_no(),
                    citizen_id=citizen.id,
                    enrollment_id=row.id,
                    status="active",
                    status_list=list_id,
                    status_idx=idx,
                    pin_hash=pin_hash,
                    jti=secrets.token_hex(16),
                    issued_at=now,
                    expires_at=now + CARD_LIFETIME,
                    changed_at=now,
                )
                s.add(card)
                row.state, row.finished_at, row.nonce_hash = "issued", now, None
                s.flush()
                for (old_id,) in revoked:
                    record(
                        s,
                        actor="system",
                        action="revoke",
                        outcome="revoked",
                        card_id=old_id,
                        enrollment_id=row.id,
                        detail="reissued",
                        now=now,
                    )
                record(
                    s,
                    actor="citizen",
                    action="issue",
                    outcome="issued",
                    enrollment_id=row.id,
                    card_id=card.id,
                    now=now,
                )
                info = _card_info(card, citizen)
                token = sign(
                    CardDraft(
                        card_id=card.id,
                        card_no=card.card_no,
                        name=citizen.name,
                        id_number_masked=info.id_number_masked,
                        status_list=list_id,
                        status_idx=idx,
                        issued_at=now,
                        expires_at=card.expires_at,
                        jti=card.jti,
                    )
                )
        except IntegrityError:
            raise CardConflictError() from None
        return IssuedCard(info, token)


def _allocate_status_slot(s: Session) -> tuple[int, int]:
    """The next free (list, index), allocated with one atomic UPDATE ... RETURNING."""
    while True:
        got = s.execute(
            update(StatusListRow)
            .where(
                StatusListRow.id
                == select(StatusListRow.id)
                .where(StatusListRow.next_idx < StatusListRow.size)
                .order_by(StatusListRow.id)
                .limit(1)
                .scalar_subquery()
            )
            .values(next_idx=StatusListRow.next_idx + 1)
            .returning(StatusListRow.id, StatusListRow.next_idx)
        ).first()
        if got is not None:
            return int(got[0]), int(got[1]) - 1
        s.add(StatusListRow(size=STATUS_LIST_SIZE, next_idx=0))
        s.flush()


# --- cards -------------------------------------------------------------------------------------

#: Compiled status queries per engine (see :class:`~ecard.store.db.FastScalar`).
_STATUS_QUERIES: dict[int, FastScalar] = {}


class Cards:
    """The card lifecycle after issuance: lookup, PIN checks with lockout, suspend, status list."""

    def __init__(self, store: Store, guard: PinGuard, hasher: PinHasher) -> None:
        self.store = store
        self.guard = guard
        self.hasher = hasher

    def get(self, card_id: str) -> CardInfo:
        with self.store.read() as s:
            card = s.get(Card, card_id)
            if card is None:
                raise NotFoundError("No such card.")
            return _card_info(card, s.get_one(Citizen, card.citizen_id))

    def status_of(self, card_id: str) -> str | None:
        """The card's current status (one indexed read, no caching), or None if unknown."""
        query = _STATUS_QUERIES.get(id(self.store.engine))
        if query is None:
            stmt = select(Card.status).where(Card.id == bindparam("card_id"))
            query = _STATUS_QUERIES.setdefault(
                id(self.store.engine), FastScalar(self.store.engine, stmt)
            )
        value = query(card_id=card_id)
        return None if value is None else str(value)

    def by_number(self, card_no: str) -> CardInfo:
        with self.store.read() as s:
            card = s.scalars(select(Card).where(Card.card_no == card_no)).first()
            if card is None:
                raise NotFoundError("No such card.")
            return _card_info(card, s.get_one(Citizen, card.citizen_id))

    def check_pin(
        self,
        card_id: str,
        pin: str,
        *,
        actor: str = "citizen",
        action: str = "pin_check",
        now: datetime | None = None,
    ) -> None:
        """Check the card's PIN with the 6-try lockout (:class:`ecard.tokens.pin.PinGuard`).

        A try is reserved (counted atomically in the database) before the slow hash comparison,
        so N parallel guesses never test more than six PINs; a right PIN clears the count. After
        the sixth wrong PIN the card refuses every PIN (a fresh enrollment reissues it).
        """
        with self.store.read() as s:
            pin_hash = s.scalar(select(Card.pin_hash).where(Card.id == card_id))
        if pin_hash is None:
            raise NotFoundError("No such card.")
        try:
            self.guard.check(f"pin:{card_id}", lambda: self.hasher.verify(pin, pin_hash))
        except (WrongPinError, PinLockedError) as exc:
            self._audit(actor, action, exc.code, card_id, _now(now))
            raise

    def set_status(
        self,
        card_id: str,
        status: CardStatus,
        *,
        actor: str,
        allowed_from: Sequence[str] = ("active",),
        now: datetime | None = None,
    ) -> CardInfo:
        now = _now(now)
        with self.store.write() as s:
            card = s.get(Card, card_id, with_for_update=True)
            if card is None:
                raise NotFoundError("No such card.")
            if card.status not in allowed_from:
                raise CardStateError(f"The card is {card.status}.")
            card.status, card.changed_at = status, now
            record(
                s, actor=actor, action=f"card_{status}", outcome=status, card_id=card_id, now=now
            )
            s.flush()
            return _card_info(card, s.get_one(Citizen, card.citizen_id))

    def rotate_jti(self, card_id: str) -> str:
        jti = secrets.token_hex(16)
        with self.store.write() as s:
            s.execute(update(Card).where(Card.id == card_id).values(jti=jti))
        return jti

    def status_entries(self, list_id: int) -> tuple[int, dict[int, str]]:
        """(size, {index: status}) of one status list; 404 when it does not exist."""
        with self.store.read() as s:
            lst = s.get(StatusListRow, list_id)
            if lst is None:
                raise NotFoundError("No such status list.")
            rows = s.execute(
                select(Card.status_idx, Card.status).where(Card.status_list == list_id)
            ).all()
        return lst.size, {int(i): str(st) for i, st in rows}

    def audit(self, actor: str, action: str, outcome: str, card_id: str | None) -> None:
        self._audit(actor, action, outcome, card_id, _now(None))

    def _audit(
        self, actor: str, action: str, outcome: str, card_id: str | None, now: datetime
    ) -> None:
        with self.store.write() as s:
            record(s, actor=actor, action=action, outcome=outcome, card_id=card_id, now=now)
