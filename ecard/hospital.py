"""The hospital desk: scan a patient's QR code, then confirm the settlement with their PIN.

One domain function each, called by the API (``POST /api/v1/scan``, ``/api/v1/scan/confirm``,
HTTP Basic hospital credentials) and by the desk pages (``/hospital/scan``,
``/hospital/confirm``, desk session): no Flask here.

A confirmation is bound to a scan (finding 3 of issue 11). :meth:`HospitalDesk.scan` verifies
the QR token, spends its ``jti`` once and records the scan in ``desk_scans``: a random
``scan_id`` (given to that hospital only), the QR ``jti``, the hospital, the card and the time.
:meth:`HospitalDesk.confirm` takes that ``scan_id`` and the PIN: it checks the PIN only when
the scan exists, was made by the same hospital less than :data:`SCAN_WINDOW` ago and was not
confirmed yet. Anything else (no scan, another hospital's scan, an expired or used one, or a
card number that does not exist) answers the same 409 ``scan_required``, so the desk routes
cannot be used to learn whether a card number exists or to guess PINs for cards never
presented. A confirmed scan is spent (one settlement per scan).

What a scan answer tells the clerk: the QR code's remaining validity (``expires_in``) only
for a valid code; for any card of ours the masked ID number (:func:`desk_mask`, first four and
last four digits) with the birth date (:func:`birth_date`, digits 7-14), so the clerk can
cross-check the patient's document; the two together still hide the district digits 5-6, and
the full number is never sent. For a replayed code: when it was first used (``used_at``) and
whether at this hospital (``used_by`` ``"this_desk"``) or elsewhere (``"other_desk"``): the
name of another hospital is never told (where a patient was treated is theirs to tell).

Time is a parameter (``now``); the window is a constructor argument.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from ecard.errors import NotFoundError, ScanRequiredError, TokenError, TokenReplayedError
from ecard.store.models import Citizen, DeskScan, UsedToken

if TYPE_CHECKING:
    from ecard.cards import CardInfo, Cards
    from ecard.store import Store
    from ecard.tokens.keys import KeyStore
    from ecard.tokens.qr import ReplayGuard

#: How long after a scan its confirmation is accepted (the patient types the PIN at once).
SCAN_WINDOW = timedelta(minutes=3)
#: The longest scan id accepted (ids are 24 hex characters).
SCAN_ID_MAX = 64


@dataclass(frozen=True)
class ScanResult:
    """The answer to a scan. ``valid`` only for a genuine, unused QR code of an active card;
    ``scan_id`` is what the confirmation must name until ``confirm_by`` (None when there is
    nothing to confirm); ``card`` is the card the code names, when it is one of ours."""

    valid: bool
    error: str | None = None
    message: str | None = None
    card: CardInfo | None = None
    scan_id: str | None = None
    confirm_by: datetime | None = None
    #: seconds the QR code itself stays valid (valid codes only)
    expires_in: int | None = None
    #: the ID number for the desk (:func:`desk_mask`) and the birth date in it
    id_number_masked: str | None = None
    birth_date: date | None = None
    #: a replayed code: when it was first used and by whom (``this_desk`` / ``other_desk``)
    used_at: datetime | None = None
    used_by: str | None = None


@dataclass(frozen=True)
class Confirmation:
    confirmed: bool
    card_no: str
    status: str
    name: str | None = None


def birth_date(id_number: str) -> date | None:
    """The birth date in an 18-digit ID number (``YYYYMMDD`` at digits 7-14), or None."""
    try:
        return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None


def desk_mask(id_number: str) -> str:
    """``1101**********002X``: the first and last four digits, for the desk (the birth date is
    shown beside it, so the region's district digits stay hidden as well)."""
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]


