"""The holder's ways out: a new PIN and a loss report after a fresh face check, or a loss report
by the channel on behalf of its authenticated user (finding 2 of issue 11; no Flask here).

A *recovery* is an enrollment with ``purpose = "recover"`` bound to the holder's live card
(``card_id``). It runs the same steps as any enrollment, with the same limits (15 minutes, three
liveness attempts, the live capture protocol and the match against the registry photo):
``consent`` -> live capture -> ``verified``. Once verified, and until it ends, the holder may

* report the loss (:meth:`Recoveries.report_loss`): the card is suspended at once, whatever
  the state of its PIN (wrong PINs, waits or the 100-failure block never stand in the way);
* set a new PIN (:meth:`Recoveries.new_pin`): the PIN policy applies, the lockout is cleared,
  the card's ``jti`` is rotated (older card tokens stop working on holder routes) and a fresh
  card token is returned; this ends the recovery (state ``issued``).

A recovery starts from the holder's card token (:meth:`Recoveries.start_for_holder`, no PIN
needed: the face check is the proof) or from the channel (:meth:`Recoveries.start_for_channel`,
like an enrollment: ID number and name of its authenticated user), so a holder who lost the
phone starts it from the channel's app on any device. The channel may also report the loss
itself (:meth:`Recoveries.suspend_for_channel`): card number plus the holder's ID number, which
the channel knows of its authenticated user; an unknown card and a card of someone else get
the same 404. Everything is audited (actor, action, outcome; never a PIN or a token).

A recovery cannot issue a new card (:meth:`ecard.enrollment.Enrollments.issue` refuses it):
it acts on the existing card only.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from ecard.citizens import validate_id_number, validate_name
from ecard.enrollment import ENROLLMENT_TTL, Authorized, Enrollments, hash_secret
from ecard.enrollment.state import EnrollmentState, transition
from ecard.errors import CitizenNotFoundError, NotFoundError, RateLimitedError, StateError
from ecard.store.audit import record
from ecard.store.models import Card, Citizen, Enrollment

if TYPE_CHECKING:
    from ecard.cards import CardInfo, Cards
    from ecard.channels import ChannelIdentity
    from ecard.store import Store
    from ecard.tokens.pin import PinHasher

PURPOSE = "recover"
#: Recoveries one card may start in any 24 hours (each allows 3 face-check attempts): a stolen
#: phone cannot try the matcher without end.
RECOVERIES_PER_DAY = 3


@dataclass(frozen=True)
class NewPin:
    """A new PIN set: the card as it is now and the ``jti`` its fresh token must carry."""

    card: CardInfo
    jti: str


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


class Recoveries:
    """Recovery enrollments over the store, acting on the cards through :class:`Cards`."""

    def __init__(self, store: Store, cards: Cards) -> None:
        self.store = store
        self.cards = cards
        self.enrollments = Enrollments(store)

    # -- start ------------------------------------------------------------------------------------

    def start_for_holder(self, card_id: str, *, now: datetime | None = None) -> Authorized:
        """A recovery for the card of a (current) card token: no PIN needed."""
        now = _now(now)
        with self.store.read() as s:
            row = s.execute(
                select(Card.citizen_id, Card.status, Enrollment.channel_id)
                .join(Enrollment, Enrollment.id == Card.enrollment_id)
                .where(Card.id == card_id)
            ).first()
        if row is None or row.status == "revoked":
            raise StateError("This card was replaced; it cannot be recovered.")
        return self._insert(row.citizen_id, card_id, row.channel_id, actor="citizen", now=now)

    def start_for_channel(
        self, channel: ChannelIdentity, id_number: str, name: str, *, now: datetime | None = None
    ) -> Authorized:
        """A recovery the channel starts for its authenticated user (as an enrollment)."""
        now = _now(now)
        number = validate_id_number(id_number)
        clean = validate_name(name)
        with self.store.read() as s:
            citizen = s.scalars(select(Citizen).where(Citizen.id_number == number)).first()
            if citizen is None or not hmac.compare_digest(
                citizen.name.casefold().encode(), clean.casefold().encode()
            ):
                raise CitizenNotFoundError()
            card_id = s.scalar(
                select(Card.id).where(Card.citizen_id == citizen.id, Card.status != "revoked")
            )
            citizen_id = citizen.id
        if card_id is None:
            raise NotFoundError("This citizen holds no card to recover; enroll instead.")
        return self._insert(
            citizen_id, str(card_id), channel.id, actor=f"channel:{channel.client_id}", now=now
        )

    def _insert(
        self, citizen_id: int, card_id: str, channel_id: int, *, actor: str, now: datetime
    ) -> Authorized:
        token = secrets.token_urlsafe(32)
        eid = secrets.token_hex(12)
        with self.store.write() as s:
            s.get(Card, card_id, with_for_update=True)  # one recovery start per card at a time
            recent = s.scalar(
                select(func.count())
                .select_from(Enrollment)
                .where(
                    Enrollment.card_id == card_id,
                    Enrollment.purpose == PURPOSE,
                    Enrollment.created_at > now - timedelta(days=1),
                )
            )
            if int(recent or 0) >= RECOVERIES_PER_DAY:
                raise RateLimitedError(
                    f"At most {RECOVERIES_PER_DAY} face checks a day for one card; try tomorrow."
                )
            s.add(
                Enrollment(
                    id=eid,
                    citizen_id=citizen_id,
                    channel_id=channel_id,
                    token_hash=hash_secret(token),
                    state=EnrollmentState.AUTHORIZED,
                    created_at=now,
                    expires_at=now + ENROLLMENT_TTL,
                    attempts=0,
                    purpose=PURPOSE,
                    card_id=card_id,
                )
            )
            s.flush()
            record(
                s,
                actor=actor,
                action="authorize",
                outcome="authorized",
                enrollment_id=eid,
                card_id=card_id,
                detail="recovery",
                now=now,
            )
        return Authorized(eid, token, now + ENROLLMENT_TTL)

    # -- after the face check ----------------------------------------------------------------------

    def _verified_card(self, enrollment_id: str, now: datetime, *, end: bool) -> str:
        """The card of a verified recovery (404/410/423/409 otherwise); ``end``: move the
        recovery to ``issued`` in the same transaction."""
        self.enrollments.expire_if_due(enrollment_id, now=now)
        with self.store.write() as s:
            row = self.enrollments.lock(s, enrollment_id, now)
            if row.purpose != PURPOSE or row.card_id is None:
                raise StateError("This enrollment is not a recovery.")
            if row.state != EnrollmentState.VERIFIED:
                raise StateError(f"The face check comes first (state: {row.state}).")
            if end:
                row.state = transition(row.state, EnrollmentState.ISSUED)
                row.finished_at, row.nonce_hash = now, None
            return row.card_id

    def report_loss(self, enrollment_id: str, *, now: datetime | None = None) -> CardInfo:
        """Suspend the card of a verified recovery (no PIN). A second report changes nothing."""
        now = _now(now)
        card_id = self._verified_card(enrollment_id, now, end=False)
        return self.cards.suspend(card_id, actor="citizen", detail="face_check", now=now)

    def new_pin(
        self, enrollment_id: str, pin: str, hasher: PinHasher, *, now: datetime | None = None
    ) -> NewPin:
        """Set a new PIN on the card of a verified recovery; the recovery ends."""
        from ecard.tokens.pin import check_pin_policy

        now = _now(now)
        check_pin_policy(pin, id_number=self.enrollments.id_number_of(enrollment_id))
        pin_hash = hasher.hash(pin)
        card_id = self._verified_card(enrollment_id, now, end=True)
        jti = self.cards.reset_pin(card_id, pin_hash, actor="citizen", now=now)
        return NewPin(self.cards.get(card_id), jti)

    # -- the channel on behalf of its user -------------------------------------------------------

    def suspend_for_channel(
        self, channel: ChannelIdentity, card_no: str, id_number: str, *, now: datetime | None = None
    ) -> CardInfo:
        """The channel reports the loss for its authenticated user (``id_number``). An unknown
        card number and another person's card both answer 404."""
        now = _now(now)
        with self.store.read() as s:
            row = s.execute(
                select(Card.id, Citizen.id_number)
                .join(Citizen, Citizen.id == Card.citizen_id)
                .where(Card.card_no == card_no.strip())
            ).first()
        given = id_number.strip().upper().encode()
        if row is None or not hmac.compare_digest(str(row.id_number).upper().encode(), given):
            raise NotFoundError("No such card for this citizen.")
        return self.cards.suspend(
            str(row.id), actor=f"channel:{channel.client_id}", detail="channel", now=now
        )
