"""The card lifecycle after issuance: lookup, PIN checks with lockout, suspend, status list."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select, update

from ecard.cards.status import CardStatus
from ecard.cards.values import CardInfo, card_info
from ecard.errors import CardStateError, NotFoundError, PinLockedError, WrongPinError
from ecard.store.audit import record
from ecard.store.db import FastScalar
from ecard.store.models import Card, Citizen, StatusListRow

if TYPE_CHECKING:
    from ecard.store import Store
    from ecard.tokens.pin import PinGuard, PinHasher


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


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
            return card_info(card, s.get_one(Citizen, card.citizen_id))

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
            return card_info(card, s.get_one(Citizen, card.citizen_id))

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
            card.status, card.changed_at = CardStatus(status), now
            record(
                s, actor=actor, action=f"card_{status}", outcome=status, card_id=card_id, now=now
            )
            s.flush()
            return card_info(card, s.get_one(Citizen, card.citizen_id))

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
