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

Time is a parameter (``now``); the window is a constructor argument.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from ecard.errors import NotFoundError, ScanRequiredError, TokenError, TokenReplayedError
from ecard.store.models import DeskScan

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
    #: seconds the QR code itself stays valid
    expires_in: int | None = None


@dataclass(frozen=True)
class Confirmation:
    confirmed: bool
    card_no: str
    status: str
    name: str | None = None


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
            return ScanResult(False, exc.code, "This QR code was already used.")
        except TokenError as exc:
            return ScanResult(False, exc.code, exc.message)
        try:
            card = self.cards.by_number(qr.card_no)
        except NotFoundError:
            return ScanResult(False, "unknown_card", "This card was not issued here.")
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
            expires_in=max(0, qr.expires_at - int(now.timestamp())),
        )

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
