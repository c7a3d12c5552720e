"""The audit log and the database-backed guards the tokens package needs.

Audit rows name the actor (``channel:<client_id>``, ``citizen``, ``hospital:<client_id>``), the
action, the outcome and the enrollment or card concerned. They never carry PINs, tokens, frames
or face encodings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ecard.store.db import Store
from ecard.store.models import AttemptRow, AuditEvent, UsedToken


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    outcome: str,
    enrollment_id: str | None = None,
    card_id: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> None:
    """Add one audit row in the caller's transaction."""
    session.add(
        AuditEvent(
            at=now or datetime.now(UTC),
            actor=actor[:80],
            action=action[:40],
            outcome=outcome[:40],
            enrollment_id=enrollment_id,
            card_id=card_id,
            detail=detail[:200] if detail else None,
        )
    )


class DbReplayGuard:
    """Single-use token ids in ``used_tokens``: the primary key makes ``use`` atomic everywhere."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def use(self, jti: str, expires_at: datetime, now: datetime | None = None) -> bool:
        """True the first time ``jti`` is seen; False on every later call (a replay)."""
        now = now or datetime.now(UTC)
        try:
            with self._store.write() as s:
                s.execute(delete(UsedToken).where(UsedToken.expires_at < now - timedelta(hours=1)))
                s.execute(insert(UsedToken).values(jti=jti, used_at=now, expires_at=expires_at))
        except IntegrityError:
            return False
        return True


class DbAttemptCounter:
    """Consecutive failures per key (e.g. ``pin:<card id>``), updated with atomic SQL."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def failures(self, key: str) -> int:
        with self._store.read() as s:
            value = s.scalar(select(AttemptRow.failures).where(AttemptRow.key == key))
        return int(value or 0)

    def fail(self, key: str, now: datetime | None = None) -> int:
        """Count one more failure; returns the new count (exact under concurrency)."""
        now = now or datetime.now(UTC)
        with self._store.write() as s:
            res = s.execute(
                update(AttemptRow)
                .where(AttemptRow.key == key)
                .values(failures=AttemptRow.failures + 1, updated_at=now)
                .returning(AttemptRow.failures)
            ).first()
            if res is not None:
                return int(res[0])
        try:
            with self._store.write() as s:
                s.execute(insert(AttemptRow).values(key=key, failures=1, updated_at=now))
            return 1
        except IntegrityError:  # another request created the row first
            return self.fail(key, now)

    def reset(self, key: str) -> None:
        with self._store.write() as s:
            s.execute(delete(AttemptRow).where(AttemptRow.key == key))