class HospitalDesk:
    """Scan and confirm for one hospital desk or API client (``hospital`` is its client id)."""

    def __init__(
        self,
        store: Store,
        cards: Cards,
        keys: KeyStore,
        *,
        issuer: str,
        replay: ReplayGuard,
        window: timedelta = SCAN_WINDOW,
    ) -> None:
        self.store = store
        self.cards = cards
        self.keys = keys
        self.issuer = issuer
        self.replay = replay
        self.window = window

    def scan(self, hospital: str, qr_text: str, *, now: datetime | None = None) -> ScanResult:
        """Verify ``qr_text`` once (a second scan is ``replayed``) and record the scan."""
        from ecard.tokens.qr import verify_qr

        now = now or datetime.now(UTC)
        actor = f"hospital:{hospital}"
        try:
            qr = verify_qr(
                qr_text,
                self.keys,
                issuer=self.issuer,
                replay_guard=self.replay,
                now=now,
            )
        except TokenReplayedError as exc:
            self.cards.audit(actor, "scan", "replayed", None)
            used_at, used_by = self._first_use(hospital, qr_text, now)
            return ScanResult(
                False, exc.code, "This QR code was already used.", used_at=used_at, used_by=used_by
            )
        except TokenError as exc:
            return ScanResult(False, exc.code, exc.message)
        try:
            card = self.cards.by_number(qr.card_no)
        except NotFoundError:
            return ScanResult(False, "unknown_card", "This card was not issued here.")
        with self.store.read() as s:
            id_number = s.scalar(select(Citizen.id_number).where(Citizen.id == card.citizen_id))
        self.cards.audit(actor, "scan", card.status, card.id)
        scan_id = None
        confirm_by = None
        if card.status == "active":
            scan_id, confirm_by = secrets.token_hex(12), now + self.window
            with self.store.write() as s:
                s.execute(delete(DeskScan).where(DeskScan.expires_at < now - timedelta(hours=1)))
                s.add(
                    DeskScan(
                        id=scan_id,
                        jti=qr.jti,
                        hospital=hospital,
                        card_id=card.id,
                        scanned_at=now,
                        expires_at=confirm_by,
                    )
                )
        active = card.status == "active"
        return ScanResult(
            valid=active,
            error=None if active else f"card_{card.status}",
            message=None if active else f"The card is {card.status}.",
            card=card,
            scan_id=scan_id,
            confirm_by=confirm_by,
            expires_in=max(0, qr.expires_at - int(now.timestamp())) if active else None,
            id_number_masked=desk_mask(id_number) if id_number else None,
            birth_date=birth_date(id_number) if id_number else None,
        )

    def _first_use(
        self, hospital: str, qr_text: str, now: datetime
    ) -> tuple[datetime | None, str | None]:
        """When a replayed code was first used, and whether by ``hospital``: its desk scan
        (valid scans), else the replay guard's record (time only). The code was verified
        already; it is read again without the guard only to learn its ``jti``."""
        from ecard.tokens.qr import verify_qr

        try:
            jti = verify_qr(qr_text, self.keys, issuer=self.issuer, replay_guard=None, now=now).jti
        except TokenError:
            return None, None
        with self.store.read() as s:
            row = s.execute(
                select(DeskScan.scanned_at, DeskScan.hospital).where(DeskScan.jti == jti)
            ).first()
            if row is not None:
                return row.scanned_at, "this_desk" if row.hospital == hospital else "other_desk"
            used = s.scalar(select(UsedToken.used_at).where(UsedToken.jti == jti))
        return used, None

    def confirm(
        self, hospital: str, scan_id: str | None, pin: object, *, now: datetime | None = None
    ) -> Confirmation:
        """Settlement: the PIN of the card this hospital scanned as ``scan_id``.

        Raises ``scan_required`` (409, one answer for every reason) unless the scan is this
        hospital's, recent and unconfirmed; then the PIN is checked with the card's lockout
        (``wrong_pin`` / ``pin_wait`` / ``pin_locked``; a wrong PIN keeps the scan).
        """
        now = now or datetime.now(UTC)
        actor = f"hospital:{hospital}"
        card_id = self._open_scan(hospital, scan_id, now)
        self.cards.check_pin(card_id, pin, actor=actor, action="confirm", now=now)
        card = self.cards.get(card_id)
        if card.status != "active":
            return Confirmation(False, card.card_no, card.status)
        with self.store.write() as s:
            spent = s.execute(
                update(DeskScan)
                .where(DeskScan.id == scan_id, DeskScan.confirmed_at.is_(None))
                .values(confirmed_at=now)
                .returning(DeskScan.id)
            ).first()
        if spent is None:  # a concurrent confirmation of the same scan won
            raise ScanRequiredError()
        self.cards.audit(actor, "confirm", "confirmed", card.id)
        return Confirmation(True, card.card_no, card.status, card.name)

    def _open_scan(self, hospital: str, scan_id: str | None, now: datetime) -> str:
        if not isinstance(scan_id, str) or not scan_id or len(scan_id) > SCAN_ID_MAX:
            raise ScanRequiredError()
        with self.store.read() as s:
            card_id = s.scalar(
                select(DeskScan.card_id).where(
                    DeskScan.id == scan_id,
                    DeskScan.hospital == hospital,
                    DeskScan.confirmed_at.is_(None),
                    DeskScan.expires_at > now,
                )
            )
        if card_id is None:
            raise ScanRequiredError()
        return str(card_id)
