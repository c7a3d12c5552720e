"""SQLAlchemy models: the service's tables (docs/storage.md says why each constraint exists).

Nothing here stores a PIN, a token, a frame or a live face encoding for longer than one capture:
PINs and secrets are stored as hashes, enrollment tokens and challenge nonces as SHA-256 hashes,
and the only lasting face data is the registry ID-photo template computed once at registration.
A running live capture keeps its analyser state (no pixels) in ``captures`` until it finishes
or expires (seconds), when the row is deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ENROLLMENT_STATES = (
    "authorized",
    "consented",
    "capturing",
    "challenged",
    "verified",
    "issued",
    "expired",
    "failed",
    "locked",
)
CARD_STATUSES = ("active", "suspended", "revoked")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone: stored as naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Citizen(Base):
    """The citizen registry: ID number, name, ID photo and its face template (computed once)."""

    __tablename__ = "citizens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    photo: Mapped[bytes] = mapped_column(LargeBinary)
    template: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Channel(Base):
    """A client of the API: a city-service app or a hospital desk (HTTP Basic credentials)."""

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: SHA-256 hex of the 256-bit random secret (high entropy: no slow hash needed).
    secret_hash: Mapped[str] = mapped_column(String(64))
    #: Comma list of ``enroll``, ``verify``, ``scan``.
    scopes: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Enrollment(Base):
    """One run of the state machine, from channel authorization to an issued card."""

    __tablename__ = "enrollments"
    __table_args__ = (
        CheckConstraint(_in("state", ENROLLMENT_STATES), name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"), index=True)
    #: SHA-256 hex of the bearer enrollment token (the token itself is never stored).
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    agreement_version: Mapped[str | None] = mapped_column(String(16))
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: SHA-256 hex of the current challenge nonce; cleared when used (single use).
    nonce_hash: Mapped[str | None] = mapped_column(String(64))
    nonce_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    challenge_blinks: Mapped[int | None] = mapped_column(Integer)
    #: JSON list of cue times in milliseconds, or null for "N blinks anywhere".
    challenge_cues: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(40))
    #: ``issue`` (a new card) or ``recover`` (a face check for the live card ``card_id``: new
    #: PIN and/or loss report, ecard/recovery.py).
    purpose: Mapped[str] = mapped_column(String(16), default="issue", server_default="issue")
    card_id: Mapped[str | None] = mapped_column(String(32))


class CaptureRow(Base):
    """A running live capture (ecard/capture.py): one per enrollment, deleted at finish or expiry.

    ``plan`` is the secret challenge (JSON; never sent to the client). Times: ``*_arrival_ms``
    are server milliseconds since ``created_at``; ``*_ts`` are the client's frame timestamps
    (ms since its first frame); ``offset_ms`` is the least ``arrival - newest_ts`` seen
    (clock offset plus the fastest upload). ``reveals`` is the JSON list of cue reveal times
    (client ms). ``state`` is the analyser's serialised state (landmarks and measurements,
    no pixels); ``version`` guards it against concurrent batches (optimistic concurrency).
    """

    __tablename__ = "captures"
    __table_args__ = (
        CheckConstraint("next_seq >= 0", name="next_seq"),
        CheckConstraint("frames >= 0", name="frames"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: One capture row per enrollment at a time (a new capture replaces an expired one).
    enrollment_id: Mapped[str] = mapped_column(ForeignKey("enrollments.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    plan: Mapped[str] = mapped_column(Text)
    next_seq: Mapped[int] = mapped_column(Integer, default=0)
    frames: Mapped[int] = mapped_column(Integer, default=0)
    first_ts: Mapped[float | None] = mapped_column(Float)
    first_arrival_ms: Mapped[float | None] = mapped_column(Float)
    first_newest_ts: Mapped[float | None] = mapped_column(Float)
    offset_ms: Mapped[float | None] = mapped_column(Float)
    newest_ts: Mapped[float | None] = mapped_column(Float)
    reveals: Mapped[str] = mapped_column(Text, default="[]")
    state: Mapped[bytes | None] = mapped_column(LargeBinary)
    version: Mapped[int] = mapped_column(Integer, default=0)
    finished: Mapped[bool] = mapped_column(Boolean, default=False)


class Card(Base):
    """An issued e-card. At most one live (active or suspended) card per citizen."""

    __tablename__ = "cards"
    __table_args__ = (
        CheckConstraint(_in("status", CARD_STATUSES), name="status"),
        UniqueConstraint("status_list", "status_idx", name="uq_cards_status_slot"),
        Index(
            "uq_cards_one_live_per_citizen",
            "citizen_id",
            unique=True,
            sqlite_where=text("status <> 'revoked'"),
            postgresql_where=text("status <> 'revoked'"),
        ),
    )

    #: Card id: the token's ``sub`` (not the ID number).
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    card_no: Mapped[str] = mapped_column(String(20), unique=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    enrollment_id: Mapped[str] = mapped_column(ForeignKey("enrollments.id"), unique=True)
    status: Mapped[str] = mapped_column(String(12))
    status_list: Mapped[int] = mapped_column(ForeignKey("status_lists.id"))
    status_idx: Mapped[int] = mapped_column(Integer)
    #: The PIN's slow hash (ecard.tokens.pin); the PIN itself is never stored.
    pin_hash: Mapped[str] = mapped_column(String(200))
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StatusListRow(Base):
    """A Token Status List: its size and the next free index (allocated atomically)."""

    __tablename__ = "status_lists"
    __table_args__ = (CheckConstraint("next_idx <= size", name="capacity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    next_idx: Mapped[int] = mapped_column(Integer, default=0)


class AuditEvent(Base):
    """Every step with actor, time and outcome. Never PINs, tokens, frames or encodings."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(40))
    enrollment_id: Mapped[str | None] = mapped_column(String(32), index=True)
    card_id: Mapped[str | None] = mapped_column(String(32), index=True)
    detail: Mapped[str | None] = mapped_column(String(200))


class UsedToken(Base):
    """Single-use tokens already presented (QR replay guard): the primary key makes it atomic."""

    __tablename__ = "used_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class AttemptRow(Base):
    """Failed-attempt counters (PIN guesses, desk logins) keyed by subject, reserved atomically
    (ecard.store.audit.DbAttemptCounter): consecutive ``failures``, the failures of the window
    that started at ``window_start``, and the earliest time of the next try."""

    __tablename__ = "attempt_counters"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeskScan(Base):
    """A hospital's scan of a card's QR code (ecard/hospital.py): what a settlement confirmation
    must name. ``id`` goes to that hospital only; ``jti`` is the QR token's (spent once)."""

    __tablename__ = "desk_scans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    hospital: Mapped[str] = mapped_column(String(64))
    card_id: Mapped[str] = mapped_column(String(32), index=True)
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
