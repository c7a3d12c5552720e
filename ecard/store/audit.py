"""The audit log and the database-backed guards the tokens package needs.

Audit rows name the actor (``channel:<client_id>``, ``citizen``, ``hospital:<client_id>``), the
action, the outcome and the enrollment or card concerned. They never carry PINs, tokens, frames
or face encodings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, delete, insert, literal, null, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ecard.store.db import Store
from ecard.store.models import AttemptRow, AuditEvent, UsedToken, UTCDateTime

if TYPE_CHECKING:
    from ecard.tokens.pin import LockoutPolicy, Reservation


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
    """Failed tries per key (e.g. ``pin:<card id>``), reserved with one atomic SQL statement.

    :meth:`reserve` is ``UPDATE attempt_counters SET <one more failure, the window, the next
    allowed time> WHERE key = :key AND <the policy allows a try now> RETURNING ...``: the
    database row lock orders concurrent tries (SQLite: the write lock of ``BEGIN IMMEDIATE``;
    PostgreSQL: the row lock of the UPDATE, the WHERE re-evaluated on the newest row), so no
    two tries can both see the last free slot. The first failure of a key inserts its row (a
    concurrent insert loses on the primary key and retries as an UPDATE).
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def failures(self, key: str) -> int:
        with self._store.read() as s:
            value = s.scalar(select(AttemptRow.failures).where(AttemptRow.key == key))
        return int(value or 0)

    def reserve(
        self, key: str, policy: LockoutPolicy, now: datetime | None = None, *, _again: int = 0
    ) -> Reservation:
        """Count one try of ``key`` as a failure if ``policy`` allows a try at ``now``."""
        from ecard.tokens.pin import Reservation, refusal

        now = now or datetime.now(UTC)
        utc = UTCDateTime()
        window_ago = literal(now - policy.window, utc)
        fresh = or_(AttemptRow.window_start.is_(None), AttemptRow.window_start <= window_ago)
        allowed = [
            AttemptRow.key == key,
            or_(AttemptRow.next_try_at.is_(None), AttemptRow.next_try_at <= literal(now, utc)),
            or_(fresh, AttemptRow.window_failures < policy.window_limit),
        ]
        if policy.max_consecutive is not None:
            allowed.append(AttemptRow.failures < policy.max_consecutive)
        with self._store.write() as s:
            got = s.execute(
                update(AttemptRow)
                .where(*allowed)
                .values(
                    failures=AttemptRow.failures + 1,
                    window_failures=case((fresh, 1), else_=AttemptRow.window_failures + 1),
                    window_start=case((fresh, literal(now, utc)), else_=AttemptRow.window_start),
                    next_try_at=_next_try(policy, now),
                    updated_at=now,
                )
                .returning(AttemptRow.failures, AttemptRow.window_failures, AttemptRow.window_start)
            ).first()
            if got is not None:
                return Reservation(True, int(got[0]), int(got[1]), None, got[2])
            row = s.get(AttemptRow, key)
            if row is not None:
                may_try = policy.allows(
                    row.failures, row.window_start, row.window_failures, row.next_try_at, now
                )
                if may_try and _again < 5:
                    # The row was committed by another request after our UPDATE looked
                    # (READ COMMITTED): it allows a try, so count it now.
                    return self.reserve(key, policy, now, _again=_again + 1)
                return refusal(
                    policy,
                    row.failures,
                    row.window_start or now,
                    row.window_failures,
                    row.next_try_at,
                    now,
                )
        delay = policy.delay_after(1)
        try:
            with self._store.write() as s:
                s.execute(
                    insert(AttemptRow).values(
                        key=key,
                        failures=1,
                        window_start=now,
                        window_failures=1,
                        next_try_at=now + delay if delay else None,
                        updated_at=now,
                    )
                )
        except IntegrityError:  # another request created the row first
            return self.reserve(key, policy, now, _again=_again + 1)
        return Reservation(True, 1, 1, None, now)

    def reset(self, key: str) -> None:
        with self._store.write() as s:
            s.execute(delete(AttemptRow).where(AttemptRow.key == key))


def _next_try(policy: LockoutPolicy, now: datetime) -> Any:
    """SQL for the next allowed time after one more failure (``failures + 1``): the policy's
    delay table as a CASE, from the longest wait down."""
    n = AttemptRow.failures + 1
    utc = UTCDateTime()
    whens = []
    for i in range(len(policy.delays) - 1, -1, -1):
        whens.append((n >= policy.free_tries + i, literal(now + policy.delays[i], utc)))
    if not whens:
        return null()
    return case(*whens, else_=null())
