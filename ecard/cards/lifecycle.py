"""The card lifecycle after issuance: lookup, PIN checks with lockout, suspend, status list."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select, update

from ecard.cards.status import CardStatus
from ecard.cards.values import CardInfo, card_info
from ecard.errors import (
    CardStateError,
    NotFoundError,
    PinLockedError,
    PinWaitError,
    TokenError,
    TokenSupersededError,
    WrongPinError,
)
from ecard.store.audit import record
from ecard.store.models import Card, Citizen, StatusListRow

if TYPE_CHECKING:
    from ecard.store import Store
    from ecard.tokens.pin import PinGuard, PinHasher


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def pin_key(card_id: str) -> str:
    """The lockout counter key of a card's PIN."""
    return f"pin:{card_id}"


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
            return card_info(card, s.get_one(Citizen, card.citizen_id))

    def status_of(self, card_id: str) -> str | None:
        """The card's current status (one indexed read, no caching), or None if unknown."""
        query = self.store.fast_scalar(
            "card_status", lambda: select(Card.status).where(Card.id == bindparam("card_id"))
        )
        value = query(card_id=card_id)
        return None if value is None else str(value)

    def by_number(self, card_no: str) -> CardInfo:
        with self.store.read() as s:
            card = s.scalars(select(Card).where(Card.card_no == card_no)).first()
            if card is None:
                raise NotFoundError("No such card.")
            return card_info(card, s.get_one(Citizen, card.citizen_id))

    def check_pin(
        self,
        card_id: str,
        pin: object,
        *,
        actor: str = "citizen",
        action: str = "pin_check",
        now: datetime | None = None,
    ) -> None:
        """Check the card's PIN with the card's lockout (:class:`ecard.tokens.pin.PinGuard`).

        A try is reserved (counted atomically in the database) before the slow hash comparison,
        so N parallel guesses never test more PINs than the policy allows; a right PIN clears
        the count. Wrong PINs cost a growing wait (``pin_wait``), never a permanent lock from a
        stranger: after 100 consecutive wrong PINs (``pin_locked``) only the holder's new PIN,
        set after a fresh face check (:meth:`reset_pin`), opens it again. Refusals are audited.
        """
        with self.store.read() as s:
            pin_hash = s.scalar(select(Card.pin_hash).where(Card.id == card_id))
        if pin_hash is None:
            raise NotFoundError("No such card.")
        try:
            self.guard.check(pin_key(card_id), lambda: self.hasher.verify(pin, pin_hash), now=now)
        except (WrongPinError, PinWaitError, PinLockedError) as exc:
            self._audit(actor, action, exc.code, card_id, _now(now))
            raise

    def login(
        self, card_no: str, pin: object, *, action: str = "login", now: datetime | None = None
    ) -> CardInfo:
        """The card of ``card_no`` once its PIN is right (:meth:`check_pin`).

        An unknown number answers exactly as a known card with a wrong PIN: the same error,
        the same growing waits (its own counter, keyed by the number) and the same hash cost,
        so the unauthenticated login does not tell which card numbers exist.
        """
        try:
            card = self.by_number(card_no)
        except NotFoundError:
            decoy = self.hasher.decoy_hash()
            self.guard.check(
                f"pin:no:{card_no}", lambda: self.hasher.verify(pin, decoy) and False, now=now
            )
            raise AssertionError("unreachable: the guard refuses a wrong PIN") from None
        self.check_pin(card.id, pin, action=action, now=now)
        self._audit("citizen", action, "opened", card.id, _now(now))  # the holder's timeline
        return card

    def current(self, card_id: str, jti: str) -> CardInfo:
        """The card of a card token whose ``jti`` is still the card's current one.

        Holder routes call this: once :meth:`rotate_jti` (``/cards/login``) or :meth:`reset_pin`
        gave out a new token, the older ones answer 401 ``token_superseded``. Unknown cards
        answer 401 ``token_invalid``.
        """
        with self.store.read() as s:
            card = s.get(Card, card_id)
            if card is None:
                raise TokenError("The card is not known to this service.")
            if not hmac.compare_digest(card.jti.encode(), jti.encode()):
                raise TokenSupersededError()
            return card_info(card, s.get_one(Citizen, card.citizen_id))

    def suspend(
        self, card_id: str, *, actor: str, detail: str | None = None, now: datetime | None = None
    ) -> CardInfo:
        """Report a loss: the card is suspended and the status list says so at once. A card
        already suspended stays so (a second report is not an error); a revoked one is 409.
        ``detail`` (how it was reported; no personal data) goes to the audit row."""
        now = _now(now)
        current = self.get(card_id)
        if current.status == CardStatus.SUSPENDED:
            return current
        info = self.set_status(card_id, CardStatus.SUSPENDED, actor=actor, now=now)
        if detail:
            self._audit(actor, "loss_report", detail[:40], card_id, now)
        return info

    def reset_pin(
        self, card_id: str, pin_hash: str, *, actor: str, now: datetime | None = None
    ) -> str:
        """A new PIN (its hash) after a fresh face check: the lockout is cleared and the card's
        ``jti`` rotated (tokens given out before stop working on holder routes). Returns the
        new ``jti``."""
        now = _now(now)
        jti = secrets.token_hex(16)
        with self.store.write() as s:
            done = s.execute(
                update(Card)
                .where(Card.id == card_id, Card.status != "revoked")
                .values(pin_hash=pin_hash, jti=jti, changed_at=now)
                .returning(Card.id)
            ).first()
            if done is None:
                raise CardStateError("This card was replaced; it has no PIN to reset.")
            record(s, actor=actor, action="pin_reset", outcome="reset", card_id=card_id, now=now)
        self.guard.reset(pin_key(card_id))
        return jti

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
            card.status, card.changed_at = CardStatus(status), now
            record(
                s, actor=actor, action=f"card_{status}", outcome=status, card_id=card_id, now=now
            )
            s.flush()
            return card_info(card, s.get_one(Citizen, card.citizen_id))

    def rotate_jti(self, card_id: str) -> str:
        """A new current ``jti`` for a freshly signed card token (``/cards/login``): the
        previous tokens of the card stop working on holder routes (:meth:`current`)."""
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
